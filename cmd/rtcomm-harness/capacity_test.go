package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/capacity"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// tinyCapacity is a search small enough for CI: a few one-second steps. The SLO is loose and
// late starts are tolerated because CI machines are shared; what is checked is that the real
// target runs through the search and that every file is written and readable.
func tinyCapacity(t *testing.T, mode capacity.Mode, start, max float64) capacityOptions {
	t.Helper()
	return capacityOptions{mode: string(mode), start: start, max: max, factor: 2, tolerance: 0.05,
		steady: time.Second, warmup: 200 * time.Millisecond, sloSpec: "errors<50%", maxLate: 0.9, retries: 0,
		maxSteps: 6, endpoints: 10, rampRate: 200, probeRate: 5, hold: 200 * time.Millisecond, ice: 1,
		out: filepath.Join(t.TempDir(), "cap"), targetFlags: targetFlags{topicPath: "/capt-" + mqttc.RandomClientID("")[:8] + "/",
			idPrefix: "c" + mqttc.RandomClientID("")[:5] + "-"}}
}

func TestCapacityAgainstEmbeddedReference(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode       capacity.Mode
		start, max float64
		steps      int
	}{
		{capacity.Calls, 5, 10, 2},
		{capacity.Registrations, 10, 20, 2},
		{capacity.Endpoints, 4, 8, 2},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			o := tinyCapacity(t, tc.mode, tc.start, tc.max)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out bytes.Buffer
			err := runCapacity(ctx, tc.mode, o, &out, slog.New(slog.DiscardHandler))
			res, lerr := capacity.Load(o.out)
			if lerr != nil {
				t.Fatalf("capacity.json: %v (run: %v)\n%s", lerr, err, out.String())
			}
			if res.Status != capacity.StatusDone || len(res.Steps) < tc.steps || res.Mode != tc.mode {
				t.Fatalf("status %q, %d steps, mode %q (run: %v)\n%s", res.Status, len(res.Steps), res.Mode, err, out.String())
			}
			for _, st := range res.Steps {
				sum, err := results.Load(filepath.Join(o.out, st.Dir))
				if err != nil {
					t.Fatalf("step %d: %v", st.Index, err)
				}
				if sum.Tally.Attempts == 0 || st.Attempts != sum.Tally.Attempts {
					t.Errorf("step %d: %d attempts in the curve, %d in its summary", st.Index, st.Attempts, sum.Tally.Attempts)
				}
				if err := sum.Tally.Check(); err != nil {
					t.Errorf("step %d accounting: %v", st.Index, err)
				}
			}
			// Loose SLO, tiny levels: the embedded reference passes them all, so the knee is
			// the maximum and the command reports success.
			if err != nil || res.Knee == nil || res.Knee.Level != tc.max || res.Knee.Bound != capacity.BoundMax {
				t.Fatalf("knee %+v, run error %v\n%s", res.Knee, err, out.String())
			}
			if !strings.Contains(out.String(), "knee:") || !strings.Contains(out.String(), "step  0") {
				t.Errorf("output lacks progress or knee:\n%s", out.String())
			}
		})
	}
}

func TestCapacityRejectsBadFlags(t *testing.T) {
	t.Parallel()
	o := tinyCapacity(t, capacity.Calls, 5, 10)
	o.sloSpec = "setup.p99<fast"
	err := runCapacity(context.Background(), capacity.Calls, o, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	var ee *exitError
	if err == nil || !asExit(err, &ee) || ee.code != exitCapacityError {
		t.Fatalf("err = %v, want exit %d", err, exitCapacityError)
	}
}

func asExit(err error, target **exitError) bool {
	e, ok := err.(*exitError)
	if ok {
		*target = e
	}
	return ok
}
