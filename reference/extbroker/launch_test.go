package extbroker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func launcher(t *testing.T, name string) extbroker.Launcher {
	t.Helper()
	for _, l := range extbroker.Launchers {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no launcher %q", name)
	return extbroker.Launcher{}
}

// roundTrip subscribes and publishes on url and expects the message back.
func roundTrip(t *testing.T, url, user string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, Username: user, Password: user})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.Close()
	got := make(chan []byte, 1)
	if err := c.Subscribe(ctx, "/ext/x/#", 1, func(m mqttc.Message) { got <- m.Payload }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "/ext/x/alice", 1, false, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "hi" {
			t.Errorf("%s: expected hi, actual %q", url, b)
		}
	case <-ctx.Done():
		t.Fatalf("%s: expected a message, none arrived", url)
	}
}

func TestNewBrokersServeAndStop(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		ws         bool
	}{
		{"activemq", "", false}, // Debian's package has no WebSocket transport
		{"ejabberd", extbroker.EjabberdCredentials, true},
		{"aedes", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := launcher(t, tc.name).ForTest(t)
			if (p.WS != "") != tc.ws {
				t.Fatalf("expected a WebSocket URL: %v, actual %q", tc.ws, p.WS)
			}
			roundTrip(t, p.TCP, tc.user)
			if tc.ws {
				roundTrip(t, p.WS, tc.user)
			}
			p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: p.TCP, Username: tc.user, Password: tc.user}); err == nil {
				c.Close()
				t.Fatal("expected the broker to be gone after Close, actual a successful connect")
			}
		})
	}
}

func TestAedesMissingNamesTheInstallCommand(t *testing.T) {
	t.Setenv(extbroker.AedesDirEnv, t.TempDir()) // no node_modules there
	_, err := extbroker.StartAedes(context.Background())
	if !errors.Is(err, extbroker.ErrNotInstalled) {
		t.Fatalf("expected ErrNotInstalled, actual %v", err)
	}
	if !strings.Contains(err.Error(), "npm install --prefix") || !strings.Contains(err.Error(), "aedes@"+extbroker.AedesVersion) {
		t.Errorf("expected the npm install command in %q", err)
	}
}

func TestLaunchUnknownListsTheKnown(t *testing.T) {
	_, err := extbroker.Launch(context.Background(), "hivemq")
	if err == nil || !strings.Contains(err.Error(), "activemq, ejabberd, aedes") {
		t.Fatalf("expected an error listing the launchers, actual %v", err)
	}
}
