package extbroker

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// RequireEnv, when set to 1, turns "mosquitto not installed" from a skip into a
// failure: CI sets it so that a missing install step cannot pass silently.
const RequireEnv = "RTCOMM_REQUIRE_MOSQUITTO"

// MosquittoForTest starts mosquitto for one test and stops it at cleanup. When
// mosquitto is absent the test is skipped with an install hint, unless RequireEnv=1.
func MosquittoForTest(t testing.TB) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := StartMosquitto(ctx)
	if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireEnv) != "1" {
		t.Skipf("mosquitto is not installed: %s", InstallHint)
	}
	if err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
