package slo

import (
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

func TestParseGood(t *testing.T) {
	t.Parallel()
	ths, err := Parse("setup.p99<100ms, errors<0.1%,post_dial_delay.p50<=50ms,timeouts<1%,rate>=450/s," +
		"ice.p99.9<250us,teardown.max<2s,errors<=0,lost<0.5%,late_starts<=3,rate>27000/min")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		text  string
		kind  Kind
		limit float64
	}{
		{"setup.p99<100ms", Latency, 100_000},
		{"errors<0.1%", Ratio, 0.001},
		{"post_dial_delay.p50<=50ms", Latency, 50_000},
		{"timeouts<1%", Ratio, 0.01},
		{"rate>=450/s", Rate, 450},
		{"ice.p99.9<250us", Latency, 250},
		{"teardown.max<2s", Latency, 2_000_000},
		{"errors<=0", Count, 0},
		{"lost<0.5%", Ratio, 0.005},
		{"late_starts<=3", Count, 3},
		{"rate>27000/min", Rate, 450},
	}
	if len(ths) != len(want) {
		t.Fatalf("%d thresholds, want %d", len(ths), len(want))
	}
	for i, w := range want {
		th := ths[i]
		if th.String() != w.text || th.Kind != w.kind || th.Limit != w.limit {
			t.Errorf("threshold %d = %q kind %d limit %g; want %q kind %d limit %g",
				i, th, th.Kind, th.Limit, w.text, w.kind, w.limit)
		}
	}
	if ths[0].Metric != metrics.Setup || ths[0].Percentile != 99 || ths[5].Percentile != 99.9 || ths[6].Percentile != 100 {
		t.Errorf("percentiles: %+v %+v %+v", ths[0], ths[5], ths[6])
	}
	if ths, err := Parse("  "); err != nil || ths != nil {
		t.Errorf("empty spec = %v, %v", ths, err)
	}
}

func TestParseBad(t *testing.T) {
	t.Parallel()
	for spec, msg := range map[string]string{
		"setp.p99<100ms":      `unknown metric "setp"`,
		"setup.p101<100ms":    `unknown percentile "p101"`,
		"setup.q99<100ms":     `unknown percentile "q99"`,
		"setup.p<100ms":       "unknown percentile",
		"setup.median<1s":     "unknown percentile",
		"setup.p99<100":       "has no unit",
		"setup.p99<100kg":     "bad unit",
		"setup.p99<-5ms":      "negative",
		"setup.p99<1ns":       "resolution",
		"errors<5ms":          "bad unit",
		"errors<0.1":          "bad unit",
		"errors<200%":         "bad percentage",
		"timeouts<x%":         "bad percentage",
		"rate>=450":           "bad unit in rate",
		"rate>=450/h":         "bad unit in rate",
		"rate>=abc/s":         "bad number",
		"setup<100ms":         "needs a percentile",
		"latency.p99<1s":      `unknown metric "latency"`,
		"throughput>5":        "unknown quantity",
		"setup.p99=100ms":     "no comparison",
		"setup.p99<=>100ms":   "more than one comparison",
		"setup.p99<":          "missing value",
		"<100ms":              "missing quantity",
		"setup.p99<100ms,,":   "empty clause",
		"errors<1%,rate>=1/d": "rate>=1/d",
	} {
		_, err := Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", spec)
			continue
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) = %v; want it to mention %q", spec, err, msg)
		}
	}
	// Every bad clause is reported, not just the first.
	_, err := Parse("setp.p99<1s,errors<1%,rate>=5")
	if err == nil || !strings.Contains(err.Error(), "setp") || !strings.Contains(err.Error(), "rate>=5") {
		t.Errorf("multi-error = %v", err)
	}
}

type fakeSource struct {
	lat        map[metrics.Metric]map[float64]int64
	tally      metrics.Tally
	rate       float64
	violations *uint64 // nil: no checker ran
}

func (f fakeSource) Latency(m metrics.Metric, p float64) (int64, bool) {
	v, ok := f.lat[m][p]
	return v, ok
}
func (f fakeSource) Counts() metrics.Tally { return f.tally }
func (f fakeSource) CallRate() float64     { return f.rate }
func (f fakeSource) Violations() (uint64, bool) {
	if f.violations == nil {
		return 0, false
	}
	return *f.violations, true
}

// violations<=N judges the checker's findings; without a checker it has no data and fails;
// a percentage is refused (a finding is not a share of anything).
func TestViolations(t *testing.T) {
	t.Parallel()
	ths, err := Parse("violations<=0")
	if err != nil || !HasViolations(ths) {
		t.Fatalf("Parse = %v, %v", ths, err)
	}
	zero, three := uint64(0), uint64(3)
	if v := Evaluate(ths, fakeSource{violations: &zero})[0]; !v.Pass || v.Measured != "0" {
		t.Errorf("0 findings: expected pass measured 0, actual %+v", v)
	}
	if v := Evaluate(ths, fakeSource{violations: &three})[0]; v.Pass || v.Measured != "3" {
		t.Errorf("3 findings: expected FAIL measured 3, actual %+v", v)
	}
	if v := Evaluate(ths, fakeSource{})[0]; v.Pass || v.Value != nil {
		t.Errorf("no checker: expected FAIL without data, actual %+v", v)
	}
	if _, err := Parse("violations<1%"); err == nil {
		t.Error("violations<1%: expected an error")
	}
	if ths, _ := Parse("lost<=0"); HasViolations(ths) {
		t.Error("lost<=0 does not judge violations")
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	src := fakeSource{
		lat: map[metrics.Metric]map[float64]int64{
			metrics.Setup:         {99: 99_999},
			metrics.PostDialDelay: {50: 50_000},
		},
		tally: metrics.Tally{
			Attempts: 1010,
			Outcomes: metrics.Outcomes{metrics.Success: 990, metrics.Timeout: 8, metrics.Rejected: 2, metrics.Aborted: 10},
			Sent:     100, Delivered: 100,
		},
		rate: 449.5,
	}
	ths, err := Parse("setup.p99<100ms,errors<1%,post_dial_delay.p50<=50ms,timeouts<1%,rate>=450/s,ice.p99<10ms,lost<=0,errors<=9")
	if err != nil {
		t.Fatal(err)
	}
	vs := Evaluate(ths, src)
	want := []struct {
		pass     bool
		measured string
	}{
		{true, "99.999ms"},         // just under 100ms
		{false, "1% (10 of 1000)"}, // 10 of 1000 is not < 1%
		{true, "50ms"},             // <= holds at equality
		{true, "0.8% (8 of 1000)"}, // aborted calls are not in the denominator
		{false, "449.5/s"},         // just short
		{false, "no data"},         // no ICE values: an SLO without evidence fails
		{true, "0"},                // nothing lost
		{false, "10"},              // 10 errors > 9
	}
	for i, w := range want {
		v := vs[i]
		if v.Pass != w.pass || v.Measured != w.measured {
			t.Errorf("%s: pass %v measured %q; want %v %q", v.Threshold, v.Pass, v.Measured, w.pass, w.measured)
		}
	}
	if vs[5].Value != nil || vs[5].Note == "" {
		t.Errorf("no-data verdict: %+v", vs[5])
	}
	if *vs[0].Value != 99_999 || vs[0].Unit != "us" || vs[0].Limit != 100_000 {
		t.Errorf("latency verdict: %+v", vs[0])
	}
	if !vs.AnyFailed() {
		t.Error("AnyFailed = false")
	}
	if (Verdicts{vs[0], vs[2]}).AnyFailed() || (Verdicts{}).AnyFailed() {
		t.Error("AnyFailed true for passing verdicts")
	}
}

// TestEvaluateDelivery: every delivery quantity of the tally has its own clause, judged as a
// count or as a share of the messages sent; one fault in each fails only its own clause.
func TestEvaluateDelivery(t *testing.T) {
	t.Parallel()
	clauses := []string{"lost", "in_flight", "duplicated", "misrouted", "altered", "unexpected", "out_of_order"}
	set := map[string]func(*metrics.Tally){
		"lost":         func(t *metrics.Tally) { t.Lost = 1 },
		"in_flight":    func(t *metrics.Tally) { t.InFlight = 1 },
		"duplicated":   func(t *metrics.Tally) { t.Duplicated = 1 },
		"misrouted":    func(t *metrics.Tally) { t.Misrouted = 1 },
		"altered":      func(t *metrics.Tally) { t.Altered = 1 },
		"unexpected":   func(t *metrics.Tally) { t.Unexpected = 1 },
		"out_of_order": func(t *metrics.Tally) { t.OutOfOrder = 1 },
	}
	spec := strings.Join(clauses, "<=0,") + "<=0"
	ths, err := Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): expected ok, actual %v", spec, err)
	}
	clean := metrics.Tally{Sent: 200, Delivered: 200}
	if vs := Evaluate(ths, fakeSource{tally: clean}); vs.AnyFailed() {
		t.Errorf("clean tally: expected every clause to pass, actual %+v", vs)
	}
	for i, q := range clauses {
		tl := clean
		set[q](&tl)
		vs := Evaluate(ths, fakeSource{tally: tl})
		for j, v := range vs {
			if want := j != i; v.Pass != want {
				t.Errorf("one %s: clause %s: expected pass=%v, actual %v (measured %s)", q, v.Threshold, want, v.Pass, v.Measured)
			}
		}
	}
	r, err := Parse("duplicated<1%")
	if err != nil {
		t.Fatal(err)
	}
	tl := clean
	tl.Duplicated = 2
	if v := Evaluate(r, fakeSource{tally: tl})[0]; v.Pass || v.Measured != "1% (2 of 200)" {
		t.Errorf("duplicated<1%% with 2 of 200: expected FAIL measured 1%% (2 of 200), actual pass=%v %q", v.Pass, v.Measured)
	}
	if v := Evaluate(ths[:1], fakeSource{})[0]; v.Pass {
		t.Errorf("lost<=0 with nothing sent: expected fail (no evidence), actual pass")
	}
}
