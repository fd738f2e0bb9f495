package loadgen

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// virtualClock advances only when Run sleeps, so runs take no wall time and are exact.
// stallAt/stall inject a generator stall: the first sleep that reaches stallAt (offset from
// epoch) oversleeps by stall, as a descheduled or GC-paused process would.
type virtualClock struct {
	mu       sync.Mutex
	now      time.Time
	stallAt  time.Duration
	stall    time.Duration
	cancel   func() // called by the sleep that reaches cancelAt
	cancelAt time.Duration
}

func newVirtualClock() *virtualClock { return &virtualClock{now: epoch} }

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	if c.stall > 0 && c.now.Sub(epoch) >= c.stallAt {
		c.now, c.stall = c.now.Add(c.stall), 0
	}
	if c.cancel != nil && c.now.Sub(epoch) >= c.cancelAt {
		c.cancel()
		c.cancel = nil
	}
	c.mu.Unlock()
	return ctx.Err()
}

// starts runs Run and returns the intended time of every call, after all calls returned.
func starts(t *testing.T, ctx context.Context, p Pacer, d time.Duration, opts ...RunOption) ([]time.Time, RunStats) {
	t.Helper()
	ch := make(chan time.Time, 100_000)
	st := Run(ctx, p, d, func(intended time.Time) { ch <- intended }, opts...)
	got := make([]time.Time, 0, st.Hits)
	for range st.Hits { // calls run on their own goroutines: collect exactly Hits of them
		got = append(got, <-ch)
	}
	return got, st
}

func TestRunOnSchedule(t *testing.T) {
	t.Parallel()
	clk := newVirtualClock()
	got, st := starts(t, context.Background(), ConstantPacer{Rate: 100}, 3*time.Second, WithClock(clk))
	if st.Hits != 300 || len(got) != 300 {
		t.Fatalf("hits %d (%d seen), want 300", st.Hits, len(got))
	}
	if st.LateStarts != 0 || st.MaxLag != 0 || st.Interrupted {
		t.Errorf("stats %+v, want no lateness", st)
	}
	if !st.Start.Equal(epoch) || !st.End.Equal(epoch.Add(3*time.Second)) {
		t.Errorf("window %s..%s", st.Start, st.End)
	}
	seen := map[time.Time]bool{}
	for _, it := range got {
		seen[it] = true
	}
	for k := range 300 {
		if !seen[epoch.Add(time.Duration(k)*10*time.Millisecond)] {
			t.Fatalf("no call intended at %s", time.Duration(k)*10*time.Millisecond)
		}
	}
}

// TestRunDoesNotWaitForCalls: every call blocks until Run has returned; a closed-loop
// scheduler would deadlock here.
func TestRunDoesNotWaitForCalls(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	finished := make(chan struct{}, 100)
	st := Run(context.Background(), ConstantPacer{Rate: 100}, time.Second, func(time.Time) {
		<-release
		finished <- struct{}{}
	}, WithClock(newVirtualClock()))
	early := len(finished)
	close(release)
	if st.Hits != 100 {
		t.Errorf("hits %d, want 100", st.Hits)
	}
	if early != 0 {
		t.Error("a call finished before Run returned")
	}
	for range st.Hits {
		<-finished
	}
}

// TestRunCountsLateStarts: the generator stalls for 1s at t=1s. The calls intended during the
// stall start at once when it ends, keep their intended times, and those more than 10ms late
// count as late starts.
func TestRunCountsLateStarts(t *testing.T) {
	t.Parallel()
	clk := newVirtualClock()
	clk.stallAt, clk.stall = time.Second, time.Second
	rec := metrics.NewRecorder()
	var lags []time.Duration
	got, st := starts(t, context.Background(), ConstantPacer{Rate: 100}, 3*time.Second,
		WithClock(clk), WithLateStart(func(_ time.Time, lag time.Duration) {
			lags = append(lags, lag)
			rec.LateStart(lag)
		}))
	if st.Hits != 300 || len(got) != 300 {
		t.Fatalf("hits %d, want 300: a stalled generator must catch up, not skip", st.Hits)
	}
	// Calls due at 1.00s..1.98s start at 2.00s: lags 1000ms..20ms. The one due at 1.99s is
	// exactly 10ms late, not more.
	if st.LateStarts != 99 || len(lags) != 99 {
		t.Errorf("late starts %d (hook %d), want 99", st.LateStarts, len(lags))
	}
	if st.MaxLag != time.Second {
		t.Errorf("max lag %s, want 1s", st.MaxLag)
	}
	if tl := rec.Tally(); tl.LateStarts != 99 || tl.MaxLateLag() != time.Second {
		t.Errorf("recorder: %d late, max %s", tl.LateStarts, tl.MaxLateLag())
	}
	// A looser threshold counts fewer.
	clk2 := newVirtualClock()
	clk2.stallAt, clk2.stall = time.Second, time.Second
	_, st2 := starts(t, context.Background(), ConstantPacer{Rate: 100}, 3*time.Second,
		WithClock(clk2), WithLateThreshold(500*time.Millisecond))
	if st2.LateStarts != 50 { // due 1.00s..1.49s: lags 1000ms..510ms
		t.Errorf("late starts at 500ms threshold: %d, want 50", st2.LateStarts)
	}
}

func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := newVirtualClock()
	clk.cancel, clk.cancelAt = cancel, 1500*time.Millisecond
	_, st := starts(t, ctx, ConstantPacer{Rate: 100}, 10*time.Second, WithClock(clk))
	if !st.Interrupted {
		t.Error("not marked interrupted")
	}
	if st.Hits != 150 { // 0ms..1490ms
		t.Errorf("hits %d, want 150", st.Hits)
	}
	if got := st.End.Sub(st.Start); got != 1500*time.Millisecond {
		t.Errorf("window %s, want 1.5s", got)
	}
}

func TestRunStopsWithPacer(t *testing.T) {
	t.Parallel()
	p := PacerFunc(func(elapsed time.Duration, hits uint64) (time.Duration, bool) {
		return 10*time.Millisecond*time.Duration(hits) - elapsed, hits == 5
	})
	_, st := starts(t, context.Background(), p, 0, WithClock(newVirtualClock()))
	if st.Hits != 5 || st.Interrupted {
		t.Errorf("stats %+v, want 5 hits", st)
	}
}

// TestCoordinatedOmission: the target stalls for 1s at t=1s at 100 calls/s. A call intended
// during the stall cannot be sent until the stall ends, then is answered in 1ms. The corrected
// latency (from the intended start) shows the stall, up to ~1s; the uncorrected one (from
// the actual send) stays at 1ms and would hide it.
func TestCoordinatedOmission(t *testing.T) {
	t.Parallel()
	const rate = 100
	stallFrom, stallTo := epoch.Add(time.Second), epoch.Add(2*time.Second)
	rec := metrics.NewRecorder()
	done := make(chan struct{}, 1000)
	st := Run(context.Background(), ConstantPacer{Rate: rate}, 3*time.Second, func(intended time.Time) {
		defer func() { done <- struct{}{} }()
		a := rec.Begin()
		sent := intended // the stalled target's socket accepts nothing until stallTo
		if !sent.Before(stallFrom) && sent.Before(stallTo) {
			sent = stallTo
		}
		done := sent.Add(time.Millisecond)
		rec.Record(metrics.Setup, intended, sent, done)
		a.End(metrics.Success, "")
	}, WithClock(newVirtualClock()), WithLateStart(func(time.Time, time.Duration) {
		t.Error("the generator itself was never late")
	}))
	for range st.Hits {
		<-done
	}
	rec.Close()

	c, u := rec.Histogram(metrics.Setup, true), rec.Histogram(metrics.Setup, false)
	if c.TotalCount() != 300 || u.TotalCount() != 300 {
		t.Fatalf("counts %d/%d, want 300", c.TotalCount(), u.TotalCount())
	}
	near := func(got, want int64) bool { return c.ValuesAreEquivalent(got, want) }
	if got := u.Max(); !near(got, 1000) {
		t.Errorf("uncorrected max %dµs, want 1ms: the send-time view hides the stall", got)
	}
	// Calls due at 1.00s, 1.01s, ..., 1.99s wait 1000ms, 990ms, ..., 10ms, plus 1ms.
	if got := c.Max(); !near(got, 1_001_000) {
		t.Errorf("corrected max %dµs, want ~1001ms", got)
	}
	if got := c.ValueAtQuantile(50); !near(got, 1000) {
		t.Errorf("corrected p50 %dµs, want 1ms (two thirds of calls missed the stall)", got)
	}
	// p90 is rank 270 of 300: the 70th of the 100 stalled calls in ascending order, 701ms.
	if got := c.ValueAtQuantile(90); !near(got, 701_000) {
		t.Errorf("corrected p90 %dµs, want ~701ms", got)
	}
	if err := rec.Tally().Check(); err != nil {
		t.Error(err)
	}
}
