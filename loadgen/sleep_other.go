//go:build !linux

package loadgen

import (
	"context"
	"time"
)

// sleepPrecise waits on a runtime timer or ctx (the nanosleep variant is Linux only; see
// sleep_linux.go for why it exists).
func sleepPrecise(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
