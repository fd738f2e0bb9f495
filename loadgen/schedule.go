package loadgen

import (
	"context"
	"iter"
	"time"
)

// Schedule yields the intended start offsets of a pacer's calls that fall before d
// (d <= 0: until the pacer stops), as if every call started exactly on time. It reads no
// clock, so tests and planners can inspect a schedule; a stateful pacer is consumed.
func Schedule(p Pacer, d time.Duration) iter.Seq[time.Duration] {
	return func(yield func(time.Duration) bool) {
		var elapsed time.Duration
		for hits := uint64(0); ; hits++ {
			wait, stop := p.Pace(elapsed, hits)
			if stop {
				return
			}
			due := elapsed + wait
			if d > 0 && due >= d {
				return
			}
			if !yield(due) {
				return
			}
			elapsed = max(elapsed, due)
		}
	}
}

// Clock is the time source of Run; tests inject a virtual one.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, returning ctx's error in that case.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

// Now returns time.Now().
func (systemClock) Now() time.Time { return time.Now() }

// Sleep waits for d or ctx. On Linux it blocks its thread in nanosleep instead of using a
// runtime timer, which a GC mark phase can delay by 10–20 ms (sleep_linux.go); ctx is
// noticed within 20 ms there.
func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleepPrecise(ctx, d)
}

// DefaultLateThreshold is how far behind its schedule the generator may start a call
// before the start counts as late.
const DefaultLateThreshold = 10 * time.Millisecond

// RunOption configures Run.
type RunOption func(*runConfig)

type runConfig struct {
	clock  Clock
	late   time.Duration
	onLate func(intended time.Time, lag time.Duration)
}

// WithClock makes Run read time from c instead of the system clock (nil keeps it).
func WithClock(c Clock) RunOption {
	return func(rc *runConfig) {
		if c != nil {
			rc.clock = c
		}
	}
}

// WithLateThreshold sets how late a start may be before it counts as late
// (default DefaultLateThreshold).
func WithLateThreshold(d time.Duration) RunOption { return func(rc *runConfig) { rc.late = d } }

// WithLateStart calls f (on Run's goroutine, so keep it short) for every late start,
// e.g. to count it in a metrics.Recorder.
func WithLateStart(f func(intended time.Time, lag time.Duration)) RunOption {
	return func(rc *runConfig) { rc.onLate = f }
}

// RunStats describes what Run did.
type RunStats struct {
	Start, End  time.Time     // the schedule's window: End is Start+d, or when it stopped
	Hits        uint64        // calls started
	LateStarts  uint64        // calls started more than the threshold after their intended time
	MaxLag      time.Duration // largest lateness of any start
	Interrupted bool          // ctx ended the run before its duration
}

// Run starts fn on its own goroutine at every intended start time of p during d
// (d <= 0: until the pacer stops or ctx ends). It is open loop: it never waits for earlier
// calls, and when it falls behind it starts the overdue calls at once, each with its original
// intended time, and counts a late start for each one more than the threshold behind.
// Run returns at the end of d (or when the pacer stops or ctx ends); calls may still be
// running, and the caller waits for them (bounded by its own timeouts).
func Run(ctx context.Context, p Pacer, d time.Duration, fn func(intended time.Time), opts ...RunOption) RunStats {
	rc := runConfig{clock: SystemClock, late: DefaultLateThreshold}
	for _, o := range opts {
		o(&rc)
	}
	clock := rc.clock
	start := clock.Now()
	st := RunStats{Start: start}
	stopped := false
	for {
		if ctx.Err() != nil {
			st.Interrupted = true
			break
		}
		elapsed := clock.Now().Sub(start)
		wait, stop := p.Pace(elapsed, st.Hits)
		if stop {
			stopped = true
			break
		}
		due := elapsed + wait
		if d > 0 && due >= d {
			break
		}
		if wait > 0 {
			if clock.Sleep(ctx, wait) != nil {
				st.Interrupted = true
				break
			}
		}
		intended := start.Add(due)
		if lag := clock.Now().Sub(intended); lag > 0 {
			st.MaxLag = max(st.MaxLag, lag)
			if lag > rc.late {
				st.LateStarts++
				if rc.onLate != nil {
					rc.onLate(intended, lag)
				}
			}
		}
		st.Hits++
		go fn(intended)
	}
	// Wait out the rest of the window so Start..End is the offered-load window even when
	// the last call was due well before d.
	full := !st.Interrupted && !stopped && d > 0
	if full {
		if rest := d - clock.Now().Sub(start); rest > 0 && clock.Sleep(ctx, rest) != nil {
			st.Interrupted, full = true, false
		}
	}
	st.End = clock.Now()
	if full {
		st.End = start.Add(d)
	}
	return st
}
