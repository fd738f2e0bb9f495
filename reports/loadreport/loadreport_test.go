package loadreport

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/capacity"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reports"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var epoch = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// writeRun writes a results directory with the real Writer on a fixed clock: seconds of
// rate calls each, setup latencies drawn from a seeded generator growing with slow (ms per
// second of run), a few failures, one call late.
func writeRun(t *testing.T, dir, shard string, start time.Time, rate, seconds int, slow float64, seed uint64) *results.Summary {
	t.Helper()
	clk := &clock{now: start}
	rec := metrics.NewRecorder()
	p := results.Params{HarnessVersion: "test", Target: "tcp://127.0.0.1:1883", Rate: float64(rate), Duration: results.Duration(time.Duration(seconds) * time.Second),
		Pacer: "poisson", Seed: seed, Shard: shard, LateThreshold: results.Duration(10 * time.Millisecond),
		SLO: "setup.p99<80ms,errors<6%", Extra: map[string]any{"hold_mean": "1m0s", "endpoints": 200}}
	w, err := results.Create(dir, p, rec, results.WithClock(clk.Now), results.WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for s := range seconds {
		for i := range rate {
			a := rec.Begin()
			base := 3 + rng.ExpFloat64()*4 + slow*float64(s)
			d := time.Duration(base * float64(time.Millisecond))
			rec.RecordDurations(metrics.PostDialDelay, d/2, d/2)
			rec.RecordDurations(metrics.Connect, time.Duration(500+rng.IntN(1500))*time.Microsecond, time.Duration(500+rng.IntN(1000))*time.Microsecond)
			rec.Add(metrics.Sent, 3)
			rec.Add(metrics.Delivered, 3)
			switch {
			case i == 0 && s%3 == 2:
				a.End(metrics.Timeout, "no RESPONSE within 5s")
			case i == 1 && s == 1:
				a.End(metrics.Rejected, "busy")
			default:
				rec.RecordDurations(metrics.Setup, d, d-time.Duration(rng.IntN(500))*time.Microsecond)
				a.End(metrics.Success, "")
			}
		}
		if s == 2 {
			rec.LateStart(15 * time.Millisecond)
		}
		clk.advance(time.Second)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Finalize(clk.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		a, b := string(want), string(got)
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		lo := max(0, i-200)
		t.Errorf("%s differs from the golden file at byte %d (go test -update to accept):\nwant ...%s\ngot  ...%s",
			name, i, a[lo:min(len(a), i+200)], b[lo:min(len(b), i+200)])
	}
}

func render(t *testing.T, r *Report) (html, js []byte) {
	t.Helper()
	var h, j bytes.Buffer
	if err := r.HTML(&h); err != nil {
		t.Fatal(err)
	}
	if err := r.JSON(&j); err != nil {
		t.Fatal(err)
	}
	if refs := reports.ExternalRefs(h.Bytes()); len(refs) > 0 {
		t.Errorf("the HTML references things outside itself: %q", refs)
	}
	if bytes.Contains(h.Bytes(), []byte("http://")) || bytes.Contains(h.Bytes(), []byte("https://")) {
		t.Error("the HTML contains a URL")
	}
	return h.Bytes(), j.Bytes()
}

func TestRunReport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	sum := writeRun(t, dir, "", epoch, 40, 6, 1.5, 7)
	r, err := Build([]string{dir}, Options{Labels: []string{"results/run"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "run" || len(r.Timeline) != 6 {
		t.Fatalf("kind %s, %d intervals; want run, 6", r.Kind, len(r.Timeline))
	}
	// The timeline adds up to the summary: every value and every attempt in some second.
	var setups int64
	var attempts, errs uint64
	for _, iv := range r.Timeline {
		setups += iv.Metrics["setup"].Count
		attempts += deref(iv.Attempts)
		errs += deref(iv.Errors)
	}
	if setups != sum.Metrics["setup"].Corrected.Count || attempts != sum.Tally.Attempts || errs != sum.Tally.Errors() {
		t.Errorf("timeline totals %d setups, %d attempts, %d errors; summary %d, %d, %d",
			setups, attempts, errs, sum.Metrics["setup"].Corrected.Count, sum.Tally.Attempts, sum.Tally.Errors())
	}
	// The SLO held, so the achieved rate is offered to the planner as a lower bound.
	if !sum.SLOPassed || r.Plan.Capacity.SessionRate != round3(sum.AchievedRate) || r.Plan.Capacity.TestedHoldS != 60 {
		t.Errorf("plan capacity %+v from a run that passed=%v at %.3f/s", r.Plan.Capacity, sum.SLOPassed, sum.AchievedRate)
	}
	html, js := render(t, r)
	for _, want := range []string{"SLO met", "late by more than", "setup latency by percentile", "99.9%", "Throughput over time",
		"Planning calculator", `id="p-users"`, "no RESPONSE within 5s", "hold_mean"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || back.Format != FormatReport || len(back.Metrics) != 3 {
		t.Errorf("JSON report: format %q, %d metrics, %v", back.Format, len(back.Metrics), err)
	}
	golden(t, "run.html", html)
	golden(t, "run.json", js)
}

func TestMergedShardsReport(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	var dirs []string
	var attempts uint64
	for i := range 3 {
		d := filepath.Join(base, "shard", string(rune('0'+i)))
		s := writeRun(t, d, []string{"0/3", "1/3", "2/3"}[i], epoch.Add(time.Duration(i)*300*time.Millisecond), 10, 4, 0.5, uint64(i+1))
		dirs = append(dirs, d)
		attempts += s.Tally.Attempts
	}
	r, err := Build(dirs, Options{Labels: []string{"shard/0", "shard/1", "shard/2"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "merge" || r.Tally.Attempts != attempts || len(r.Run.Shards) != 3 {
		t.Fatalf("kind %s, %d attempts (want %d), shards %v", r.Kind, r.Tally.Attempts, attempts, r.Run.Shards)
	}
	// One row per shard, in the JSON and the HTML: a weak node stays visible.
	if len(r.Run.ShardRuns) != 3 || r.Run.ShardRuns[2].Shard != "2/3" || r.Run.ShardRuns[2].StartOffsetMS != 600 {
		t.Errorf("shard rows %+v", r.Run.ShardRuns)
	}
	var page bytes.Buffer
	if err := r.HTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "<h2>Shards</h2>") || !strings.Contains(page.String(), "600.0 ms") {
		t.Error("HTML report lacks the per-shard table")
	}
	var got uint64
	for _, iv := range r.Timeline {
		got += deref(iv.Attempts)
	}
	if got != attempts {
		t.Errorf("timeline attempts over the shards' logs: %d, want %d", got, attempts)
	}
	// The same on disk: MergeDir's log carries each shard's tallies (ShardTally comments), so
	// the merged directory gives the same timeline, second for second, as the shards do.
	out := filepath.Join(base, "merged")
	if _, err := results.MergeDir(out, dirs...); err != nil {
		t.Fatal(err)
	}
	m, err := Build([]string{out}, Options{Labels: []string{"merged"}})
	if err != nil {
		t.Fatal(err)
	}
	var setups int64
	for _, iv := range m.Timeline {
		setups += iv.Metrics["setup"].Count
	}
	if m.Kind != "merge" || setups != r.Metrics[2].Corrected.Count {
		t.Errorf("merged dir: kind %s, %d setups in the timeline, want %d", m.Kind, setups, r.Metrics[2].Corrected.Count)
	}
	if len(m.Timeline) != len(r.Timeline) {
		t.Fatalf("merged dir: %d timeline bins, the shards' logs give %d", len(m.Timeline), len(r.Timeline))
	}
	for i := range m.Timeline {
		if a, b := deref(m.Timeline[i].Attempts), deref(r.Timeline[i].Attempts); a != b || (m.Timeline[i].Attempts == nil) != (r.Timeline[i].Attempts == nil) {
			t.Errorf("second %d: merged dir %d attempts, shards %d", i, a, b)
		}
		if a, b := deref(m.Timeline[i].Errors), deref(r.Timeline[i].Errors); a != b {
			t.Errorf("second %d: merged dir %d errors, shards %d", i, a, b)
		}
	}
	_, js := render(t, m)
	golden(t, "merged.json", js)
}

// writeCapacity writes a capacity search by hand in capacity.json v1 with real step
// directories: levels 10, 20, 40 (fails the SLO), 30, 35 (fails), so the knee is 30.
func writeCapacity(t *testing.T, dir string) {
	t.Helper()
	res := capacity.Result{Format: capacity.Format, Mode: capacity.Calls, Quantity: capacity.Calls.Quantity(), Unit: capacity.Calls.Unit(),
		Metric: "setup", Params: capacity.Params{SLO: "setup.p99<80ms,errors<6%", Start: 10, Max: 80, Steady: results.Duration(6 * time.Second)},
		Status: capacity.StatusDone, Start: epoch, Updated: epoch.Add(time.Minute)}
	for i, lv := range []int{10, 20, 40, 30, 35} {
		sub := filepath.Join("steps", string(rune('0'+i)))
		slow := 0.5
		if lv >= 35 {
			slow = 20 // latency climbs past the SLO
		}
		sum := writeRun(t, filepath.Join(dir, sub), "", epoch.Add(time.Duration(i)*10*time.Second), lv, 6, slow, uint64(i+10))
		c := sum.Metrics["setup"].Corrected
		phase := capacity.PhaseRamp
		if i >= 3 {
			phase = capacity.PhaseBisect
		}
		er, _ := sum.Tally.ErrorRatio()
		res.Steps = append(res.Steps, capacity.StepRecord{Index: i, Phase: phase, Level: float64(lv), Dir: sub, Start: sum.Start, End: sum.End,
			Valid: true, Pass: sum.SLOPassed, AchievedRate: sum.AchievedRate, Goodput: sum.Goodput, Attempts: sum.Tally.Attempts,
			ErrorRatio: er, Latency: capacity.Latency{Count: c.Count, P50US: c.P50US, P90US: c.P90US, P99US: c.P99US, P999US: c.P999US, MaxUS: c.MaxUS},
			SLO: sum.SLO})
	}
	res.Knee = &capacity.Knee{Level: 30, Step: 3, Bound: capacity.BoundSLO, NextLevel: 35, NextStep: 4, Resolution: 1.0 / 6,
		Text: "30 calls/s is the highest level that met the SLO; 35 calls/s did not."}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, capacity.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCapacityReport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cap")
	writeCapacity(t, dir)
	r, err := Build([]string{dir}, Options{Labels: []string{"results/capacity"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "capacity" || r.Capacity.Knee == nil || r.Capacity.Knee.Level != 30 || len(r.Capacity.Curve) != 5 {
		t.Fatalf("capacity report: %+v", r.Capacity)
	}
	if r.Capacity.Curve[2].Level != 30 || !strings.Contains(r.Run.Step, "step 3 at 30 calls/s") {
		t.Errorf("curve not by level, or the detailed step is not the knee's: %v %q", r.Capacity.Curve[2].Level, r.Run.Step)
	}
	if r.Plan.Capacity.SessionRate != 30 || r.Plan.Capacity.TestedHoldS != 60 {
		t.Errorf("plan capacity %+v, want 30 calls/s tested at 60s hold", r.Plan.Capacity)
	}
	html, js := render(t, r)
	for _, want := range []string{"Knee: 30 calls/s", "Latency vs offered load", "knee 30", "Errors vs offered load", "setup latency by percentile"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	golden(t, "capacity.html", html)
	golden(t, "capacity.json", js)

	c, err := CapacityFrom([]string{dir})
	if err != nil || c.SessionRate != 30 || len(c.Sources) != 1 {
		t.Errorf("CapacityFrom: %+v, %v", c, err)
	}
}

func TestCrashedRunIsRebuiltAndSaysSo(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	writeRun(t, dir, "", epoch, 5, 3, 0, 3)
	if err := os.Remove(filepath.Join(dir, results.FileSummary)); err != nil {
		t.Fatal(err)
	}
	r, err := Build([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	html, _ := render(t, r)
	if !r.Run.Rebuilt || !bytes.Contains(html, []byte("rebuilt from intervals.hlog")) {
		t.Errorf("a rebuilt run is not flagged (rebuilt=%v)", r.Run.Rebuilt)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	if _, err := Build(nil, Options{}); err == nil {
		t.Error("no directories: expected an error")
	}
	if _, err := Build([]string{filepath.Join(t.TempDir(), "missing")}, Options{}); err == nil {
		t.Error("missing directory: expected an error")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, capacity.FileName), []byte(`{"format":"rtcomm-harness/capacity/v0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build([]string{dir}, Options{}); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("wrong capacity format: expected a format error, actual %v", err)
	}
}

// TestInvalidRunHeadline: an invalid run (interrupted, messages left in flight, accounting
// that does not balance) is not reported as meeting its SLO, whatever the verdicts say.
func TestInvalidRunHeadline(t *testing.T) {
	t.Parallel()
	r := &Report{Kind: "run", Run: Run{SLOPassed: true, Invalid: []string{"the run was interrupted after 3.0s of 10s"}}}
	r.Run.Params.SLO = "lost<=0"
	v := &view{Report: r}
	v.headline()
	if v.OK || !strings.Contains(v.Headline, "Invalid") || !strings.Contains(v.Why, "interrupted") {
		t.Errorf("invalid run: expected a not-OK 'Invalid run' headline naming why, actual ok=%v %q %q", v.OK, v.Headline, v.Why)
	}
}
