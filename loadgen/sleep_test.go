package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSystemClockSleepWaitsAtLeastD(t *testing.T) {
	t.Parallel()
	start := time.Now()
	if err := SystemClock.Sleep(context.Background(), 30*time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if got := time.Since(start); got < 30*time.Millisecond {
		t.Fatalf("Sleep returned after %s, before the 30ms asked", got)
	}
	if err := SystemClock.Sleep(context.Background(), -time.Second); err != nil {
		t.Fatalf("Sleep(negative): %v", err)
	}
}

func TestSystemClockSleepStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { done <- SystemClock.Sleep(ctx, time.Hour) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // a bound, not a speed target: an hour's sleep must not run on
		t.Fatal("Sleep did not return after its context was cancelled")
	}
}
