package loadgen

import (
	"context"
	"syscall"
	"time"
)

// sleepSlice bounds one nanosleep so a cancelled ctx is noticed within it.
const sleepSlice = 20 * time.Millisecond

// sleepPrecise sleeps in blocking nanosleep calls on the calling goroutine's own thread, not
// on a runtime timer. A runtime timer lives on one P and fires only when that P reaches the
// scheduler; during a GC mark phase an idle or fractional mark worker can hold the P for
// 10–20 ms (until sysmon preempts it) without running its timers (golang/go#37116,
// golang/go#45632). Measured: every late start of the load generator fell inside a mark
// phase (docs/PERFORMANCE.md, Capacity). A thread returning from nanosleep that finds no
// free P puts its goroutine on the global run queue, which mark workers poll, so the
// wake-up does not wait for a preemption.
func sleepPrecise(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rest := time.Until(deadline)
		if rest <= 0 {
			return nil
		}
		ts := syscall.NsecToTimespec(int64(min(rest, sleepSlice)))
		_ = syscall.Nanosleep(&ts, nil) // EINTR or not: the loop re-reads the clock
	}
}
