package capacity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
)

// Status of a search, as written in capacity.json.
const (
	StatusRunning     = "running"     // steps still being run (the file is rewritten after each)
	StatusDone        = "done"        // the search ended normally
	StatusInterrupted = "interrupted" // stopped early (Ctrl-C): the curve so far is kept, the knee is provisional
	StatusFailed      = "failed"      // the harness could not run a step (see error)
)

// Bounds: what stopped the knee from being higher.
const (
	BoundSLO         = "slo"         // the next level tried broke the SLO: the target's limit
	BoundGenerator   = "generator"   // the next level was invalid (generator fell behind): a lower bound of the target's capacity
	BoundMax         = "max"         // every level up to the configured maximum passed: a lower bound
	BoundNone        = "none"        // no level passed, not even the minimum: no knee
	BoundInterrupted = "interrupted" // the search stopped before the knee was bracketed: provisional
	BoundSteps       = "max_steps"   // the step budget ran out before the tolerance was reached
)

// Phases of a step.
const (
	PhaseRamp     = "ramp"      // stepping up geometrically from the start level
	PhaseRampDown = "ramp_down" // the start level failed: stepping down to find a pass
	PhaseBisect   = "bisect"    // halving the interval between the last pass and the first failure
	PhaseRetry    = "retry"     // re-running a level whose previous run was invalid
)

// Result is the content of capacity.json: the parameters, every step run (the curve) and
// the knee. It is rewritten (atomically) after every step.
type Result struct {
	Format   string       `json:"format"`   // Format
	About    string       `json:"about"`    // one paragraph saying how to read this file
	Mode     Mode         `json:"mode"`     // calls, registrations or endpoints
	Quantity string       `json:"quantity"` // what a level is, e.g. "session establishment rate"
	Unit     string       `json:"unit"`     // unit of a level, e.g. "calls/s"
	Metric   string       `json:"metric"`   // latency metric in each step's latency (setup or register)
	Params   Params       `json:"params"`
	Status   string       `json:"status"`          // running, done, interrupted, failed
	Error    string       `json:"error,omitempty"` // status failed: what went wrong
	Start    time.Time    `json:"start"`
	Updated  time.Time    `json:"updated"`
	Steps    []StepRecord `json:"steps"` // in the order run; sort by level to plot the curve
	Knee     *Knee        `json:"knee"`  // null until a step passed
}

// Params are the search's parameters.
type Params struct {
	HarnessVersion string           `json:"harness_version,omitempty"`
	Target         string           `json:"target,omitempty"`
	SLO            string           `json:"slo"`
	Start          float64          `json:"start"`
	Max            float64          `json:"max"`
	Min            float64          `json:"min"`
	Factor         float64          `json:"factor"`
	Tolerance      float64          `json:"tolerance"`
	Granularity    float64          `json:"granularity"`
	Bisect         bool             `json:"bisect"`
	Warmup         results.Duration `json:"warmup"`
	Steady         results.Duration `json:"steady"`
	Retries        int              `json:"retries"`
	MaxLateRatio   float64          `json:"max_late_ratio"`
	MaxSteps       int              `json:"max_steps"`
	Extra          map[string]any   `json:"extra,omitempty"`
}

// StepRecord is one point of the curve: one level as measured over its steady interval.
type StepRecord struct {
	Index int     `json:"index"` // 0-based, order run
	Phase string  `json:"phase"` // ramp, ramp_down, bisect, retry
	Level float64 `json:"level"` // intended level, in the result's unit
	Dir   string  `json:"dir"`   // results directory of the step, relative to capacity.json

	Start time.Time `json:"start"` // steady interval (warm-up excluded)
	End   time.Time `json:"end"`

	// Valid is false when the numbers cannot be blamed on the target: the generator fell
	// behind, the run was interrupted, or nothing was measured. InvalidReason says which.
	Valid         bool   `json:"valid"`
	InvalidReason string `json:"invalid_reason,omitempty"`
	// Pass: valid and every SLO clause met. Failed lists the clauses not met.
	Pass   bool     `json:"pass"`
	Failed []string `json:"failed,omitempty"`

	AchievedRate float64 `json:"achieved_rate"` // attempts started per second of steady interval
	Goodput      float64 `json:"goodput"`       // successes per second
	Attempts     uint64  `json:"attempts"`
	Completed    uint64  `json:"completed"`   // ended, aborted excluded
	Errors       uint64  `json:"errors"`      // completed - success
	ErrorRatio   float64 `json:"error_ratio"` // errors/completed (0 without completed)
	LateStarts   uint64  `json:"late_starts"`
	LateRatio    float64 `json:"late_ratio"` // late_starts/attempts
	MaxLateLagUS int64   `json:"max_late_lag_us"`
	Lost         uint64  `json:"lost"` // checked messages declared lost

	// Latency of the result's metric (corrected for coordinated omission), microseconds.
	Latency Latency `json:"latency"`

	SLO      slo.Verdicts `json:"slo"`                // every clause with its measured value
	Warnings []string     `json:"warnings,omitempty"` // the step summary's warnings
}

// Latency holds the headline percentiles of one metric, microseconds (0 without data).
type Latency struct {
	Count  int64 `json:"count"`
	P50US  int64 `json:"p50_us"`
	P90US  int64 `json:"p90_us"`
	P99US  int64 `json:"p99_us"`
	P999US int64 `json:"p99_9_us"`
	MaxUS  int64 `json:"max_us"`
}

// Knee is the answer: the highest level that passed, and what bounded it.
type Knee struct {
	Level float64 `json:"level"` // highest passing level, in the result's unit
	Step  int     `json:"step"`  // index of the step that passed at Level
	Bound string  `json:"bound"` // slo, generator, max, max_steps, interrupted (none: Result.Knee is null)
	// NextLevel is the lowest level above Level that did not pass (0 when none did).
	NextLevel float64 `json:"next_level,omitempty"`
	NextStep  int     `json:"next_step,omitempty"` // its step index (-1 when none)
	// Resolution is NextLevel-Level relative to Level (the search stops at params.tolerance).
	Resolution float64 `json:"resolution,omitempty"`
	Text       string  `json:"text"` // one sentence for humans
}

const about = "Capacity search (RFC 7501/7502 style). Each step offered one level (see quantity, unit) " +
	"for params.warmup (not measured), then measured params.steady; its results directory is steps[i].dir " +
	"(rtcomm-harness/load-summary/v1 format). A step is valid unless the load generator itself fell behind " +
	"(late starts above params.max_late_ratio, rate not achieved) or it was interrupted; invalid steps are " +
	"retried and never counted as the target's failure. A valid step passes when every params.slo clause holds. " +
	"Levels ramp up by params.factor until the first non-pass, then bisect between the last pass and the first " +
	"non-pass until their gap is within params.tolerance of the pass. knee.level is the highest passing level; " +
	"knee.bound says what stopped it (slo: the target broke the SLO above it; generator: the generator could not " +
	"offer more, so the target holds at least that; max: the configured maximum passed). Latencies are " +
	"microseconds, corrected for coordinated omission."

// newResult starts a document for opts (already filled).
func newResult(o *Options) *Result {
	now := o.Now().Round(0).UTC()
	return &Result{
		Format: Format, About: about, Mode: o.Mode,
		Quantity: o.Mode.Quantity(), Unit: o.Mode.Unit(), Metric: o.Mode.Metric().String(),
		Params: Params{
			HarnessVersion: o.HarnessVersion, Target: o.Target, SLO: o.SLO,
			Start: o.Start, Max: o.Max, Min: o.Min, Factor: o.Factor, Tolerance: o.Tolerance,
			Granularity: o.Granularity, Bisect: !o.NoBisect,
			Warmup: results.Duration(o.Warmup), Steady: results.Duration(o.Steady),
			Retries: o.Retries, MaxLateRatio: o.MaxLateRatio, MaxSteps: o.MaxSteps, Extra: o.Extra,
		},
		Status: StatusRunning, Start: now, Updated: now, Steps: []StepRecord{},
	}
}

// judge turns a step's summary into a curve point: validity first (was the load offered as
// intended?), then the SLO verdicts.
func judge(rec *StepRecord, sr StepResult, m metrics.Metric, maxLate float64) {
	sum := sr.Summary
	if sum == nil {
		rec.InvalidReason = "no results"
		return
	}
	t := sum.Tally
	rec.Start, rec.End = sum.Start, sum.End
	rec.AchievedRate, rec.Goodput = round3(sum.AchievedRate), round3(sum.Goodput)
	rec.Attempts, rec.Completed, rec.Errors = t.Attempts, t.Completed(), t.Errors()
	if r, ok := t.ErrorRatio(); ok {
		rec.ErrorRatio = r
	}
	rec.LateStarts, rec.MaxLateLagUS, rec.Lost = t.LateStarts, t.MaxLateLagUS, t.Lost
	if r, ok := t.LateRatio(); ok {
		rec.LateRatio = r
	}
	if ms, ok := sum.Metrics[m.String()]; ok {
		c := ms.Corrected
		rec.Latency = Latency{Count: c.Count, P50US: c.P50US, P90US: c.P90US, P99US: c.P99US, P999US: c.P999US, MaxUS: c.MaxUS}
	}
	rec.SLO = sum.SLO
	rec.Warnings = sum.Warnings
	for _, v := range sum.SLO {
		if !v.Pass {
			rec.Failed = append(rec.Failed, v.Threshold+" (measured "+v.Measured+")")
		}
	}
	// Validity: would the same numbers be the target's fault? Not if the offered load was
	// not what was intended.
	want := sum.Params.Rate * sum.DurationS
	switch {
	case sum.Interrupted:
		rec.InvalidReason = "interrupted"
	case len(sum.Invalid) > 0:
		rec.InvalidReason = strings.Join(sum.Invalid, "; ") // e.g. accounting that does not balance
	case t.Attempts == 0:
		rec.InvalidReason = "no attempts were made in the steady interval"
	case rec.LateRatio > maxLate:
		rec.InvalidReason = fmt.Sprintf("generator fell behind: %d of %d starts (%.2f%%) late by more than %s (worst %s), above the %.2f%% allowed",
			t.LateStarts, t.Attempts, 100*rec.LateRatio, time.Duration(sum.Params.LateThreshold), t.MaxLateLag(), 100*maxLate)
	case want > 0 && float64(t.Attempts) < want-3*math.Sqrt(want)-1:
		// The same allowance as the summary's warning: Poisson arrivals vary by about sqrt(n).
		rec.InvalidReason = fmt.Sprintf("generator offered %.1f/s of the intended %g/s", sum.AchievedRate, sum.Params.Rate)
	default:
		rec.Valid = true
	}
	rec.Failed = append(rec.Failed, sr.TargetFailures...)
	rec.Pass = rec.Valid && sum.SLOPassed && len(sr.TargetFailures) == 0
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// write replaces dir/capacity.json atomically (write, fsync, rename), so a crash or Ctrl-C
// never leaves a torn file.
func (r *Result) write(dir string, now time.Time) error {
	r.Updated = now.Round(0).UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode %s: %w", FileName, err)
	}
	path := filepath.Join(dir, FileName)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(buf.Bytes())
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Load reads a capacity.json (a directory holding one, or the file itself) and checks its format.
func Load(path string) (*Result, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load capacity result: %w", err)
	}
	return Decode(b)
}

// Decode parses capacity.json content, refusing other formats or versions.
func Decode(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", FileName, err)
	}
	if r.Format != Format {
		return nil, fmt.Errorf("decode %s: format %q, want %q", FileName, r.Format, Format)
	}
	return &r, nil
}

// Curve returns the steps sorted by level (ties: later run last), for plotting.
func (r *Result) Curve() []StepRecord {
	out := append([]StepRecord(nil), r.Steps...)
	for i := 1; i < len(out); i++ { // insertion sort: stable, few steps
		for j := i; j > 0 && out[j].Level < out[j-1].Level; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// FormatLevel prints a level without float noise: 212.5, 400, 0.3.
func FormatLevel(x float64) string {
	s := fmt.Sprintf("%.6f", x)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
