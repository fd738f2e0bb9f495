package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

// TestPipeline wires the pieces as the load command will: Run drives a fake target that stalls
// for 1s, the recorder measures, the writer produces a results directory, and the SLO is judged
// on corrected latency, so the stall fails it although every sent call was answered in 1ms.
func TestPipeline(t *testing.T) {
	t.Parallel()
	clk := newVirtualClock()
	rec := metrics.NewRecorder()
	dir := t.TempDir()
	w, err := results.Create(dir, results.Params{
		Rate: 100, Duration: results.Duration(3 * time.Second), Pacer: "constant",
		LateThreshold: results.Duration(DefaultLateThreshold), SLO: "setup.p99<100ms,errors<1%,rate>=99/s",
	}, rec, results.WithClock(clk.Now), results.WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	stallFrom, stallTo := epoch.Add(time.Second), epoch.Add(2*time.Second)
	done := make(chan struct{}, 1000)
	st := Run(context.Background(), ConstantPacer{Rate: 100}, 3*time.Second, func(intended time.Time) {
		defer func() { done <- struct{}{} }()
		a := rec.Begin()
		sent := intended
		if !sent.Before(stallFrom) && sent.Before(stallTo) {
			sent = stallTo
		}
		rec.Record(metrics.Setup, intended, sent, sent.Add(time.Millisecond))
		rec.Add(metrics.Sent, 1)
		rec.Add(metrics.Delivered, 1)
		a.End(metrics.Success, "")
	}, WithClock(clk), WithLateStart(func(_ time.Time, lag time.Duration) { rec.LateStart(lag) }))
	for range st.Hits {
		<-done
	}
	sum, err := w.Finalize(st.End, st.Interrupted)
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Tally.Check(); err != nil {
		t.Error(err)
	}
	if sum.AchievedRate != 100 || sum.Tally.Attempts != 300 || len(sum.Warnings) != 0 {
		t.Errorf("rate %g attempts %d warnings %q", sum.AchievedRate, sum.Tally.Attempts, sum.Warnings)
	}
	setup := sum.Metrics["setup"]
	if setup.Uncorrected.P99US > 1100 || setup.Corrected.P99US < 900_000 {
		t.Errorf("setup p99 corrected %dµs uncorrected %dµs", setup.Corrected.P99US, setup.Uncorrected.P99US)
	}
	if sum.SLOPassed || sum.SLO[0].Pass || !sum.SLO[1].Pass || !sum.SLO[2].Pass {
		t.Errorf("verdicts %+v", sum.SLO)
	}
	loaded, err := results.Load(dir)
	if err != nil || loaded.Metrics["setup"].Corrected.P99US != setup.Corrected.P99US {
		t.Errorf("reload: %v", err)
	}
}
