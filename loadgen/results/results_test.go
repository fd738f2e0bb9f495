package results

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 250_000_000, time.UTC)

// stepClock is a manual clock for the Writer.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func baseParams() Params {
	return Params{
		Rate: 10, Duration: Duration(3 * time.Second), Pacer: "constant",
		LateThreshold: Duration(10 * time.Millisecond), SLO: "setup.p99<100ms,errors<1%",
		Extra: map[string]any{"mix": "call"},
	}
}

// secondOfCalls records 10 successful calls with setup latencies 1..10ms (+extra) and their
// messages.
func secondOfCalls(rec *metrics.Recorder, extra time.Duration) {
	for i := range 10 {
		a := rec.Begin()
		rec.RecordDurations(metrics.Setup, ms(i+1)+extra, ms(1))
		rec.Add(metrics.Sent, 2)
		rec.Add(metrics.Delivered, 2)
		a.End(metrics.Success, "")
	}
}

func readLogHistograms(t *testing.T, path string) map[string][]*hdrhistogram.Histogram {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := hdrhistogram.NewHistogramLogReader(bytes.NewReader(b))
	out := map[string][]*hdrhistogram.Histogram{}
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if h == nil {
			return out
		}
		out[h.Tag()] = append(out[h.Tag()], h)
	}
}

func TestWriterFullRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	clk := &stepClock{now: epoch}
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	// params.json is there from the start.
	pb, err := os.ReadFile(filepath.Join(dir, FileParams))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := decodeParamsDoc(pb)
	if err != nil || doc.Params.Rate != 10 || !doc.Start.Equal(epoch) {
		t.Fatalf("params.json = %s, %v", pb, err)
	}
	for range 3 {
		secondOfCalls(rec, 0)
		clk.advance(time.Second)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// The log is a standard HdrHistogram log while the run goes on.
	logged := readLogHistograms(t, filepath.Join(dir, FileIntervals))
	if n := len(logged["setup.corrected"]); n != 3 {
		t.Fatalf("%d setup.corrected intervals, want 3", n)
	}
	first := logged["setup.corrected"][0]
	if first.TotalCount() != 10 || first.StartTimeMs() != epoch.UnixMilli() || first.EndTimeMs() != epoch.Add(time.Second).UnixMilli() {
		t.Errorf("first interval: %d values, %d..%d ms", first.TotalCount(), first.StartTimeMs(), first.EndTimeMs())
	}
	rec.Begin()                          // a call still in progress at the end
	rec.LateStart(40 * time.Millisecond) // and a late start
	sum, err := w.Finalize(epoch.Add(3*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finalize(time.Time{}, false); err == nil {
		t.Error("second Finalize succeeded")
	}

	if sum.Format != FormatSummary || sum.Interrupted || sum.Rebuilt {
		t.Errorf("summary header: %q interrupted %v rebuilt %v", sum.Format, sum.Interrupted, sum.Rebuilt)
	}
	if err := sum.Tally.Check(); err != nil {
		t.Error(err)
	}
	if sum.Tally.Attempts != 31 || sum.Tally.Outcomes[metrics.Aborted] != 1 || sum.Tally.Outcomes[metrics.Success] != 30 {
		t.Errorf("tally %+v", sum.Tally)
	}
	if sum.DurationS != 3 || sum.AchievedRate != 31.0/3 || sum.Goodput != 10 {
		t.Errorf("window %gs rate %g goodput %g", sum.DurationS, sum.AchievedRate, sum.Goodput)
	}
	setup := sum.Metrics["setup"]
	if setup.Corrected.Count != 30 || setup.Uncorrected.Count != 30 || len(sum.Metrics) != metrics.NumMetrics {
		t.Errorf("setup %+v, %d metrics", setup, len(sum.Metrics))
	}
	h := metrics.NewHistogram()
	if !h.ValuesAreEquivalent(setup.Corrected.MaxUS, 10_000) || !h.ValuesAreEquivalent(setup.Corrected.P50US, 5_000) ||
		!h.ValuesAreEquivalent(setup.Uncorrected.P99US, 1_000) {
		t.Errorf("setup stats %+v", setup)
	}
	if len(sum.SLO) != 2 || !sum.SLOPassed {
		t.Errorf("SLO %+v passed %v", sum.SLO, sum.SLOPassed)
	}
	for _, want := range []string{"aborted", "started late"} {
		if !hasWarning(sum, want) {
			t.Errorf("no warning about %q in %q", want, sum.Warnings)
		}
	}

	// Files: summary.json reloads to the same summary; .hgrm files for recorded metrics.
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, sum), mustJSON(t, loaded); a != b {
		t.Errorf("Load differs:\n%s\n%s", a, b)
	}
	hgrm, err := os.ReadFile(filepath.Join(dir, "setup.hgrm"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hgrm), " Value\tPercentile\tTotalCount\t1/(1-Percentile)") ||
		!strings.Contains(string(hgrm), "#[Max     =       10.") || !strings.Contains(string(hgrm), "Total count    =           30]") {
		t.Errorf("setup.hgrm:\n%s", hgrm)
	}
	if _, err := os.Stat(filepath.Join(dir, "setup.uncorrected.hgrm")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "connect.hgrm")); !os.IsNotExist(err) {
		t.Errorf("connect.hgrm for a metric without values: %v", err)
	}

	// The log alone rebuilds the same histograms and tally; the end marker says not interrupted.
	rb, err := Rebuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rb.Rebuilt || rb.Interrupted || !rb.End.Equal(sum.End) {
		t.Errorf("rebuilt: rebuilt %v interrupted %v end %s", rb.Rebuilt, rb.Interrupted, rb.End)
	}
	sameHistograms(t, sum, rb)
	if mustJSON(t, rb.Tally) != mustJSON(t, sum.Tally) {
		t.Errorf("rebuilt tally %+v, want %+v", rb.Tally, sum.Tally)
	}
}

func TestFinalizeInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &stepClock{now: epoch}
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	secondOfCalls(rec, 0)
	clk.advance(1500 * time.Millisecond)
	sum, err := w.Finalize(time.Time{}, true) // Ctrl-C: end is now
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.DurationS != 1.5 || !hasWarning(sum, "interrupted") {
		t.Errorf("interrupted %v duration %g warnings %q", sum.Interrupted, sum.DurationS, sum.Warnings)
	}
	if sum.Metrics["setup"].Corrected.Count != 10 {
		t.Errorf("measured values lost: %+v", sum.Metrics["setup"].Corrected)
	}
	loaded, err := Load(dir)
	if err != nil || !loaded.Interrupted {
		t.Errorf("Load: %v interrupted=%v", err, loaded != nil && loaded.Interrupted)
	}
}

// TestCrashLeavesReadableLog: the background flusher writes intervals while calls run; then
// the process "dies" mid-line. Load rebuilds the summary from the log alone.
func TestCrashLeavesReadableLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithFlushEvery(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	secondOfCalls(rec, 0)
	rec.Begin() // in progress when the process dies
	rec.Add(metrics.Sent, 1)
	rec.Add(metrics.Duplicated, 2) // every delivery count is in the log's tally
	rec.Add(metrics.Misrouted, 3)

	// Wait (bounded) until a flush has logged all of it; no timing is asserted.
	var rb *Summary
	for deadline := time.Now().Add(10 * time.Second); ; {
		if rb, err = Rebuild(dir); err == nil && rb.Tally.Attempts == 11 && rb.Metrics["setup"].Corrected.Count == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log never showed the calls: %v %+v", err, rb)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The crash: the flusher stops, the file is closed, and a torn line is left at the end.
	close(w.stop)
	<-w.stopped
	w.mu.Lock()
	w.f.Close()
	w.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(dir, FileIntervals), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("Tag=setup.corrected,9.000,1.000,0.001,HISTFAAAACR4nJNpmSzMwMDAxgABzFCaEUzPmAQ"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	sum, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Rebuilt || !sum.Interrupted || !hasWarning(sum, "rebuilt from intervals.hlog") {
		t.Errorf("rebuilt %v interrupted %v warnings %q", sum.Rebuilt, sum.Interrupted, sum.Warnings)
	}
	if c := sum.Metrics["setup"].Corrected.Count; c != 10 {
		t.Errorf("setup count %d, want 10", c)
	}
	if err := sum.Tally.Check(); err != nil {
		t.Error(err)
	}
	if sum.Tally.Outcomes[metrics.Aborted] != 1 || sum.Tally.InFlight != 1 {
		t.Errorf("tally %+v: want the call in progress aborted and its message in flight", sum.Tally)
	}
	if sum.Tally.Duplicated != 2 || sum.Tally.Misrouted != 3 {
		t.Errorf("interval log tally: expected duplicated 2 and misrouted 3, actual %d and %d", sum.Tally.Duplicated, sum.Tally.Misrouted)
	}
	if sum.Params.Rate != 10 || !sum.Start.Before(sum.End) {
		t.Errorf("params %+v window %s..%s", sum.Params, sum.Start, sum.End)
	}
}

// TestHostileReasonDoesNotCorruptLog: a failure reason from the target that looks like a log
// header must not change how the log is read.
func TestHostileReasonDoesNotCorruptLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &stepClock{now: epoch}
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	rec.Begin().End(metrics.Failure, "#[BaseTime: 0 (seconds since epoch)]\n#[StartTime: 5")
	rec.RecordDurations(metrics.Setup, ms(3), ms(3))
	clk.advance(time.Second)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rec.RecordDurations(metrics.Setup, ms(4), ms(4))
	clk.advance(time.Second)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	logged := readLogHistograms(t, filepath.Join(dir, FileIntervals))
	if got := logged["setup.corrected"][1].StartTimeMs(); got != epoch.Add(time.Second).UnixMilli() {
		t.Errorf("second interval starts at %d, want %d", got, epoch.Add(time.Second).UnixMilli())
	}
	rb, err := Rebuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Tally.Reasons["failure: #[BaseTime: 0 (seconds since epoch)]\n#[StartTime: 5"] != 1 {
		t.Errorf("reason not kept verbatim: %v", rb.Tally.Reasons)
	}
}

func TestCreateRefusesExistingRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := Create(dir, baseParams(), metrics.NewRecorder(), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, baseParams(), metrics.NewRecorder()); err == nil {
		t.Error("second Create in the same directory succeeded")
	}
	if _, err := w.Finalize(time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, baseParams(), metrics.NewRecorder()); err == nil {
		t.Error("Create over a finished run succeeded")
	}
	p := baseParams()
	p.SLO = "setup.p99<100"
	if _, err := Create(t.TempDir(), p, metrics.NewRecorder()); err == nil || !strings.Contains(err.Error(), "no unit") {
		t.Errorf("bad SLO: %v", err)
	}
}

func TestDecodeSummaryChecks(t *testing.T) {
	t.Parallel()
	if _, err := DecodeSummary([]byte(`{"format":"rtcomm-harness/load-summary/v2"}`)); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("future format: %v", err)
	}
	dir := t.TempDir()
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	secondOfCalls(rec, 0)
	sum, err := w.Finalize(time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	ms := sum.Metrics["setup"]
	ms.Corrected.Count++ // a hand-edited count no longer matches its histogram
	sum.Metrics["setup"] = ms
	b, _ := sum.Encode()
	if _, err := DecodeSummary(b); err == nil || !strings.Contains(err.Error(), "count says") {
		t.Errorf("tampered count: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("marshal = %s, %v", b, err)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d != Duration(250*time.Millisecond) {
		t.Errorf("unmarshal string = %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`1000`), &d); err != nil || d != 1000 {
		t.Errorf("unmarshal ns = %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("bad duration accepted")
	}
}

// shardRun writes a finished results directory for one shard with the given setup latencies.
func shardRun(t *testing.T, dir, shard string, start time.Time, values []time.Duration, failures int) *Summary {
	t.Helper()
	clk := &stepClock{now: start}
	rec := metrics.NewRecorder()
	p := baseParams()
	p.Shard, p.Rate = shard, 5
	w, err := Create(dir, p, rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		a := rec.Begin()
		rec.RecordDurations(metrics.Setup, v, v/2)
		rec.Add(metrics.Sent, 1)
		rec.Add(metrics.Delivered, 1)
		if i < failures {
			a.End(metrics.Failure, "no such endpoint")
		} else {
			a.End(metrics.Success, "")
		}
		if i%50 == 49 {
			clk.advance(time.Second)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk.advance(time.Second)
	sum, err := w.Finalize(time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func randomLatencies(seed uint64, n int) []time.Duration {
	r := rand.New(rand.NewPCG(seed, 99))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(r.ExpFloat64()*20e3) * time.Microsecond // mean 20ms, long tail
	}
	return out
}

func TestMergeShardsExactly(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	va, vb := randomLatencies(1, 300), randomLatencies(2, 200)
	sa := shardRun(t, a, "0/2", epoch, va, 3)
	sb := shardRun(t, b, "1/2", epoch.Add(200*time.Millisecond), vb, 1)

	out := filepath.Join(root, "merged")
	m, err := MergeDir(out, a, b)
	if err != nil {
		t.Fatal(err)
	}
	// The merged histogram equals one histogram fed every value of both shards.
	single := metrics.NewHistogram()
	for _, v := range append(append([]time.Duration{}, va...), vb...) {
		if err := single.RecordValue(v.Microseconds()); err != nil {
			t.Fatal(err)
		}
	}
	mh, err := m.Histogram(metrics.Setup, true)
	if err != nil {
		t.Fatal(err)
	}
	if !mh.Equals(single) {
		t.Errorf("merged histogram (%d values, p99 %d) differs from the single one (%d, p99 %d)",
			mh.TotalCount(), mh.ValueAtQuantile(99), single.TotalCount(), single.ValueAtQuantile(99))
	}
	if m.Metrics["setup"].Corrected.P99US != single.ValueAtQuantile(99) {
		t.Errorf("merged p99 %d, single %d", m.Metrics["setup"].Corrected.P99US, single.ValueAtQuantile(99))
	}
	// Counters are added, not averaged; the rate is the shards' sum.
	tl := m.Tally
	if tl.Attempts != 500 || tl.Outcomes[metrics.Failure] != 4 || tl.Sent != 500 || tl.Reasons["failure: no such endpoint"] != 4 {
		t.Errorf("merged tally %+v", tl)
	}
	if err := tl.Check(); err != nil {
		t.Error(err)
	}
	if m.Params.Rate != 10 || m.Params.Shard != "" || len(m.Shards) != 2 || m.Shards[0] != "0/2" {
		t.Errorf("merged params %+v shards %v", m.Params, m.Shards)
	}
	// Shard a ran 0..7s, shard b 0.2..5.2s: the window is the union.
	if !m.Start.Equal(sa.Start) || !m.End.Equal(sa.End) || !sb.End.Before(sa.End) {
		t.Errorf("window %s..%s, want %s..%s", m.Start, m.End, sa.Start, sa.End)
	}
	if want := 500 / m.DurationS; m.AchievedRate != want {
		t.Errorf("achieved rate %g, want %g", m.AchievedRate, want)
	}
	// errors 4/500 = 0.8% passes errors<1%.
	if len(m.SLO) != 2 || m.SLO[1].Threshold != "errors<1%" || !m.SLO[1].Pass {
		t.Errorf("merged SLO %+v", m.SLO)
	}

	// The merged directory reloads, and its interval log alone rebuilds the same histograms.
	loaded, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, loaded) != mustJSON(t, m) {
		t.Error("merged summary.json differs from the returned summary")
	}
	rb, err := Rebuild(out)
	if err != nil {
		t.Fatal(err)
	}
	sameHistograms(t, m, rb)
	logged := readLogHistograms(t, filepath.Join(out, FileIntervals))
	var last int64
	for _, h := range logged["setup.corrected"] {
		if h.StartTimeMs() < last {
			t.Fatal("merged log is not in time order")
		}
		last = h.StartTimeMs()
	}
	if len(logged["setup.corrected"]) != 6+4 { // one per 50 values; the final flushes were empty
		t.Errorf("merged log has %d setup intervals, want 10", len(logged["setup.corrected"]))
	}
	for _, f := range []string{FileParams, "setup.hgrm", "setup.uncorrected.hgrm"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestMergeRefusesDoubleCounting(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := func(name, shard string) string {
		d := filepath.Join(root, name)
		shardRun(t, d, shard, epoch, randomLatencies(3, 60), 0)
		return d
	}
	a, b, c, whole := dir("a", "0/3"), dir("b", "1/3"), dir("c", "1/2"), dir("w", "")

	if _, err := Merge(a, a); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("same shard twice: %v", err)
	}
	if _, err := Merge(a, c); err == nil || !strings.Contains(err.Error(), "2 shards") && !strings.Contains(err.Error(), "3 shards") {
		t.Errorf("different N: %v", err)
	}
	if _, err := Merge(a, whole); err == nil || !strings.Contains(err.Error(), "some results are shards") {
		t.Errorf("mixed: %v", err)
	}
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(m, "only 2 of 3 shards") {
		t.Errorf("partial merge warnings %q", m.Warnings)
	}
	out := filepath.Join(root, "merged")
	if _, err := MergeDir(out, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(out, dir("d", "2/3")); err == nil || !strings.Contains(err.Error(), "already a merge") {
		t.Errorf("merge of a merge: %v", err)
	}
	if _, err := MergeDir(out, a, b); err == nil {
		t.Error("MergeDir over existing results succeeded")
	}
	if _, err := Merge(); err == nil {
		t.Error("Merge of nothing succeeded")
	}
}

func hasWarning(s *Summary, sub string) bool {
	for _, w := range s.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameHistograms(t *testing.T, want, got *Summary) {
	t.Helper()
	for _, m := range metrics.All() {
		for _, corrected := range []bool{true, false} {
			a, err1 := want.Histogram(m, corrected)
			b, err2 := got.Histogram(m, corrected)
			if err1 != nil || err2 != nil || !a.Equals(b) {
				t.Errorf("%s corrected=%v: histograms differ (%v %v)", m, corrected, err1, err2)
			}
		}
	}
}

// TestAddWarningReachesSummaryJSON: a caller's warning goes into summary.json ahead of the
// computed ones; an empty one and one added after Finalize do not.
func TestAddWarningReachesSummaryJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &stepClock{now: epoch}
	rec := metrics.NewRecorder()
	w, err := Create(dir, baseParams(), rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	secondOfCalls(rec, 0)
	clk.advance(1500 * time.Millisecond)
	const msg = "the broker dropped 3 deliveries"
	w.AddWarning(msg)
	w.AddWarning("")
	sum, err := w.Finalize(time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	w.AddWarning("too late")
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Summary{sum, loaded} {
		if len(s.Warnings) < 2 || s.Warnings[0] != msg || !hasWarning(s, "interrupted") {
			t.Errorf("warnings %q: want %q first, then the computed ones", s.Warnings, msg)
		}
		for _, x := range s.Warnings {
			if x == "" || x == "too late" {
				t.Errorf("warning %q should have been ignored", x)
			}
		}
	}
}

// TestMergeShardRows: a merge has one row per shard (its own attempts, errors, late starts,
// start offset), carries a shard's invalid reasons into the merged Invalid, and warns when the
// shards' windows do not line up.
func TestMergeShardRows(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
	sa := shardRun(t, a, "0/3", epoch, randomLatencies(3, 100), 2)
	shardRun(t, b, "1/3", epoch.Add(20*time.Millisecond), randomLatencies(4, 50), 0)
	// Shard 2/3 was not ready: started 1.5 s late and recorded why.
	clk := &stepClock{now: epoch.Add(1500 * time.Millisecond)}
	rec := metrics.NewRecorder()
	p := baseParams()
	p.Shard, p.Rate = "2/3", 5
	w, err := Create(c, p, rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	w.AddInvalid("shard 2/3 was not ready at the common start")
	w.AddInvalid("")
	rec.LateStart(30 * time.Millisecond)
	at := rec.Begin()
	rec.RecordDurations(metrics.Setup, ms(5), ms(5))
	at.End(metrics.Success, "")
	clk.advance(time.Second)
	sc, err := w.Finalize(time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Invalid) != 1 || sc.Invalid[0] != "shard 2/3 was not ready at the common start" {
		t.Fatalf("shard invalid %q", sc.Invalid)
	}

	m, err := Merge(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ShardRuns) != 3 {
		t.Fatalf("%d shard rows, want 3", len(m.ShardRuns))
	}
	r0, r1, r2 := m.ShardRuns[0], m.ShardRuns[1], m.ShardRuns[2]
	if r0.Shard != "0/3" || r0.Attempts != 100 || r0.Errors != 2 || r0.StartOffsetMS != 0 || r0.IntendedRate != 5 || r0.AchievedRate != sa.AchievedRate {
		t.Errorf("row 0/3: %+v", r0)
	}
	if r1.Attempts != 50 || r1.Errors != 0 || r1.StartOffsetMS != 20 {
		t.Errorf("row 1/3: %+v", r1)
	}
	if r2.Attempts != 1 || r2.LateStarts != 1 || r2.MaxLateLagUS != 30000 || r2.StartOffsetMS != 1500 || len(r2.Invalid) != 1 {
		t.Errorf("row 2/3: %+v", r2)
	}
	var sum uint64
	for _, r := range m.ShardRuns {
		sum += r.Attempts
	}
	if sum != m.Tally.Attempts {
		t.Errorf("rows add up to %d attempts, merged %d", sum, m.Tally.Attempts)
	}
	if len(m.Invalid) != 1 || m.Invalid[0] != "2/3: shard 2/3 was not ready at the common start" {
		t.Errorf("merged invalid %q", m.Invalid)
	}
	if !slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.Contains(w, "started up to 1.5s apart") }) {
		t.Errorf("no skew warning in %q", m.Warnings)
	}
	// Shards started together (a and b, 20 ms apart): no skew warning, nothing invalid.
	m2, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Invalid) != 0 || slices.ContainsFunc(m2.Warnings, func(w string) bool { return strings.Contains(w, "apart") }) {
		t.Errorf("aligned shards: invalid %q, warnings %q", m2.Invalid, m2.Warnings)
	}
}

// TestWriterWindowStart: a run that created its directory and then waited for a synchronized
// start has its window, and so its rates, from that start; an earlier time is ignored.
func TestWriterWindowStart(t *testing.T) {
	t.Parallel()
	clk := &stepClock{now: epoch}
	rec := metrics.NewRecorder()
	w, err := Create(filepath.Join(t.TempDir(), "run"), baseParams(), rec, WithClock(clk.Now), WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	w.SetWindowStart(epoch.Add(-time.Second)) // before Create: ignored
	w.SetWindowStart(epoch.Add(2 * time.Second))
	secondOfCalls(rec, 0)
	clk.advance(5 * time.Second)
	sum, err := w.Finalize(time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Start.Equal(epoch.Add(2*time.Second)) || sum.DurationS != 3 || sum.AchievedRate != 10.0/3 {
		t.Errorf("start %s, window %gs, rate %g; want the window from the synchronized start (3 s, 10 calls)", sum.Start, sum.DurationS, sum.AchievedRate)
	}
}
