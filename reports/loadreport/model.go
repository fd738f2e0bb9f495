// Package loadreport turns load results (loadgen/README.md: a results directory, shards of
// one run, or a capacity search's capacity.json with its step directories) into a report
// a planner can act on: percentiles per metric, outcomes, SLO verdicts, validity warnings,
// latency and throughput over time from the interval log, the capacity curve with its knee,
// the raw-MQTT baseline where the run recorded one, and the planning calculator. Output is
// self-contained HTML (charts as inline SVG) and JSON (format FormatReport).
package loadreport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/capacity"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
	"github.com/rtcomm-harness/rtcomm-harness/reports/plan"
)

// FormatReport identifies the JSON report; fields are only added within v1.
const FormatReport = "rtcomm-harness/load-report/v1"

// Report is everything the HTML shows, as data (the JSON output).
type Report struct {
	Format string   `json:"format"`
	Source []string `json:"source"` // the directories reported on, as given
	Kind   string   `json:"kind"`   // "run", "merge" (shards) or "capacity"

	Run      Run           `json:"run"`                // the run (capacity: the step shown in detail)
	Metrics  []MetricRow   `json:"metrics"`            // metrics with values, in fixed metric order
	Tally    metrics.Tally `json:"tally"`              // outcomes and message counters
	Timeline []Interval    `json:"timeline,omitempty"` // one entry per second of the load window

	Baseline *results.Baseline `json:"baseline,omitempty"` // raw MQTT relay measured in the same run
	Check    *results.Check    `json:"check,omitempty"`    // the passive protocol checker's findings (load --check)
	Capacity *Capacity         `json:"capacity,omitempty"` // the capacity search, when the source is one
	Plan     *plan.Result      `json:"plan,omitempty"`     // the planning calculator's starting point

	summary *results.Summary
}

// Run is the summary of the run without its histograms.
type Run struct {
	Params results.Params `json:"params"`
	Shards []string       `json:"shards,omitempty"`
	// ShardRuns: a merged run's per-shard rows (results.Summary.ShardRuns).
	ShardRuns    []results.ShardRun `json:"shard_runs,omitempty"`
	Start        time.Time          `json:"start"`
	End          time.Time          `json:"end"`
	DurationS    float64            `json:"duration_s"`
	Interrupted  bool               `json:"interrupted"`
	Rebuilt      bool               `json:"rebuilt"`
	AchievedRate float64            `json:"achieved_rate"`
	Goodput      float64            `json:"goodput"`
	ErrorRatio   *float64           `json:"error_ratio"` // errors/completed; null when nothing completed
	SLO          slo.Verdicts       `json:"slo"`
	SLOPassed    bool               `json:"slo_passed"`
	Warnings     []string           `json:"warnings"`
	// Invalid says why the run is not a valid measurement (results.Summary.Invalid).
	Invalid []string `json:"invalid,omitempty"`
	// Step: for a capacity report, which step this is and why it was chosen.
	Step string `json:"step,omitempty"`
}

// Stats are one histogram's headline numbers, microseconds.
type Stats struct {
	Count  int64   `json:"count"`
	MinUS  int64   `json:"min_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  int64   `json:"p50_us"`
	P90US  int64   `json:"p90_us"`
	P99US  int64   `json:"p99_us"`
	P999US int64   `json:"p99_9_us"`
	MaxUS  int64   `json:"max_us"`
}

func statsOf(s results.Stats) Stats {
	return Stats{Count: s.Count, MinUS: s.MinUS, MeanUS: s.MeanUS, P50US: s.P50US, P90US: s.P90US, P99US: s.P99US, P999US: s.P999US, MaxUS: s.MaxUS}
}

// MetricRow is one metric measured both ways.
type MetricRow struct {
	Name        string `json:"name"`
	Corrected   Stats  `json:"corrected"`
	Uncorrected Stats  `json:"uncorrected"`
}

// Interval is one second of the run.
type Interval struct {
	T float64 `json:"t"` // seconds from the start of the window
	// Attempts and Errors started/ended in the second, from the log's counters (absent for a
	// merged log, which keeps only the final counters).
	Attempts *uint64 `json:"attempts,omitempty"`
	Errors   *uint64 `json:"errors,omitempty"`
	// Metrics: values recorded in the second, per metric (corrected).
	Metrics map[string]IntervalStats `json:"metrics"`
}

// IntervalStats is one metric in one second.
type IntervalStats struct {
	Count int64 `json:"count"`
	P50US int64 `json:"p50_us"`
	P99US int64 `json:"p99_us"`
	MaxUS int64 `json:"max_us"`
}

// Capacity is the capacity search as the report shows it.
type Capacity struct {
	Mode     string  `json:"mode"`
	Quantity string  `json:"quantity"`
	Unit     string  `json:"unit"`
	Metric   string  `json:"metric"`
	SLO      string  `json:"slo"`
	Status   string  `json:"status"`
	Error    string  `json:"error,omitempty"`
	Knee     *Knee   `json:"knee"`
	Curve    []Point `json:"curve"` // steps by level
}

// Knee is the highest level that passed.
type Knee struct {
	Level     float64 `json:"level"`
	Bound     string  `json:"bound"`
	NextLevel float64 `json:"next_level,omitempty"`
	Text      string  `json:"text"`
}

// Point is one step of the search.
type Point struct {
	Step          int      `json:"step"`
	Phase         string   `json:"phase"`
	Level         float64  `json:"level"`
	AchievedRate  float64  `json:"achieved_rate"`
	Goodput       float64  `json:"goodput"`
	ErrorRatio    float64  `json:"error_ratio"`
	Latency       Stats    `json:"latency"` // of Capacity.Metric, corrected
	Valid         bool     `json:"valid"`
	InvalidReason string   `json:"invalid_reason,omitempty"`
	Pass          bool     `json:"pass"`
	Failed        []string `json:"failed,omitempty"`
	Dir           string   `json:"dir"`
}

// Options tune a report.
type Options struct {
	// Plan holds the calculator's starting inputs; zero values take DefaultInputs.
	Plan plan.Inputs
	// Labels replace the directories as shown (golden tests use fixed labels); default the paths.
	Labels []string
}

// DefaultInputs is the calculator's starting point when none is given: an example
// population, meant to be edited.
func DefaultInputs() plan.Inputs {
	return plan.Inputs{Users: 100_000, BHCA: 1, Hold: 2 * time.Minute, RegisteredShare: 0.6, Headroom: 1.5}
}

// Build reads the results and assembles the report. One directory holding capacity.json is
// a capacity report (details from the knee step); one results directory is a run; several
// results directories are shards of one run, merged exactly in memory (results.Merge).
func Build(dirs []string, o Options) (*Report, error) {
	if len(dirs) == 0 {
		return nil, errors.New("load report: no results directory")
	}
	r := &Report{Format: FormatReport, Source: o.Labels}
	if len(r.Source) != len(dirs) {
		r.Source = append([]string(nil), dirs...)
	}
	var err error
	logDirs := dirs
	switch {
	case len(dirs) == 1 && exists(filepath.Join(dirs[0], capacity.FileName)):
		r.Kind = "capacity"
		var stepDir string
		stepDir, err = r.readCapacity(dirs[0])
		if err != nil {
			return nil, err
		}
		logDirs = nil
		if stepDir != "" {
			// A step that died before writing results still leaves the curve worth showing.
			if r.summary, err = results.Load(stepDir); err != nil {
				r.Run.Warnings = append(r.Run.Warnings, fmt.Sprintf("no details for %s: %v", r.Run.Step, err))
				r.Run.Step, r.summary, err = "", nil, nil
			} else {
				logDirs = []string{stepDir}
			}
		}
	case len(dirs) == 1:
		r.Kind = "run"
		r.summary, err = results.Load(dirs[0])
	default:
		r.Kind = "merge"
		r.summary, err = results.Merge(dirs...)
	}
	if err != nil {
		return nil, fmt.Errorf("load report: %w", err)
	}
	if r.summary != nil {
		if len(r.summary.Shards) > 0 && r.Kind == "run" {
			r.Kind = "merge"
		}
		r.fromSummary()
		if r.Timeline, err = timeline(logDirs, r.summary.Start); err != nil {
			return nil, fmt.Errorf("load report: %w", err)
		}
	}
	in := o.Plan
	if in == (plan.Inputs{}) {
		in = DefaultInputs()
	}
	c, err := r.measuredCapacity()
	if err != nil {
		return nil, err
	}
	if r.Plan, err = plan.Compute(in, c); err != nil {
		return nil, fmt.Errorf("load report: planning inputs: %w", err)
	}
	return r, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (r *Report) fromSummary() {
	s := r.summary
	r.Run = Run{
		Params: s.Params, Shards: s.Shards, ShardRuns: s.ShardRuns, Start: s.Start, End: s.End, DurationS: s.DurationS,
		Interrupted: s.Interrupted, Rebuilt: s.Rebuilt, AchievedRate: s.AchievedRate, Goodput: s.Goodput,
		SLO: s.SLO, SLOPassed: s.SLOPassed, Warnings: append(r.Run.Warnings, s.Warnings...), Invalid: s.Invalid, Step: r.Run.Step,
	}
	if er, ok := s.Tally.ErrorRatio(); ok {
		r.Run.ErrorRatio = &er
	}
	r.Tally = s.Tally
	r.Baseline = s.Baseline
	r.Check = s.Check
	for _, m := range metrics.All() {
		ms, ok := s.Metrics[m.String()]
		if !ok || (ms.Corrected.Count == 0 && ms.Uncorrected.Count == 0) {
			continue
		}
		r.Metrics = append(r.Metrics, MetricRow{Name: m.String(), Corrected: statsOf(ms.Corrected), Uncorrected: statsOf(ms.Uncorrected)})
	}
}

// readCapacity fills r.Capacity and returns the results directory of the step to detail:
// the knee's, else the highest valid step's, else the last step's ("" without steps).
func (r *Report) readCapacity(dir string) (string, error) {
	res, err := capacity.Load(dir)
	if err != nil {
		return "", fmt.Errorf("load report: %w", err)
	}
	c := &Capacity{Mode: string(res.Mode), Quantity: res.Quantity, Unit: res.Unit, Metric: res.Metric,
		SLO: res.Params.SLO, Status: res.Status, Error: res.Error}
	for _, s := range res.Curve() {
		c.Curve = append(c.Curve, Point{Step: s.Index, Phase: s.Phase, Level: s.Level, AchievedRate: s.AchievedRate,
			Goodput: s.Goodput, ErrorRatio: s.ErrorRatio, Valid: s.Valid, InvalidReason: s.InvalidReason,
			Pass: s.Pass, Failed: s.Failed, Dir: s.Dir,
			Latency: Stats{Count: s.Latency.Count, P50US: s.Latency.P50US, P90US: s.Latency.P90US, P99US: s.Latency.P99US,
				P999US: s.Latency.P999US, MaxUS: s.Latency.MaxUS}})
	}
	r.Capacity = c
	r.Run.Params.Target, r.Run.Params.HarnessVersion = res.Params.Target, res.Params.HarnessVersion
	pick, why := -1, ""
	if k := res.Knee; k != nil {
		c.Knee = &Knee{Level: k.Level, Bound: k.Bound, NextLevel: k.NextLevel, Text: k.Text}
		pick, why = k.Step, "the knee"
	}
	if pick < 0 {
		for _, s := range res.Steps {
			if s.Valid && (pick < 0 || s.Level > res.Steps[pick].Level) {
				pick, why = s.Index, "the highest valid step (no step passed)"
			}
		}
	}
	if pick < 0 && len(res.Steps) > 0 {
		pick, why = res.Steps[len(res.Steps)-1].Index, "the last step (no valid step)"
	}
	for _, s := range res.Steps {
		if s.Index == pick {
			r.Run.Step = fmt.Sprintf("step %d at %s %s: %s", s.Index, capacity.FormatLevel(s.Level), res.Unit, why)
			p := s.Dir
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			return p, nil
		}
	}
	return "", nil
}

// measuredCapacity is what the run says one connector and broker sustain.
func (r *Report) measuredCapacity() (plan.Capacity, error) {
	var c plan.Capacity
	switch {
	case r.Capacity != nil && r.Capacity.Knee != nil:
		k := r.Capacity.Knee
		src := fmt.Sprintf("capacity search knee %s %s (bound %s, SLO %s)", capacity.FormatLevel(k.Level), r.Capacity.Unit, k.Bound, r.Capacity.SLO)
		switch capacity.Mode(r.Capacity.Mode) {
		case capacity.Calls:
			c.SessionRate = k.Level
		case capacity.Endpoints:
			c.Connections = k.Level
		case capacity.Registrations:
			c.RegistrationRate = k.Level
		}
		c.Sources = append(c.Sources, src)
	case r.Kind != "capacity" && r.summary != nil && r.summary.SLOPassed && r.summary.Params.SLO != "" && !r.summary.Interrupted && len(r.summary.Invalid) == 0:
		// A single run that met its SLO shows the target sustains at least its achieved rate.
		c.SessionRate = round3(r.summary.AchievedRate)
		c.Sources = append(c.Sources, fmt.Sprintf("a run that met its SLO (%s) at %.1f calls/s: a lower bound, not a knee", r.summary.Params.SLO, r.summary.AchievedRate))
	}
	if r.summary != nil {
		if h, ok := holdOf(r.summary.Params.Extra); ok && c.SessionRate > 0 {
			c.TestedHoldS = h.Seconds()
		}
	}
	return c, nil
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// holdOf finds the mean call duration a run recorded in params.extra: a key naming a hold
// time ("hold", "hold_mean", "calls.hold_mean", ...) with a Go duration string.
func holdOf(extra map[string]any) (time.Duration, bool) {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := extra[k].(type) {
		case string:
			if strings.Contains(strings.ToLower(k), "hold") {
				if d, err := time.ParseDuration(v); err == nil && d > 0 {
					return d, true
				}
			}
		case map[string]any:
			if d, ok := holdOf(v); ok {
				return d, true
			}
		}
	}
	return 0, false
}

// Histogram returns a metric's full histogram from the summary.
func (r *Report) histogram(name string, corrected bool) (*hdrhistogram.Histogram, error) {
	m, err := metrics.ParseMetric(name)
	if err != nil {
		return nil, err
	}
	return r.summary.Histogram(m, corrected)
}

// CapacityFrom collects the measured capacity of several directories (capacity searches of
// different modes, or runs that met their SLO). When two give the same figure, the lower
// one is kept: planning against the better of two measurements would be optimistic.
func CapacityFrom(dirs []string) (plan.Capacity, error) {
	var c plan.Capacity
	for _, d := range dirs {
		r, err := Build([]string{d}, Options{})
		if err != nil {
			return c, err
		}
		m := r.Plan.Capacity
		if m.SessionRate == 0 && m.Connections == 0 && m.RegistrationRate == 0 {
			return c, fmt.Errorf("capacity %s: no measured capacity (no knee, or a run without a met SLO)", d)
		}
		c.SessionRate = lower(c.SessionRate, m.SessionRate)
		if c.SessionRate == m.SessionRate && m.TestedHoldS > 0 {
			c.TestedHoldS = m.TestedHoldS
		}
		c.Connections = lower(c.Connections, m.Connections)
		c.RegistrationRate = lower(c.RegistrationRate, m.RegistrationRate)
		for _, s := range m.Sources {
			c.Sources = append(c.Sources, d+": "+s)
		}
	}
	return c, nil
}

// lower keeps the smaller of two measured figures; 0 is "not measured".
func lower(a, b float64) float64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
