// Package slo parses service-level objectives such as
// "setup.p99<100ms,errors<0.1%,rate>=450/s" and judges a run's results against them.
//
// Grammar: clauses separated by commas, each QUANTITY OP VALUE with OP one of < <= > >=.
//
//	<metric>.pN  <duration>   corrected latency percentile, 0 < N <= 100 (p50, p99.9); .max = p100
//	errors       N% | N       non-success calls among completed ones (aborted excluded); N = a count
//	timeouts     N% | N       timed-out calls among completed ones
//	lost         N% | N       lost messages among sent (checked) ones
//	in_flight    N% | N       sent messages neither delivered nor lost when the run ended
//	duplicated   N% | N       extra copies of delivered messages, per message sent
//	misrouted    N% | N       messages at the wrong inbox or with the wrong sender level, per message sent
//	altered      N% | N       messages whose content or transID changed, per message sent
//	unexpected   N% | N       messages nothing of ours caused, per message sent
//	out_of_order N% | N       ICE candidates delivered after a later one, per message sent
//	late_starts  N% | N       late starts among attempts
//	rate         N/s | N/min  achieved call-start rate
//	violations   N            findings of the passive protocol checker (load --check); a count only
//
// Durations use Go syntax (250us, 100ms, 1.5s). Metrics are those of package metrics.
package slo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// Kind says what a threshold measures and so the unit of its Limit.
type Kind uint8

// Threshold kinds.
const (
	Latency Kind = iota // a corrected latency percentile; Limit in microseconds
	Ratio               // a share of a total; Limit as a fraction (0.001 = 0.1%)
	Count               // an absolute count; Limit a number of events
	Rate                // achieved call-start rate; Limit per second
)

// Op is a comparison; the measured value must satisfy "measured Op Limit".
type Op uint8

// Comparisons.
const (
	Less Op = iota
	LessEq
	Greater
	GreaterEq
)

var opText = [...]string{"<", "<=", ">", ">="}

// String returns the operator as written in a spec.
func (o Op) String() string { return opText[o] }

func (o Op) holds(v, limit float64) bool {
	switch o {
	case Less:
		return v < limit
	case LessEq:
		return v <= limit
	case Greater:
		return v > limit
	default:
		return v >= limit
	}
}

// Threshold is one parsed clause.
type Threshold struct {
	Quantity   string         // "setup.p99", "rate", or one of the counted quantities (errors, lost, ...)
	Kind       Kind           // what Limit means
	Metric     metrics.Metric // for Latency
	Percentile float64        // for Latency, in (0, 100]
	Op         Op
	Limit      float64
	text       string // the value as written, for display
}

// String returns the clause in canonical form, e.g. "setup.p99<100ms".
func (t Threshold) String() string { return t.Quantity + t.Op.String() + t.text }

// counted are the quantities that take a percentage or a count.
var counted = []string{"errors", "timeouts", "lost", "in_flight", "duplicated", "misrouted", "altered",
	"unexpected", "out_of_order", "late_starts"}

// Parse parses a comma-separated SLO spec; the empty spec has no thresholds. Every bad clause
// is reported.
func Parse(spec string) ([]Threshold, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var ths []Threshold
	var errs []error
	for _, clause := range strings.Split(spec, ",") {
		t, err := parseClause(strings.TrimSpace(clause))
		if err != nil {
			errs = append(errs, fmt.Errorf("slo %q: %w", strings.TrimSpace(clause), err))
			continue
		}
		ths = append(ths, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ths, nil
}

func parseClause(c string) (Threshold, error) {
	if c == "" {
		return Threshold{}, errors.New("empty clause")
	}
	i := strings.IndexAny(c, "<>")
	if i < 0 {
		return Threshold{}, errors.New("no comparison: want QUANTITY<VALUE (or <=, >, >=)")
	}
	var t Threshold
	lhs, rest := strings.TrimSpace(c[:i]), c[i:]
	switch {
	case strings.HasPrefix(rest, "<="):
		t.Op, rest = LessEq, rest[2:]
	case strings.HasPrefix(rest, ">="):
		t.Op, rest = GreaterEq, rest[2:]
	case rest[0] == '<':
		t.Op, rest = Less, rest[1:]
	default:
		t.Op, rest = Greater, rest[1:]
	}
	rhs := strings.TrimSpace(rest)
	if rhs == "" {
		return Threshold{}, errors.New("missing value after " + t.Op.String())
	}
	if strings.ContainsAny(rhs, "<>=") {
		return Threshold{}, errors.New("more than one comparison")
	}
	if lhs == "" {
		return Threshold{}, errors.New("missing quantity before " + t.Op.String())
	}
	switch {
	case strings.Contains(lhs, "."):
		return parseLatency(t, lhs, rhs)
	case lhs == "rate":
		return parseRate(t, rhs)
	case slices.Contains(counted, lhs):
		return parseCounted(t, lhs, rhs)
	case lhs == Violations:
		return parseViolations(t, rhs)
	}
	if _, err := metrics.ParseMetric(lhs); err == nil {
		return Threshold{}, fmt.Errorf("metric %q needs a percentile, e.g. %s.p99", lhs, lhs)
	}
	return Threshold{}, fmt.Errorf("unknown quantity %q (want <metric>.pN, %s, rate or %s)", lhs, strings.Join(counted, ", "), Violations)
}

func parseLatency(t Threshold, lhs, rhs string) (Threshold, error) {
	name, pct, _ := strings.Cut(lhs, ".")
	m, err := metrics.ParseMetric(name)
	if err != nil {
		return Threshold{}, err
	}
	p, err := parsePercentile(pct)
	if err != nil {
		return Threshold{}, err
	}
	d, err := parseDuration(rhs)
	if err != nil {
		return Threshold{}, err
	}
	t.Kind, t.Metric, t.Percentile = Latency, m, p
	t.Quantity, t.Limit, t.text = name+"."+pct, float64(d.Microseconds()), rhs
	return t, nil
}

func parsePercentile(s string) (float64, error) {
	if s == "max" {
		return 100, nil
	}
	bad := fmt.Errorf("unknown percentile %q (want pN with 0 < N <= 100, e.g. p50, p99.9, or max)", s)
	num, ok := strings.CutPrefix(s, "p")
	if !ok || num == "" {
		return 0, bad
	}
	p, err := strconv.ParseFloat(num, 64)
	if err != nil || !(p > 0 && p <= 100) {
		return 0, bad
	}
	return p, nil
}

func parseDuration(s string) (time.Duration, error) {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("latency %q has no unit (want a duration such as 250us, 100ms, 1.5s)", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad unit in latency %q (want a duration such as 250us, 100ms, 1.5s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("latency %q is negative", s)
	}
	if d%time.Microsecond != 0 {
		return 0, fmt.Errorf("latency %q is finer than the 1µs resolution", s)
	}
	return d, nil
}

func parseCounted(t Threshold, lhs, rhs string) (Threshold, error) {
	t.Quantity, t.text = lhs, rhs
	if num, ok := strings.CutSuffix(rhs, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return Threshold{}, fmt.Errorf("bad percentage %q (want 0%%..100%%)", rhs)
		}
		t.Kind, t.Limit = Ratio, v/100
		return t, nil
	}
	n, err := strconv.ParseUint(rhs, 10, 64)
	if err != nil {
		return Threshold{}, fmt.Errorf("bad unit in %q for %s (want a percentage such as 0.1%% or a whole count such as 5)", rhs, lhs)
	}
	t.Kind, t.Limit = Count, float64(n)
	return t, nil
}

// Violations is the quantity of the checker's findings. Only a count makes sense: a finding
// is a broken requirement, not a share of some total.
const Violations = "violations"

func parseViolations(t Threshold, rhs string) (Threshold, error) {
	n, err := strconv.ParseUint(rhs, 10, 64)
	if err != nil {
		return Threshold{}, fmt.Errorf("bad value %q for %s (want a whole count of findings such as 0)", rhs, Violations)
	}
	t.Kind, t.Quantity, t.Limit, t.text = Count, Violations, float64(n), rhs
	return t, nil
}

// HasViolations reports whether ths judge the checker's findings (load needs --check then).
func HasViolations(ths []Threshold) bool {
	return slices.ContainsFunc(ths, func(t Threshold) bool { return t.Quantity == Violations })
}

func parseRate(t Threshold, rhs string) (Threshold, error) {
	num, unit, ok := strings.Cut(rhs, "/")
	per := map[string]float64{"s": 1, "sec": 1, "min": 60, "m": 60}
	div, known := per[strings.TrimSpace(unit)]
	if !ok || !known {
		return Threshold{}, fmt.Errorf("bad unit in rate %q (want calls per time such as 450/s or 27000/min)", rhs)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return Threshold{}, fmt.Errorf("bad number in rate %q", rhs)
	}
	t.Kind, t.Quantity, t.Limit, t.text = Rate, "rate", v/div, rhs
	return t, nil
}
