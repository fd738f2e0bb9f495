package capacity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// outcome of one level after retries.
type outcome uint8

const (
	pass    outcome = iota
	fail            // valid and an SLO clause broken: the target's limit
	invalid         // the generator could not offer the level, even on retry
	stopped         // ctx ended, the harness failed, or the step budget ran out
)

// search is the state of one run of Search.
type search struct {
	ctx context.Context
	dir string
	st  Stepper
	o   Options
	res *Result

	lo, hi         float64 // highest pass, lowest non-pass (0 = none yet)
	loStep, hiStep int
	hiBound        string // BoundSLO or BoundGenerator: why hi did not pass
	budgetOut      bool
	err            error // harness error or ctx error that stopped the search
}

// Search runs the capacity search in dir (created if needed; capacity.json and one results
// subdirectory per step are written there as the search goes). It returns the result even
// on error: ctx's error when interrupted (status interrupted, curve kept), or the stepper's
// error when the harness failed (status failed).
func Search(ctx context.Context, dir string, st Stepper, opts Options) (*Result, error) {
	if err := opts.fill(); err != nil {
		return nil, fmt.Errorf("capacity search: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("capacity search: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		return nil, fmt.Errorf("capacity search: %s already holds a search (%s); choose a new output directory", dir, FileName)
	}
	s := &search{ctx: ctx, dir: dir, st: st, o: opts, res: newResult(&opts), loStep: -1, hiStep: -1}
	if err := s.res.write(dir, s.o.Now()); err != nil {
		return nil, fmt.Errorf("capacity search: %w", err)
	}
	s.run()
	switch {
	case s.err == nil:
		s.res.Status = StatusDone
	case ctx.Err() != nil && errors.Is(s.err, ctx.Err()):
		s.res.Status = StatusInterrupted
	default:
		s.res.Status, s.res.Error = StatusFailed, s.err.Error()
	}
	s.res.Knee = s.knee(true)
	if err := s.res.write(dir, s.o.Now()); err != nil {
		return s.res, errors.Join(s.err, fmt.Errorf("capacity search: %w", err))
	}
	return s.res, s.err
}

// run is the procedure: ramp up until the first non-pass (or down, if the start level
// already fails), then bisect.
func (s *search) run() {
	o := &s.o
	x := o.round(o.Start)
	for { // ramp up
		switch s.level(x, PhaseRamp) {
		case stopped:
			return
		case pass:
			if x >= o.Max {
				return // knee bounded by the maximum
			}
			x = o.round(math.Min(x*o.Factor, o.Max))
			if x <= s.lo { // granularity cannot go higher
				return
			}
			continue
		}
		break
	}
	if s.loStep < 0 { // ramp down: the start level did not pass
		for {
			x = o.round(x / o.Factor)
			if x < o.Min || x >= s.hi {
				return // no knee
			}
			out := s.level(x, PhaseRampDown)
			if out == stopped {
				return
			}
			if out == pass {
				break
			}
		}
	}
	if o.NoBisect {
		return
	}
	for s.hi-s.lo > math.Max(o.Tolerance*s.lo, o.Granularity) {
		mid := o.round((s.lo + s.hi) / 2)
		if mid <= s.lo || mid >= s.hi {
			return // the grid is finer than the gap
		}
		if s.level(mid, PhaseBisect) == stopped {
			return
		}
	}
}

// level runs x, retrying while the step is invalid, and moves the bracket.
func (s *search) level(x float64, phase string) outcome {
	for try := 0; ; try++ {
		if try > 0 {
			phase = PhaseRetry
		}
		rec, ok := s.step(x, phase)
		if !ok {
			return stopped
		}
		retry := !rec.Valid && try < s.o.Retries
		out := fail
		switch {
		case rec.Pass:
			out = pass
		case !rec.Valid:
			out = invalid
		}
		if !retry {
			s.move(x, rec.Index, out)
		}
		if err := s.record(rec); err != nil {
			return stopped
		}
		if !retry {
			return out
		}
	}
}

// move narrows the bracket with the outcome of level x (run as step i).
func (s *search) move(x float64, i int, out outcome) {
	if out == pass {
		if s.loStep < 0 || x > s.lo {
			s.lo, s.loStep = x, i
		}
		return
	}
	if s.hiStep < 0 || x <= s.hi {
		s.hi, s.hiStep, s.hiBound = x, i, BoundSLO
		if out == invalid {
			s.hiBound = BoundGenerator
		}
	}
}

// record rewrites capacity.json with the knee so far and reports the step.
func (s *search) record(rec StepRecord) error {
	s.res.Knee = s.knee(false)
	if err := s.res.write(s.dir, s.o.Now()); err != nil {
		s.err = errors.Join(s.err, fmt.Errorf("capacity search: %w", err))
		return err
	}
	if s.o.OnStep != nil {
		s.o.OnStep(rec)
	}
	return nil
}

// step runs one step and appends it to the result; ok is false when the search must stop.
func (s *search) step(x float64, phase string) (StepRecord, bool) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return StepRecord{}, false
	}
	i := len(s.res.Steps)
	if i >= s.o.MaxSteps {
		s.budgetOut = true
		return StepRecord{}, false
	}
	rec := StepRecord{Index: i, Phase: phase, Level: x, Dir: fmt.Sprintf("step-%02d-%s", i, FormatLevel(x))}
	sr, err := s.st.Step(s.ctx, Step{Index: i, Level: x, Warmup: s.o.Warmup, Steady: s.o.Steady, Dir: filepath.Join(s.dir, rec.Dir)})
	judge(&rec, sr, s.o.Mode.Metric(), s.o.MaxLateRatio)
	if err != nil {
		if s.ctx.Err() != nil {
			s.err = s.ctx.Err()
			rec.Valid, rec.Pass, rec.InvalidReason = false, false, "interrupted"
		} else {
			s.err = fmt.Errorf("step %d at %s %s: %w", i, FormatLevel(x), s.o.Mode.Unit(), err)
			rec.Valid, rec.Pass, rec.InvalidReason = false, false, "harness error: "+err.Error()
		}
	}
	s.res.Steps = append(s.res.Steps, rec)
	if err != nil {
		s.record(rec) // keep the partial step; s.err already says why the search stops
		return rec, false
	}
	return rec, true
}

// knee is the answer so far; final says the search has ended.
func (s *search) knee(final bool) *Knee {
	if s.loStep < 0 {
		return nil
	}
	k := &Knee{Level: s.lo, Step: s.loStep, NextStep: -1}
	if s.hiStep >= 0 {
		k.NextLevel, k.NextStep = s.hi, s.hiStep
		k.Resolution = round3((s.hi - s.lo) / s.lo)
	}
	bracketed := s.hiStep >= 0
	switch {
	case bracketed:
		k.Bound = s.hiBound
	case s.lo >= s.o.Max:
		k.Bound = BoundMax
	case s.budgetOut:
		k.Bound = BoundSteps
	default:
		k.Bound = BoundInterrupted
	}
	if bracketed && s.budgetOut && k.Resolution > s.o.Tolerance {
		k.Bound = BoundSteps
	}
	k.Text = s.kneeText(k, final)
	return k
}

func (s *search) kneeText(k *Knee, final bool) string {
	unit := s.o.Mode.Unit()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", s.o.Mode.Quantity(), FormatLevel(k.Level), unit)
	fmt.Fprintf(&b, " met %s over %s steady", orNone(s.o.SLO), s.o.Steady)
	switch k.Bound {
	case BoundSLO:
		fmt.Fprintf(&b, "; %s %s broke it", FormatLevel(k.NextLevel), unit)
		if r := s.res.Steps[k.NextStep]; len(r.Failed) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(r.Failed, ", "))
		}
	case BoundGenerator:
		fmt.Fprintf(&b, "; at %s %s the load generator could not keep up (%s), so the target's capacity is at least %s %s",
			FormatLevel(k.NextLevel), unit, s.res.Steps[k.NextStep].InvalidReason, FormatLevel(k.Level), unit)
	case BoundMax:
		fmt.Fprintf(&b, "; that is the configured maximum, so the target's capacity is at least that")
	case BoundSteps:
		fmt.Fprintf(&b, "; the step budget (%d) ran out before the search converged", s.o.MaxSteps)
	case BoundInterrupted:
		b.WriteString("; nothing above it was tried yet")
	}
	if s.res.Status == StatusInterrupted || (!final && s.res.Status == StatusRunning) {
		b.WriteString(" (provisional: the search did not finish)")
	}
	return b.String()
}

func orNone(spec string) string {
	if spec == "" {
		return "no SLO"
	}
	return spec
}
