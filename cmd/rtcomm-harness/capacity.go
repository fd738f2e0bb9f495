package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/capacity"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/sim"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
)

// Exit statuses of `capacity`: 0 a knee was found, 1 none (the minimum failed, or the search
// was interrupted before it finished), 2 the harness failed.
const (
	exitNoKnee        = 1
	exitCapacityError = 2
)

// capacityOptions are the flags of `capacity`.
type capacityOptions struct {
	mode       string
	start, max float64
	min        float64
	factor     float64
	tolerance  float64
	steady     time.Duration
	warmup     time.Duration
	sloSpec    string
	maxLate    float64
	retries    int
	maxSteps   int
	endpoints  int
	rampRate   float64
	probeRate  float64
	hold       time.Duration
	ice        int
	out        string
	seed       uint64
	targetFlags
}

// capacityDefaults are per mode; a flag left unset takes its mode's value.
type capacityDefaults struct {
	start, max, factor float64
	steady, warmup     time.Duration
	slo                string
}

var capacityModeDefaults = map[capacity.Mode]capacityDefaults{
	capacity.Calls: {start: 25, max: 3200, factor: 2, steady: 10 * time.Second, warmup: 5 * time.Second,
		slo: "setup.p99<100ms,errors<0.1%"},
	capacity.Registrations: {start: 25, max: 1600, factor: 2, steady: 5 * time.Second, warmup: 2 * time.Second,
		slo: "register.p99<100ms,errors<0.1%,lost<0.1%"},
	capacity.Endpoints: {start: 1000, max: 10000, factor: 2, steady: 10 * time.Second, warmup: 2 * time.Second,
		slo: "setup.p99<100ms,register.p99<1s,errors<0.1%,lost<0.1%"},
}

func newCapacityCmd(g *globalFlags) *cobra.Command {
	o := capacityOptions{mode: string(capacity.Calls), tolerance: 0.05, maxLate: 0.01, retries: 1, maxSteps: 40,
		endpoints: 1000, rampRate: 250, probeRate: 10, hold: 5 * time.Second, ice: sim.DefaultCallModel().ICE,
		targetFlags: targetFlags{idPrefix: "cap-"}}
	cmd := &cobra.Command{
		Use:   "capacity",
		Short: "Find the highest load the target sustains within an SLO (the knee)",
		Long: `Search for the target's capacity in the spirit of RFC 7501/7502 (SIP benchmarking):
offer one load level per step (a warm-up, not measured, then a measured steady interval),
step up by --factor from --start until a step breaks the SLO, then bisect between the last
pass and the first failure until they are within --tolerance of each other.

Modes:
  calls          session establishment rate (calls/s) with a pool of --endpoints endpoints;
                 calls are answered (no rejects or no-answers: only the target's errors count)
                 and held --hold on average
  registrations  registration rate (registrations/s): each step connects and registers new
                 endpoints at the level's rate, then closes them
  endpoints      concurrent registered endpoints: each step grows one pool to the level and
                 holds it while probing with --probe-rate calls/s; ramp only (endpoints are
                 not removed, so there is no bisection)

A step in which the load generator itself fell behind (late starts above --max-late, rate not
achieved) is invalid: it is re-run (--retries) and, if still invalid, bounds the search as
the generator's limit, never as the target's failure; the knee says so.

Output (OUT, default results/capacity-<UTC timestamp>): capacity.json, rewritten after every
step (format in loadgen/README.md), and one results directory per step. Ctrl-C keeps the
curve measured so far.

Exit status: 0 a knee was found, 1 no level passed (or the search was interrupted),
2 the harness failed.`,
		Example: `  rtcomm-harness capacity
  rtcomm-harness capacity --start 100 --max 2000 --steady 30s --warmup 10s
  rtcomm-harness capacity --mode registrations
  rtcomm-harness capacity --mode endpoints --start 2000 --max 20000
  rtcomm-harness capacity --broker tcp://127.0.0.1:1883 --slo 'setup.p99<200ms,errors<1%'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return &exitError{exitCapacityError, err}
			}
			mode, err := capacity.ParseMode(o.mode)
			if err != nil {
				return &exitError{exitCapacityError, fmt.Errorf("--mode: %w", err)}
			}
			d := capacityModeDefaults[mode]
			fl := cmd.Flags()
			setDefault := func(name string, apply func()) {
				if !fl.Changed(name) {
					apply()
				}
			}
			setDefault("start", func() { o.start = d.start })
			setDefault("max", func() { o.max = d.max })
			setDefault("factor", func() { o.factor = d.factor })
			setDefault("steady", func() { o.steady = d.steady })
			setDefault("warmup", func() { o.warmup = d.warmup })
			setDefault("slo", func() { o.sloSpec = d.slo })
			return runCapacity(cmd.Context(), mode, o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", o.mode, "what to search: calls, registrations or endpoints")
	f.Float64Var(&o.start, "start", 0, "first level (calls 25/s, registrations 25/s, endpoints 1000)")
	f.Float64Var(&o.max, "max", 0, "highest level tried (calls 3200/s, registrations 1600/s, endpoints 10000)")
	f.Float64Var(&o.min, "min", 0, "lowest level tried when --start already fails (default start/16)")
	f.Float64Var(&o.factor, "factor", 0, "ramp multiplier between steps (default 2)")
	f.Float64Var(&o.tolerance, "tolerance", o.tolerance, "stop bisecting when the first failure is within this fraction above the last pass")
	f.DurationVar(&o.steady, "steady", 0, "measured interval of each step (calls 10s, registrations 5s, endpoints 10s)")
	f.DurationVar(&o.warmup, "warmup", 0, "unmeasured load before each step's steady interval (calls 5s, registrations 2s, endpoints 2s)")
	f.StringVar(&o.sloSpec, "slo", "", "SLO each step must meet (calls 'setup.p99<100ms,errors<0.1%'; see loadgen/README.md)")
	f.Float64Var(&o.maxLate, "max-late", o.maxLate, "share of late starts above which a step is invalid (the generator fell behind)")
	f.IntVar(&o.retries, "retries", o.retries, "re-runs of an invalid step before it bounds the search")
	f.IntVar(&o.maxSteps, "max-steps", o.maxSteps, "most steps run (retries included)")
	f.IntVar(&o.endpoints, "endpoints", o.endpoints, "calls mode: simulated endpoints in the pool")
	f.Float64Var(&o.rampRate, "ramp-rate", o.rampRate, "calls and endpoints modes: endpoint connections per second while growing the pool")
	f.Float64Var(&o.probeRate, "probe-rate", o.probeRate, "endpoints mode: calls per second while holding each level")
	f.DurationVar(&o.hold, "hold-mean", o.hold, "mean hold time of answered calls (short, so each step reaches its teardown rate quickly)")
	f.IntVar(&o.ice, "ice", o.ice, "ICE candidates trickled by each side of a call")
	f.StringVar(&o.out, "out", "", "output directory (default results/capacity-<UTC timestamp>)")
	f.Uint64Var(&o.seed, "seed", 0, "seed of arrivals and call choices (0 = random)")
	// Target flags: the same names and meaning as `load`.
	addTargetFlags(f, &o.targetFlags)
	return cmd
}

// runCapacity runs the search; out gets one line per step and the curve at the end.
func runCapacity(ctx context.Context, mode capacity.Mode, o capacityOptions, out io.Writer, log *slog.Logger) error {
	harness := func(err error) error { return &exitError{exitCapacityError, err} }
	if ths, err := slo.Parse(o.sloSpec); err != nil {
		return harness(fmt.Errorf("--slo: %w", err))
	} else if slo.HasViolations(ths) {
		return harness(errors.New("--slo: capacity runs no protocol checker: violations is for load --check"))
	}
	if o.endpoints < 2 || o.rampRate <= 0 || o.probeRate <= 0 || o.hold <= 0 || o.ice < 0 {
		return harness(errors.New("--endpoints must be at least 2; --ramp-rate, --probe-rate, --hold-mean positive; --ice not negative"))
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("results", "capacity-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	model := sim.DefaultCallModel()
	// Only the target's errors count against the SLO: every simulated callee answers.
	model.RejectShare, model.NoAnswerShare, model.HoldMean, model.ICE = 0, 0, o.hold, o.ice

	if err := o.poolConfig(&sim.PoolConfig{}); err != nil { // the flags, before anything starts
		return harness(err)
	}
	env, err := sim.StartTarget(ctx, o.target(quietTarget(log)))
	if err != nil {
		return harness(err)
	}
	defer env.Close()
	fmt.Fprintf(out, "target:   %s\n", env.Describe())

	st := &simStepper{env: env, mode: mode, o: o, model: model, log: log}
	defer st.close()
	if mode != capacity.Registrations {
		pc := sim.DefaultPoolConfig()
		pc.RampRate, pc.IDPrefix, pc.Endpoints = o.rampRate, o.idPrefix, o.endpoints
		if err := o.poolConfig(&pc); err != nil {
			return harness(err)
		}
		if mode == capacity.Endpoints {
			pc.Endpoints = 0 // grown step by step
		}
		if mode == capacity.Calls {
			fmt.Fprintf(out, "pool:     connecting %d endpoints at %g/s ...\n", pc.Endpoints, pc.RampRate)
		}
		pool, err := sim.OpenPool(ctx, env, pc, nil)
		if err != nil {
			return harness(err)
		}
		st.pool = pool
		if mode == capacity.Calls {
			fmt.Fprintf(out, "pool:     %d registered (%d failed)\n", pool.Len(), pool.Failed())
		}
	}
	opts := capacity.Options{
		Mode: mode, Start: o.start, Max: o.max, Min: o.min, Factor: o.factor, Tolerance: o.tolerance,
		NoBisect: mode == capacity.Endpoints, Warmup: o.warmup, Steady: o.steady, Retries: o.retries,
		MaxLateRatio: o.maxLate, MaxSteps: o.maxSteps, SLO: o.sloSpec, Target: env.Describe(),
		HarnessVersion: harnessVersion(),
		Extra: map[string]any{"endpoints": o.endpoints, "ramp_rate": o.rampRate, "probe_rate": o.probeRate,
			"hold_mean": o.hold.String(), "ice_per_side": o.ice, "reject_share": 0, "no_answer_share": 0,
			"warmup_method": "separate unmeasured run before each step (results in <step>/warmup)"},
		OnStep: func(r capacity.StepRecord) { printStep(out, mode, r) },
	}
	if o.retries == 0 {
		opts.Retries = -1
	}
	if mode == capacity.Endpoints {
		opts.Granularity = 1
	}
	fmt.Fprintf(out, "search:   %s from %s to %s %s, x%g, tolerance %g%%, warm-up %s + steady %s per step, SLO %s\n",
		mode.Quantity(), capacity.FormatLevel(o.start), capacity.FormatLevel(o.max), mode.Unit(), o.factor, 100*o.tolerance,
		o.warmup, o.steady, o.sloSpec)
	fmt.Fprintf(out, "output:   %s\n\n", filepath.Join(dir, capacity.FileName))
	res, serr := capacity.Search(ctx, dir, st, opts)
	if res == nil {
		return harness(serr)
	}
	printCurve(out, res, dir)
	writeLoadReport(out, dir, log) // the curve so far, also for an interrupted search
	switch {
	case res.Status == capacity.StatusFailed:
		return harness(serr)
	case res.Status == capacity.StatusInterrupted:
		return &exitError{exitNoKnee, errors.New("search interrupted: capacity.json holds the curve so far")}
	case res.Knee == nil:
		return &exitError{exitNoKnee, fmt.Errorf("no level passed, down to %s %s", capacity.FormatLevel(res.Params.Min), res.Unit)}
	}
	return nil
}

// simStepper runs capacity steps with the simulated endpoints of loadgen/sim.
type simStepper struct {
	env   *sim.Env
	mode  capacity.Mode
	o     capacityOptions
	model sim.CallModel
	log   *slog.Logger
	pool  *sim.Pool // calls and endpoints modes: one pool for the whole search
	grown int       // endpoints mode: endpoints asked for so far
}

func (s *simStepper) close() {
	if s.pool != nil {
		if err := s.pool.Close(); err != nil {
			s.log.Warn("closing endpoints", "err", err)
		}
	}
}

// Step implements capacity.Stepper.
func (s *simStepper) Step(ctx context.Context, st capacity.Step) (capacity.StepResult, error) {
	switch s.mode {
	case capacity.Registrations:
		return s.registrationStep(ctx, st)
	case capacity.Endpoints:
		return s.endpointsStep(ctx, st)
	}
	return s.callStep(ctx, st)
}

func (s *simStepper) seed(st capacity.Step) uint64 {
	if s.o.seed == 0 {
		return 0
	}
	return s.o.seed + uint64(st.Index)
}

// callStep offers st.Level calls/s: a warm-up run at the same rate (its own results in
// <dir>/warmup, not judged), then the measured run.
func (s *simStepper) callStep(ctx context.Context, st capacity.Step) (capacity.StepResult, error) {
	extra := map[string]any{"capacity_step": st.Index, "capacity_mode": string(s.mode), "warmup": st.Warmup.String()}
	if st.Warmup > 0 {
		// Calls still being set up when the warm-up ends are not waited for long: they are
		// aborted in the warm-up's results, which nobody judges.
		_, err := s.pool.CallStep(ctx, filepath.Join(st.Dir, "warmup"), sim.Step{Rate: st.Level, Duration: st.Warmup,
			Seed: s.seed(st), Calls: s.model, Drain: 500 * time.Millisecond, HarnessVersion: harnessVersion(),
			Extra: map[string]any{"capacity_step": st.Index, "capacity_warmup": true}})
		if ctx.Err() != nil {
			return capacity.StepResult{}, ctx.Err()
		}
		if err != nil {
			return capacity.StepResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	sum, err := s.pool.CallStep(ctx, st.Dir, sim.Step{Rate: st.Level, Duration: st.Steady, Seed: s.seed(st),
		Calls: s.model, SLO: s.o.sloSpec, HarnessVersion: harnessVersion(), Extra: extra})
	return capacity.StepResult{Summary: sum}, err
}

// registrationStep connects and registers endpoints at st.Level per second: a warm-up pool
// (unmeasured), then a measured pool; both are closed after the step. Each endpoint brought
// up is one attempt: success, or failure when it did not come up.
func (s *simStepper) registrationStep(ctx context.Context, st capacity.Step) (capacity.StepResult, error) {
	pc := sim.DefaultPoolConfig()
	pc.RampRate = st.Level
	if err := s.o.poolConfig(&pc); err != nil {
		return capacity.StepResult{}, err
	}
	var pools []*sim.Pool
	defer func() {
		for _, p := range pools {
			if err := p.Close(); err != nil {
				s.log.Warn("closing endpoints", "err", err)
			}
		}
	}()
	if n := int(math.Round(st.Level * st.Warmup.Seconds())); n > 0 {
		pc.Endpoints, pc.IDPrefix = n, fmt.Sprintf("%ss%02dw-", s.o.idPrefix, st.Index)
		p, err := sim.OpenPool(ctx, s.env, pc, nil)
		if ctx.Err() != nil {
			return capacity.StepResult{}, ctx.Err()
		}
		if err == nil {
			pools = append(pools, p)
		} // a warm-up whose endpoints all failed says nothing the measured run will not
	}
	n := max(1, int(math.Round(st.Level*st.Steady.Seconds())))
	pc.Endpoints, pc.IDPrefix = n, fmt.Sprintf("%ss%02d-", s.o.idPrefix, st.Index)
	// One attempt per endpoint below, so a ramp that fell behind shows as late starts and
	// judges the step invalid like a call schedule that fell behind.
	pc.RecordRampLateStarts = true
	rec := metrics.NewRecorder()
	window := time.Duration(float64(n) / st.Level * float64(time.Second))
	w, err := results.Create(st.Dir, results.Params{HarnessVersion: harnessVersion(), Target: s.env.Describe(),
		Rate: st.Level, Duration: results.Duration(window), Pacer: "constant",
		LateThreshold: results.Duration(loadgen.DefaultLateThreshold), SLO: s.o.sloSpec,
		Extra: map[string]any{"capacity_step": st.Index, "capacity_mode": string(s.mode), "endpoints": n,
			"attempts": "one per endpoint brought up (connect, register, service query)"}}, rec)
	if err != nil {
		return capacity.StepResult{}, err
	}
	p, perr := sim.OpenPool(ctx, s.env, pc, rec)
	up := 0
	if p != nil {
		pools = append(pools, p)
		up = p.Len()
	}
	reason := "endpoint did not come up"
	if perr != nil && ctx.Err() == nil {
		reason = perr.Error()
	}
	for i := range n {
		a := rec.Begin()
		if i < up {
			a.End(metrics.Success, "")
		} else {
			a.End(metrics.Failure, reason)
		}
	}
	// The load window is the schedule (n starts at the level's rate); latencies recorded
	// after it (a slow target's tail) still count.
	sum, ferr := w.Finalize(w.Start().Add(window), ctx.Err() != nil)
	if ctx.Err() != nil {
		return capacity.StepResult{Summary: sum}, ctx.Err()
	}
	var fails []string
	if up < n {
		fails = append(fails, fmt.Sprintf("%d of %d endpoints did not come up", n-up, n))
	}
	return capacity.StepResult{Summary: sum, TargetFailures: fails}, ferr
}

// endpointsStep grows the pool to st.Level endpoints (their connect/register latencies go
// into this step's results), lets the target settle for the warm-up, then holds the level
// for the steady interval with a probe call rate.
func (s *simStepper) endpointsStep(ctx context.Context, st capacity.Step) (capacity.StepResult, error) {
	rec := metrics.NewRecorder()
	want := int(st.Level) - s.grown
	late0, _ := s.pool.RampLateStarts()
	up, err := s.pool.Grow(ctx, want, s.o.rampRate, rec)
	late, worst := s.pool.RampLateStarts()
	s.grown += max(want, 0)
	if ctx.Err() != nil {
		return capacity.StepResult{}, ctx.Err()
	}
	if err != nil {
		return capacity.StepResult{}, err
	}
	if st.Warmup > 0 {
		if err := sleepCtx(ctx, st.Warmup); err != nil {
			return capacity.StepResult{}, err
		}
	}
	// The step's attempts are probe calls, so the ramp's late starts are not mixed into
	// them: a ramp that fell behind (endpoints came up bunched) is a warning of the step.
	var warns []string
	if n := late - late0; n > 0 {
		warns = append(warns, fmt.Sprintf("%d of %d endpoint bring-ups of the ramp started late by more than %s (worst %s): "+
			"the generator fell behind the ramp rate and the new endpoints came up bunched (worst lag of the pool's ramps so far)",
			n, want, loadgen.DefaultLateThreshold, worst))
	}
	sum, err := s.pool.CallStep(ctx, st.Dir, sim.Step{Rate: s.o.probeRate, Duration: st.Steady, Seed: s.seed(st),
		Calls: s.model, SLO: s.o.sloSpec, Recorder: rec, HarnessVersion: harnessVersion(), Warnings: warns,
		Extra: map[string]any{"capacity_step": st.Index, "capacity_mode": string(s.mode), "endpoints_level": st.Level,
			"endpoints_added": want, "endpoints_added_up": up, "ramp_late_starts": late - late0}})
	var fails []string
	if up < want {
		fails = append(fails, fmt.Sprintf("%d of %d new endpoints did not come up", want-up, want))
	}
	return capacity.StepResult{Summary: sum, TargetFailures: fails}, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// printStep is the progress line of one step.
func printStep(w io.Writer, mode capacity.Mode, r capacity.StepRecord) {
	verdict := "pass"
	switch {
	case !r.Valid:
		verdict = "INVALID: " + r.InvalidReason
	case !r.Pass:
		verdict = "FAIL: " + strings.Join(r.Failed, "; ")
	}
	fmt.Fprintf(w, "step %2d %-9s %8s %-15s achieved %8.1f/s  %s p50 %8s p99 %8s  errors %6.2f%%  late %5.2f%%  %s\n",
		r.Index, r.Phase, capacity.FormatLevel(r.Level), mode.Unit(), r.AchievedRate, mode.Metric(),
		metrics.FormatMicros(r.Latency.P50US), metrics.FormatMicros(r.Latency.P99US),
		100*r.ErrorRatio, 100*r.LateRatio, verdict)
}

// printCurve prints the steps sorted by level and the knee.
func printCurve(w io.Writer, res *capacity.Result, dir string) {
	fmt.Fprintf(w, "\ncurve (%s, %s latency corrected):\n", res.Quantity, res.Metric)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "level\tachieved/s\tp50\tp99\terrors\tlate\tvalid\tpass\tstep")
	for _, r := range res.Curve() {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%.2f%%\t%.2f%%\t%v\t%v\t%s\n", capacity.FormatLevel(r.Level), r.AchievedRate,
			metrics.FormatMicros(r.Latency.P50US), metrics.FormatMicros(r.Latency.P99US), 100*r.ErrorRatio, 100*r.LateRatio,
			r.Valid, r.Pass, r.Dir)
	}
	tw.Flush()
	if res.Knee != nil {
		fmt.Fprintf(w, "\nknee:     %s %s (bound: %s)\n          %s\n", capacity.FormatLevel(res.Knee.Level), res.Unit, res.Knee.Bound, res.Knee.Text)
	} else {
		fmt.Fprintf(w, "\nknee:     none (no level passed)\n")
	}
	if res.Error != "" {
		fmt.Fprintf(w, "error:    %s\n", res.Error)
	}
	fmt.Fprintf(w, "results:  %s (%s)\n", filepath.Join(dir, capacity.FileName), res.Status)
}
