package loadgen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStartAt(t *testing.T) {
	t.Parallel()
	now := epoch
	got, err := StartAt("2025-01-02T03:05:00Z", 0, now)
	if err != nil || !got.Equal(time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)) {
		t.Errorf("--start-at: %v, %v", got, err)
	}
	got, err = StartAt("2025-01-02T04:05:00.25+01:00", 0, now)
	if err != nil || !got.Equal(time.Date(2025, 1, 2, 3, 5, 0, 250e6, time.UTC)) {
		t.Errorf("--start-at with offset and fraction: %v, %v", got, err)
	}
	if got, err = StartAt("", 30*time.Second, now); err != nil || !got.Equal(now.Add(30*time.Second)) {
		t.Errorf("--start-in 30s: %v, %v", got, err)
	}
	if got, err = StartAt("", 0, now); err != nil || !got.IsZero() {
		t.Errorf("neither: %v, %v (want the zero time)", got, err)
	}
	for _, c := range []struct {
		at   string
		in   time.Duration
		want string
	}{
		{"2025-01-02T03:05:00Z", time.Second, "not both"},
		{"10:30", 0, "RFC 3339"},
		{"", -time.Second, "must be positive"},
	} {
		if _, err := StartAt(c.at, c.in, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("StartAt(%q, %s) error %v, want %q", c.at, c.in, err, c.want)
		}
	}
}

func TestWaitUntil(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newVirtualClock()
	late, err := WaitUntil(ctx, c, epoch.Add(90*time.Second))
	if err != nil || late != 0 || !c.Now().Equal(epoch.Add(90*time.Second)) {
		t.Errorf("waiting: late %s, err %v, clock at %s (want exactly the start)", late, err, c.Now().Sub(epoch))
	}
	// Ready after the start: not ready in time, by how much, and no wait.
	late, err = WaitUntil(ctx, c, epoch.Add(80*time.Second))
	if err != nil || late != 10*time.Second || !c.Now().Equal(epoch.Add(90*time.Second)) {
		t.Errorf("late: %s, %v, clock %s; want 10s late and no sleep", late, err, c.Now().Sub(epoch))
	}
	// A clock that wakes early (a sleep cut short) still waits for the start.
	e := &earlyClock{virtualClock: newVirtualClock()}
	if late, err := WaitUntil(ctx, e, epoch.Add(time.Second)); err != nil || late != 0 || e.Now().Before(epoch.Add(time.Second)) || e.sleeps < 2 {
		t.Errorf("early-waking clock: late %s, err %v, at %s after %d sleeps", late, err, e.Now().Sub(epoch), e.sleeps)
	}
	// Cancelled while waiting.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := WaitUntil(cctx, newVirtualClock(), epoch.Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	// The real clock: a short wait ends at the start, not before.
	start := time.Now().Add(30 * time.Millisecond)
	if late, err := WaitUntil(ctx, nil, start); err != nil || late != 0 || time.Now().Before(start) {
		t.Errorf("system clock: late %s, err %v, now-start %s", late, err, time.Since(start))
	}
}

// earlyClock sleeps half of what is asked, as a sleep cut short would.
type earlyClock struct {
	*virtualClock
	sleeps int
}

func (c *earlyClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps++
	if d > time.Millisecond {
		d /= 2
	}
	return c.virtualClock.Sleep(ctx, d)
}
