package loadgen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StartAt resolves a synchronized start: at is an RFC 3339 time (--start-at, the same for
// every shard), in a delay from now (--start-in, for a launcher that resolves it once and
// passes the time on). Neither gives the zero time: start as soon as ready.
func StartAt(at string, in time.Duration, now time.Time) (time.Time, error) {
	switch {
	case at != "" && in != 0:
		return time.Time{}, errors.New("give --start-at or --start-in, not both")
	case at != "":
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return time.Time{}, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-12-02T10:30:00Z: %w", at, err)
		}
		return t, nil
	case in < 0:
		return time.Time{}, fmt.Errorf("--start-in %s: must be positive", in)
	case in > 0:
		return now.Add(in), nil
	}
	return time.Time{}, nil
}

// WaitUntil blocks on c until t: the common start of a sharded run's load window. A caller
// that reaches it after t was not ready in time; late says by how much (0 when it waited).
// ctx ending during the wait returns its error.
func WaitUntil(ctx context.Context, c Clock, t time.Time) (late time.Duration, err error) {
	if c == nil {
		c = SystemClock
	}
	if d := c.Now().Sub(t); d > 0 {
		return d, nil
	}
	// A precise sleep can return a little early or late; loop until the clock says t.
	for {
		d := t.Sub(c.Now())
		if d <= 0 {
			return 0, nil
		}
		if err := c.Sleep(ctx, d); err != nil {
			return 0, fmt.Errorf("waiting for the common start %s: %w", t.UTC().Format(time.RFC3339Nano), err)
		}
	}
}
