package slo

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// Source is what thresholds are judged against; results.Summary implements it.
type Source interface {
	// Latency returns the corrected percentile of m in microseconds; ok is false without data.
	Latency(m metrics.Metric, percentile float64) (us int64, ok bool)
	// Counts returns the run's final tally.
	Counts() metrics.Tally
	// CallRate returns the call attempts started per second over the run's window.
	CallRate() float64
	// Violations returns the passive checker's findings; ok is false when no checker ran.
	Violations() (n uint64, ok bool)
}

// Verdict is one threshold judged against a run. Without data a threshold fails: an SLO
// with no evidence is not met.
type Verdict struct {
	Threshold string   `json:"threshold"`      // canonical clause, e.g. "setup.p99<100ms"
	Measured  string   `json:"measured"`       // human-readable measured value, or "no data"
	Value     *float64 `json:"value"`          // measured value in Unit; null without data
	Limit     float64  `json:"limit"`          // the threshold in Unit
	Unit      string   `json:"unit"`           // "us", "ratio", "count" or "per_s"
	Pass      bool     `json:"pass"`           // measured value satisfies the threshold
	Note      string   `json:"note,omitempty"` // why there is no data, if so
}

// Verdicts is the judgement of a whole spec.
type Verdicts []Verdict

// AnyFailed reports whether any threshold was not met.
func (vs Verdicts) AnyFailed() bool {
	for _, v := range vs {
		if !v.Pass {
			return true
		}
	}
	return false
}

var units = [...]string{Latency: "us", Ratio: "ratio", Count: "count", Rate: "per_s"}

// Evaluate judges every threshold against src, in order.
func Evaluate(ths []Threshold, src Source) Verdicts {
	out := make(Verdicts, 0, len(ths))
	t := src.Counts()
	for _, th := range ths {
		v := Verdict{Threshold: th.String(), Limit: th.Limit, Unit: units[th.Kind]}
		val, measured, ok := measure(th, src, t)
		if !ok {
			v.Measured, v.Note = "no data", measured
		} else {
			v.Value, v.Measured, v.Pass = &val, measured, th.Op.holds(val, th.Limit)
		}
		out = append(out, v)
	}
	return out
}

// measure returns the value in the threshold's unit and its display form; without data the
// display form says why.
func measure(th Threshold, src Source, t metrics.Tally) (float64, string, bool) {
	switch th.Kind {
	case Latency:
		us, ok := src.Latency(th.Metric, th.Percentile)
		if !ok {
			return 0, "no " + th.Metric.String() + " values recorded", false
		}
		return float64(us), (time.Duration(us) * time.Microsecond).String(), true
	case Rate:
		r := src.CallRate()
		return r, strconv.FormatFloat(r, 'f', 1, 64) + "/s", true
	}
	if th.Quantity == Violations {
		n, ok := src.Violations()
		if !ok {
			return 0, "no protocol check ran (load --check)", false
		}
		return float64(n), strconv.FormatUint(n, 10), true
	}
	n, d, what := counts(th.Quantity, t)
	if d == 0 {
		return 0, "no " + what, false
	}
	if th.Kind == Count {
		return float64(n), strconv.FormatUint(n, 10), true
	}
	r := float64(n) / float64(d)
	return r, fmt.Sprintf("%.3g%% (%d of %d)", 100*r, n, d), true
}

// perSent are the delivery quantities: each counts among the checked messages sent.
var perSent = map[string]func(metrics.Tally) uint64{
	"lost":         func(t metrics.Tally) uint64 { return t.Lost },
	"in_flight":    func(t metrics.Tally) uint64 { return t.InFlight },
	"duplicated":   func(t metrics.Tally) uint64 { return t.Duplicated },
	"misrouted":    func(t metrics.Tally) uint64 { return t.Misrouted },
	"altered":      func(t metrics.Tally) uint64 { return t.Altered },
	"unexpected":   func(t metrics.Tally) uint64 { return t.Unexpected },
	"out_of_order": func(t metrics.Tally) uint64 { return t.OutOfOrder },
}

// counts returns a counted quantity's numerator and denominator.
func counts(q string, t metrics.Tally) (n, d uint64, denominator string) {
	if f, ok := perSent[q]; ok {
		return f(t), t.Sent, "messages sent"
	}
	switch q {
	case "errors":
		return t.Errors(), t.Completed(), "completed calls"
	case "timeouts":
		return t.Outcomes[metrics.Timeout], t.Completed(), "completed calls"
	case "late_starts":
		return t.LateStarts, t.Attempts, "call attempts"
	}
	return 0, 0, "count for " + q // unreachable: parseClause admits only `counted`; no data fails
}
