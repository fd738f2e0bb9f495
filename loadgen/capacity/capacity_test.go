package capacity

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

const testSLO = "setup.p99<100ms,errors<0.1%"

// fakeTarget is a deterministic target and generator: calls at a level up to Capacity take
// 10 ms, above it 200 ms; above GenLimit the generator starts 10% of its calls late. It
// writes a real results directory per step, so judging reads the real summary format.
type fakeTarget struct {
	Capacity float64
	GenLimit float64 // 0: no limit
	// FlakyOnce: levels whose first run is invalid (a transient generator stall).
	FlakyOnce map[float64]bool
	// FailExtra: levels failing outside the SLO (TargetFailures).
	FailExtra func(level float64) bool
	// OnStep runs before a step is measured; returning an error fails the step.
	Before func(ctx context.Context, s Step) error

	mu    sync.Mutex
	runs  []float64
	flaky map[float64]bool
}

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeTarget) Step(ctx context.Context, s Step) (StepResult, error) {
	sum, err := f.step(ctx, s)
	var extra []string
	if f.FailExtra != nil && f.FailExtra(s.Level) {
		extra = []string{"endpoints did not come up"}
	}
	return StepResult{Summary: sum, TargetFailures: extra}, err
}

func (f *fakeTarget) step(ctx context.Context, s Step) (*results.Summary, error) {
	f.mu.Lock()
	f.runs = append(f.runs, s.Level)
	stall := f.FlakyOnce[s.Level] && !f.flaky[s.Level]
	if stall {
		if f.flaky == nil {
			f.flaky = map[float64]bool{}
		}
		f.flaky[s.Level] = true
	}
	f.mu.Unlock()
	if f.Before != nil {
		if err := f.Before(ctx, s); err != nil {
			return nil, err
		}
	}
	start := epoch.Add(time.Duration(s.Index) * time.Minute)
	rec := metrics.NewRecorder()
	w, err := results.Create(s.Dir, results.Params{Rate: s.Level, Duration: results.Duration(s.Steady),
		Pacer: "constant", LateThreshold: results.Duration(10 * time.Millisecond), SLO: testSLO}, rec,
		results.WithClock(func() time.Time { return start }), results.WithFlushEvery(0))
	if err != nil {
		return nil, err
	}
	lat := 10 * time.Millisecond
	if s.Level > f.Capacity {
		lat = 200 * time.Millisecond
	}
	n := int(math.Round(s.Level * s.Steady.Seconds()))
	late := (f.GenLimit > 0 && s.Level > f.GenLimit) || stall
	for i := range n {
		a := rec.Begin()
		rec.RecordDurations(metrics.Setup, lat, lat)
		a.End(metrics.Success, "")
		if late && i%10 == 0 {
			rec.LateStart(50 * time.Millisecond)
		}
	}
	interrupted := ctx.Err() != nil
	sum, err := w.Finalize(start.Add(s.Steady), interrupted)
	if err != nil {
		return sum, err
	}
	if interrupted {
		return sum, ctx.Err()
	}
	return sum, nil
}

func (f *fakeTarget) levels() []float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func baseOptions() Options {
	return Options{Mode: Calls, Start: 50, Max: 1000, Factor: 2, Tolerance: 0.05,
		Steady: time.Second, Warmup: time.Second, SLO: testSLO,
		Now: func() time.Time { return epoch }}
}

func runSearch(t *testing.T, f *fakeTarget, o Options) (*Result, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cap")
	res, err := Search(context.Background(), dir, f, o)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	return res, dir
}

func TestKneeFoundExactly(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{Capacity: 200}
	res, dir := runSearch(t, f, baseOptions())
	if res.Knee == nil || res.Knee.Level != 200 || res.Knee.Bound != BoundSLO {
		t.Fatalf("knee = %+v, want 200 bounded by slo", res.Knee)
	}
	// Ramp 50, 100, 200, 400 (first fail), then bisect down to within 5% of 200.
	want := []float64{50, 100, 200, 400, 300, 250, 225, 212.5, 206.3}
	if got := f.levels(); !slices.Equal(got, want) {
		t.Errorf("levels run = %v, want %v", got, want)
	}
	if res.Knee.Resolution > 0.05 || res.Knee.NextLevel != 206.3 {
		t.Errorf("knee resolution %v next %v, want <= 0.05 and 206.3", res.Knee.Resolution, res.Knee.NextLevel)
	}
	if res.Status != StatusDone {
		t.Errorf("status %q, want done", res.Status)
	}
	// The file on disk is the same document, and every step has its results directory.
	disk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk.Steps) != len(want) || disk.Knee == nil || disk.Knee.Level != 200 || disk.Format != Format {
		t.Fatalf("capacity.json: %d steps, knee %+v", len(disk.Steps), disk.Knee)
	}
	for _, st := range disk.Steps {
		sum, err := results.Load(filepath.Join(dir, st.Dir))
		if err != nil {
			t.Fatalf("step %d: %v", st.Index, err)
		}
		if sum.Params.Rate != st.Level {
			t.Errorf("step %d dir holds rate %v, want %v", st.Index, sum.Params.Rate, st.Level)
		}
		wantPass := st.Level <= 200
		if st.Pass != wantPass || !st.Valid {
			t.Errorf("step %d at %v: pass=%v valid=%v, want pass=%v valid", st.Index, st.Level, st.Pass, st.Valid, wantPass)
		}
		if !wantPass && (len(st.Failed) != 1 || !strings.HasPrefix(st.Failed[0], "setup.p99<100ms")) {
			t.Errorf("step %d failed clauses %v, want setup.p99", st.Index, st.Failed)
		}
		if math.Abs(st.AchievedRate-st.Level) > 0.5 || st.Latency.Count == 0 { // whole calls in a 1 s window
			t.Errorf("step %d achieved %v (want %v), latency count %d", st.Index, st.AchievedRate, st.Level, st.Latency.Count)
		}
	}
	if !strings.Contains(res.Knee.Text, "206.3 calls/s broke it") {
		t.Errorf("knee text %q", res.Knee.Text)
	}
}

func TestBisectionConvergesWithinTolerance(t *testing.T) {
	t.Parallel()
	for _, c := range []float64{77, 999.9} {
		for _, tol := range []float64{0.01, 0.1} {
			o := baseOptions()
			o.Tolerance = tol
			res, _ := runSearch(t, &fakeTarget{Capacity: c}, o)
			k := res.Knee
			if k == nil || k.Bound != BoundSLO {
				t.Fatalf("capacity %v tol %v: knee %+v", c, tol, k)
			}
			if k.Level > c || k.NextLevel <= c {
				t.Errorf("capacity %v: bracket [%v, %v] does not hold it", c, k.Level, k.NextLevel)
			}
			if gap := k.NextLevel - k.Level; gap > math.Max(tol*k.Level, 0.1)+1e-9 {
				t.Errorf("capacity %v tol %v: gap %v above tolerance", c, tol, gap)
			}
			for _, st := range res.Steps {
				if st.Pass != (st.Level <= c) {
					t.Errorf("capacity %v: step at %v pass=%v", c, st.Level, st.Pass)
				}
			}
		}
	}
}

func TestGeneratorLimitIsNotTheTargetsFailure(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{Capacity: 1000, GenLimit: 150}
	o := baseOptions()
	o.Max = 2000
	res, _ := runSearch(t, f, o)
	k := res.Knee
	if k == nil || k.Bound != BoundGenerator || k.Level > 150 || k.Level < 150*0.95 {
		t.Fatalf("knee %+v, want about 150 bounded by the generator", k)
	}
	retried := false
	for i, st := range res.Steps {
		if st.Level > 150 {
			if st.Valid || st.Pass || !strings.Contains(st.InvalidReason, "generator fell behind") {
				t.Errorf("step %d at %v: valid=%v pass=%v reason %q", i, st.Level, st.Valid, st.Pass, st.InvalidReason)
			}
			// Every invalid level is run twice (Retries 1): the second run is a retry.
			if st.Phase == PhaseRetry {
				retried = true
				if prev := res.Steps[i-1]; prev.Level != st.Level || prev.Valid {
					t.Errorf("retry %d follows %+v", i, prev)
				}
			}
		} else if !st.Pass {
			t.Errorf("step %d at %v did not pass", i, st.Level)
		}
	}
	if !retried {
		t.Error("no invalid step was retried")
	}
	if !strings.Contains(k.Text, "could not keep up") {
		t.Errorf("knee text %q", k.Text)
	}
}

func TestTransientInvalidStepIsRetried(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{Capacity: 200, FlakyOnce: map[float64]bool{100: true}}
	res, _ := runSearch(t, f, baseOptions())
	if res.Knee == nil || res.Knee.Level != 200 || res.Knee.Bound != BoundSLO {
		t.Fatalf("knee %+v, want 200 bounded by slo", res.Knee)
	}
	if got := f.levels()[:4]; !slices.Equal(got, []float64{50, 100, 100, 200}) {
		t.Errorf("first levels %v, want 100 run twice", got)
	}
	if s := res.Steps[1]; s.Valid || s.Pass {
		t.Errorf("stalled step %+v counted", s)
	}
	if s := res.Steps[2]; s.Phase != PhaseRetry || !s.Pass {
		t.Errorf("retry step %+v", s)
	}
}

func TestMaxBoundAndRampDownAndNoKnee(t *testing.T) {
	t.Parallel()
	t.Run("max", func(t *testing.T) {
		o := baseOptions()
		o.Max = 300
		f := &fakeTarget{Capacity: math.Inf(1)}
		res, _ := runSearch(t, f, o)
		if res.Knee == nil || res.Knee.Level != 300 || res.Knee.Bound != BoundMax {
			t.Fatalf("knee %+v, want 300 bounded by max", res.Knee)
		}
		if got := f.levels(); !slices.Equal(got, []float64{50, 100, 200, 300}) {
			t.Errorf("levels %v", got)
		}
	})
	t.Run("ramp down", func(t *testing.T) {
		o := baseOptions()
		o.Start = 400
		f := &fakeTarget{Capacity: 100}
		res, _ := runSearch(t, f, o)
		if res.Knee == nil || res.Knee.Level != 100 || res.Knee.Bound != BoundSLO {
			t.Fatalf("knee %+v, want 100", res.Knee)
		}
		if got := f.levels()[:3]; !slices.Equal(got, []float64{400, 200, 100}) {
			t.Errorf("levels %v", got)
		}
		if res.Steps[1].Phase != PhaseRampDown {
			t.Errorf("phase %q", res.Steps[1].Phase)
		}
	})
	t.Run("none", func(t *testing.T) {
		o := baseOptions()
		o.Min = 10
		f := &fakeTarget{Capacity: 1}
		res, _ := runSearch(t, f, o)
		if res.Knee != nil {
			t.Fatalf("knee %+v, want none", res.Knee)
		}
		if got := f.levels(); !slices.Equal(got, []float64{50, 25, 12.5}) {
			t.Errorf("levels %v", got)
		}
	})
	t.Run("endpoints no bisect", func(t *testing.T) {
		o := baseOptions()
		o.Mode, o.NoBisect, o.Start, o.Max, o.Factor = Endpoints, true, 100, 10000, 1.5
		f := &fakeTarget{Capacity: 500}
		res, _ := runSearch(t, f, o)
		// 100, 150, 225, 337.5->338, 507 fails.
		if res.Knee == nil || res.Knee.Level != 338 || res.Knee.NextLevel != 507 || res.Unit != "endpoints" {
			t.Fatalf("knee %+v unit %q", res.Knee, res.Unit)
		}
	})
	t.Run("step budget", func(t *testing.T) {
		o := baseOptions()
		o.MaxSteps, o.Tolerance = 5, 0.001
		res, _ := runSearch(t, &fakeTarget{Capacity: 200}, o)
		if len(res.Steps) != 5 || res.Knee == nil || res.Knee.Bound != BoundSteps {
			t.Fatalf("%d steps, knee %+v", len(res.Steps), res.Knee)
		}
	})
}

func TestTargetFailuresFailTheStep(t *testing.T) {
	t.Parallel()
	// The SLO holds up to 400, but above 150 some endpoints do not come up.
	f := &fakeTarget{Capacity: 400, FailExtra: func(l float64) bool { return l > 150 }}
	res, _ := runSearch(t, f, baseOptions())
	if res.Knee == nil || res.Knee.Bound != BoundSLO || res.Knee.Level > 150 || res.Knee.Level < 150*0.95 {
		t.Fatalf("knee %+v, want about 150", res.Knee)
	}
	for _, st := range res.Steps {
		if st.Level > 150 && (st.Pass || !slices.Contains(st.Failed, "endpoints did not come up")) {
			t.Errorf("step at %v: pass=%v failed=%v", st.Level, st.Pass, st.Failed)
		}
	}
}

func TestCancelKeepsTheCurve(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeTarget{Capacity: 200, Before: func(ctx context.Context, s Step) error {
		if s.Index == 3 {
			cancel() // Ctrl-C during the fourth step
		}
		return nil
	}}
	dir := filepath.Join(t.TempDir(), "cap")
	res, err := Search(ctx, dir, f, baseOptions())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	disk, lerr := Load(dir)
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, r := range []*Result{res, disk} {
		if r.Status != StatusInterrupted || len(r.Steps) != 4 {
			t.Fatalf("status %q with %d steps, want interrupted with 4", r.Status, len(r.Steps))
		}
		if st := r.Steps[3]; st.Valid || st.InvalidReason != "interrupted" {
			t.Errorf("interrupted step %+v", st)
		}
		if r.Knee == nil || r.Knee.Level != 200 || !strings.Contains(r.Knee.Text, "provisional") {
			t.Errorf("knee %+v, want provisional 200", r.Knee)
		}
	}
	// The interrupted step's directory is readable too.
	if _, err := results.Load(filepath.Join(dir, disk.Steps[3].Dir)); err != nil {
		t.Errorf("interrupted step dir: %v", err)
	}
}

func TestHarnessErrorStopsTheSearch(t *testing.T) {
	t.Parallel()
	boom := errors.New("connect refused")
	f := &fakeTarget{Capacity: 200, Before: func(_ context.Context, s Step) error {
		if s.Index == 2 {
			return boom
		}
		return nil
	}}
	res, err := Search(context.Background(), filepath.Join(t.TempDir(), "cap"), f, baseOptions())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if res.Status != StatusFailed || !strings.Contains(res.Error, "connect refused") || len(res.Steps) != 3 {
		t.Fatalf("status %q error %q steps %d", res.Status, res.Error, len(res.Steps))
	}
	if res.Knee == nil || res.Knee.Level != 100 {
		t.Errorf("knee %+v, want 100 so far", res.Knee)
	}
}

func TestWrittenAfterEveryStep(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cap")
	o := baseOptions()
	var seen []int
	o.OnStep = func(st StepRecord) {
		r, err := Load(dir)
		if err != nil {
			t.Errorf("step %d: %v", st.Index, err)
			return
		}
		if len(r.Steps) != st.Index+1 || r.Status != StatusRunning {
			t.Errorf("after step %d the file has %d steps, status %q", st.Index, len(r.Steps), r.Status)
		}
		seen = append(seen, st.Index)
	}
	res, err := Search(context.Background(), dir, &fakeTarget{Capacity: 200}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(res.Steps) {
		t.Errorf("OnStep called %d times for %d steps", len(seen), len(res.Steps))
	}
	// A second search into the same directory is refused rather than mixing curves.
	if _, err := Search(context.Background(), dir, &fakeTarget{Capacity: 200}, o); err == nil {
		t.Error("second search into the same directory accepted")
	}
	// Curve sorts by level.
	c := res.Curve()
	for i := 1; i < len(c); i++ {
		if c[i].Level < c[i-1].Level {
			t.Fatalf("curve not sorted: %v then %v", c[i-1].Level, c[i].Level)
		}
	}
}

func TestOptionsAndDecodeErrors(t *testing.T) {
	t.Parallel()
	bad := []func(*Options){
		func(o *Options) { o.Start = 0 },
		func(o *Options) { o.Max = 10 },
		func(o *Options) { o.Factor = 1 },
		func(o *Options) { o.Tolerance = 1.5 },
		func(o *Options) { o.Steady = 0 },
		func(o *Options) { o.Mode = "bogus" },
		func(o *Options) { o.Start = math.NaN() },
		func(o *Options) { o.MaxLateRatio = 2 },
	}
	for i, mod := range bad {
		o := baseOptions()
		mod(&o)
		if _, err := Search(context.Background(), filepath.Join(t.TempDir(), "x"), &fakeTarget{}, o); err == nil {
			t.Errorf("case %d: bad options accepted", i)
		}
	}
	if _, err := Decode([]byte(`{"format":"rtcomm-harness/capacity/v2"}`)); err == nil {
		t.Error("other version accepted")
	}
	if _, err := Decode([]byte(`not json`)); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), FileName)); err == nil {
		t.Error("unexpected file")
	}
}
