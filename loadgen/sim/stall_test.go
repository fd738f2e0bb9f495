package sim

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// stallClock is the system clock whose schedule stalls once: the first Sleep after `after`
// has passed sleeps `stall` longer, as a generator frozen by a GC pause, a VM steal or a
// blocked scheduler would.
type stallClock struct {
	start        time.Time
	after, stall time.Duration
	once         sync.Once
}

func (c *stallClock) Now() time.Time { return time.Now() }

func (c *stallClock) Sleep(ctx context.Context, d time.Duration) error {
	if time.Since(c.start) >= c.after {
		c.once.Do(func() { d += c.stall })
	}
	return loadgen.SystemClock.Sleep(ctx, d)
}

// TestStalledScheduleCorrectedSetup pins the real call model (place, not a fake call) to the
// intended start time: while the schedule stalls for 2 s, the calls due meanwhile start late
// and at once. Their setup from the intended start (corrected) includes the stall, so the
// corrected p99 is at least 2 s, while from the actual send (uncorrected) it stays small.
// (A stall of the target itself cannot show this difference in an open-loop generator: every
// call has its own goroutine, so sends are never held back by the target and both views
// include a target's stall.)
func TestStalledScheduleCorrectedSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := openSmall(t, startEmbedded(t), 30, nil)
	m := smallModel()
	m.RejectShare, m.NoAnswerShare = 0, 0
	const stall = 2 * time.Second
	clk := &stallClock{start: time.Now(), after: time.Second, stall: stall}
	// 4 s at 10/s: 40 calls, so p99 is the largest value (HdrHistogram's p99 is the value of
	// rank round(0.99*n), which is n for n <= 50): the call due first in the stall.
	sum, err := p.CallStep(ctx, filepath.Join(t.TempDir(), "run"), Step{Rate: 10, Pacer: "constant",
		Duration: 4 * time.Second, Seed: 3, Calls: m, clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	setup := sum.Metrics[metrics.Setup.String()]
	if setup.Corrected.Count < 30 {
		t.Fatalf("expected about 40 successful calls, actual %d (%v)", setup.Corrected.Count, sum.Tally.Reasons)
	}
	if c := time.Duration(setup.Corrected.P99US) * time.Microsecond; c < stall {
		t.Errorf("corrected setup p99: expected >= %s (the stall), actual %s", stall, c)
	}
	if u := time.Duration(setup.Uncorrected.P99US) * time.Microsecond; u > 500*time.Millisecond {
		t.Errorf("uncorrected setup p99: expected small (the target did not stall), actual %s", u)
	}
	if sum.Tally.LateStarts == 0 || sum.Tally.MaxLateLag() < stall-100*time.Millisecond {
		t.Errorf("expected the stall's late starts (worst about %s), actual %d (worst %s)", stall, sum.Tally.LateStarts, sum.Tally.MaxLateLag())
	}
}
