// Package capacity searches for the highest load a target sustains within an SLO, in the
// spirit of the SIP benchmarking methodology (RFC 7501 terms, RFC 7502 procedure): the
// session establishment rate (calls mode), the registration rate (registrations mode) and
// the number of concurrent registered endpoints (endpoints mode).
//
// The search is generic: a Stepper runs one load level (warm-up, then a measured steady
// interval written as a results directory) and returns its results.Summary; Search judges
// each step (valid? within the SLO?), steps up geometrically until the first failure, then
// bisects between the last pass and the first failure. A step whose generator fell behind
// (late starts, rate not achieved) is invalid: it is retried, and if it stays invalid it
// bounds the search without being counted as the target's failure; the knee then says so.
// Every step is appended to capacity.json as soon as it ends (see loadgen/README.md).
package capacity

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

// File and format of the search's output document.
const (
	FileName = "capacity.json"
	Format   = "rtcomm-harness/capacity/v1"
)

// Mode is what is searched for.
type Mode string

// Search modes.
const (
	Calls         Mode = "calls"         // session establishment rate, calls/s
	Registrations Mode = "registrations" // registration rate, registrations/s
	Endpoints     Mode = "endpoints"     // concurrent registered endpoints held
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Calls, Registrations, Endpoints:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want calls, registrations or endpoints)", s)
}

// Unit returns the unit of a level in this mode.
func (m Mode) Unit() string {
	switch m {
	case Registrations:
		return "registrations/s"
	case Endpoints:
		return "endpoints"
	}
	return "calls/s"
}

// Quantity returns what a level measures, in RFC 7501 terms where one exists.
func (m Mode) Quantity() string {
	switch m {
	case Registrations:
		return "registration rate"
	case Endpoints:
		return "concurrent registered endpoints"
	}
	return "session establishment rate"
}

// Metric returns the latency metric the curve shows for this mode.
func (m Mode) Metric() metrics.Metric {
	if m == Calls {
		return metrics.Setup
	}
	return metrics.Register
}

// Step is one load level to run.
type Step struct {
	Index  int           // 0-based position in the search
	Level  float64       // calls/s, registrations/s or endpoints, per the mode
	Warmup time.Duration // load before measuring, excluded from the results
	Steady time.Duration // measured interval
	Dir    string        // results directory the stepper writes (results.Create), does not exist yet
}

// StepResult is what a stepper measured.
type StepResult struct {
	// Summary of the steady interval (the results directory at Step.Dir); nil when nothing
	// was measured.
	Summary *results.Summary
	// TargetFailures are failures of the target the summary's SLO verdicts do not cover
	// (e.g. "12 of 500 endpoints did not come up"); any makes a valid step fail.
	TargetFailures []string
}

// Stepper runs one step against the target and returns the steady interval's results.
// When ctx ends during a step it returns what it has (an interrupted summary, or none) with
// ctx's error; any other error means the harness could not run the step (not that the
// target was too slow), and ends the search.
type Stepper interface {
	Step(ctx context.Context, s Step) (StepResult, error)
}

// StepperFunc adapts a function to Stepper.
type StepperFunc func(ctx context.Context, s Step) (StepResult, error)

// Step implements Stepper.
func (f StepperFunc) Step(ctx context.Context, s Step) (StepResult, error) { return f(ctx, s) }

// Options configure a search. Zero values take the defaults noted.
type Options struct {
	Mode   Mode    // default Calls
	Start  float64 // first level; required (> 0)
	Max    float64 // highest level tried; required (>= Start)
	Min    float64 // lowest level tried when Start already fails; default Start/16
	Factor float64 // ramp multiplier, > 1; default 2
	// Tolerance ends bisection once (first fail - last pass) <= Tolerance * last pass; default 0.05.
	Tolerance float64
	// Granularity rounds levels to a multiple of it (endpoints: 1); default 0.1 (rates).
	Granularity float64
	// NoBisect stops after the ramp (endpoints mode when endpoints cannot be removed).
	NoBisect bool
	Warmup   time.Duration // default 0
	Steady   time.Duration // required
	// Retries re-runs an invalid step this many times before accepting it as invalid; default 1,
	// negative means none.
	Retries int
	// MaxLateRatio is the share of late starts above which a step is invalid; default 0.01.
	MaxLateRatio float64
	// MaxSteps bounds the number of steps run (retries included); default 40.
	MaxSteps int

	SLO            string         // the SLO each step is judged against (recorded; the stepper applies it)
	Target         string         // what is loaded, recorded
	HarnessVersion string         // recorded
	Extra          map[string]any // recorded as params.extra

	// OnStep is called after each step is recorded (progress output); nil is fine.
	OnStep func(StepRecord)
	// Now is the clock for timestamps (tests); nil is time.Now.
	Now func() time.Time
}

func (o *Options) fill() error {
	if o.Mode == "" {
		o.Mode = Calls
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	if o.Factor == 0 {
		o.Factor = 2
	}
	if o.Tolerance == 0 {
		o.Tolerance = 0.05
	}
	if o.Granularity == 0 {
		o.Granularity = 0.1
		if o.Mode == Endpoints {
			o.Granularity = 1
		}
	}
	if o.Min == 0 {
		o.Min = o.Start / 16
	}
	if o.Retries == 0 {
		o.Retries = 1
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.MaxLateRatio == 0 {
		o.MaxLateRatio = 0.01
	}
	if o.MaxSteps == 0 {
		o.MaxSteps = 40
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
	switch {
	case bad(o.Start) || o.Start <= 0:
		return fmt.Errorf("start level %g: must be > 0", o.Start)
	case bad(o.Max) || o.Max < o.Start:
		return fmt.Errorf("max level %g: must be >= start %g", o.Max, o.Start)
	case bad(o.Min) || o.Min <= 0 || o.Min > o.Start:
		return fmt.Errorf("min level %g: must be in (0, start %g]", o.Min, o.Start)
	case bad(o.Factor) || o.Factor <= 1:
		return fmt.Errorf("factor %g: must be > 1", o.Factor)
	case bad(o.Tolerance) || o.Tolerance <= 0 || o.Tolerance >= 1:
		return fmt.Errorf("tolerance %g: must be in (0, 1), a fraction of the knee", o.Tolerance)
	case bad(o.Granularity) || o.Granularity <= 0:
		return fmt.Errorf("granularity %g: must be > 0", o.Granularity)
	case o.Steady <= 0:
		return fmt.Errorf("steady interval %s: must be > 0", o.Steady)
	case o.Warmup < 0:
		return fmt.Errorf("warm-up %s: must be >= 0", o.Warmup)
	case bad(o.MaxLateRatio) || o.MaxLateRatio < 0 || o.MaxLateRatio >= 1:
		return fmt.Errorf("max late ratio %g: must be in [0, 1)", o.MaxLateRatio)
	case o.MaxSteps < 1:
		return fmt.Errorf("max steps %d: must be >= 1", o.MaxSteps)
	}
	return nil
}

// round puts a level on the granularity grid (never below one grain).
func (o *Options) round(x float64) float64 {
	r := math.Round(x/o.Granularity) * o.Granularity
	if r < o.Granularity {
		r = o.Granularity
	}
	// Keep printed levels clean (0.30000000000000004 -> 0.3).
	return math.Round(r*1e6) / 1e6
}
