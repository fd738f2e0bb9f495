package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/sim"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
)

// Exit statuses of `load`: 1 an SLO was breached, 2 the harness failed or the run is invalid.
const (
	exitSLOBreached = 1
	exitLoadInvalid = 2
)

// loadOptions are the flags of `load`.
type loadOptions struct {
	endpoints     int
	rampRate      float64
	rate          float64
	pacer         string
	duration      time.Duration
	holdMean      time.Duration
	ice           int
	iceGap        time.Duration
	rejectShare   float64
	noAnswerShare float64
	pranswerDelay time.Duration
	noPranswer    bool
	answerDelay   time.Duration
	ringTimeout   time.Duration
	lossTimeout   time.Duration
	fault         string
	offer         string
	shard         string
	shardEnv      string // --shard-index-env: the shard index comes from this variable
	shards        int    // --shards: N with --shard-index-env
	startAt       string
	startIn       time.Duration
	baseline      bool
	sloSpec       string
	check         bool // run the passive checker beside the load (loadcheck.go)
	maxLate       float64
	out           string
	seed          uint64
	targetFlags
	appContext   string
	noQuery      bool
	cpuProfile   string
	blockProfile string
	mutexProfile string
	traceFile    string
	traceAfter   time.Duration
	memProfile   string
	memAfter     time.Duration
}

func defaultLoadOptions() loadOptions {
	pc, cm := sim.DefaultPoolConfig(), sim.DefaultCallModel()
	return loadOptions{endpoints: pc.Endpoints, rampRate: pc.RampRate, rate: 20, pacer: "poisson",
		duration: 30 * time.Second, holdMean: cm.HoldMean, ice: cm.ICE, iceGap: cm.ICEGap,
		rejectShare: cm.RejectShare, noAnswerShare: cm.NoAnswerShare, pranswerDelay: cm.PranswerDelay,
		answerDelay: cm.AnswerDelay, ringTimeout: cm.RingTimeout, lossTimeout: cm.LossTimeout, offer: cm.Offer,
		maxLate: 0.01, targetFlags: targetFlags{idPrefix: pc.IDPrefix}, appContext: pc.AppContext}
}

func newLoadCmd(g *globalFlags) *cobra.Command {
	o := defaultLoadOptions()
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Simulate thousands of rtcomm endpoints and measure call setup, ICE and teardown latency",
		Long: `Run an open-loop load against an rtcomm target and write a results directory.

With no flags: a ~30 s demo against the embedded reference (in-process broker + reference
connector on random loopback ports) with 1,000 endpoints and 20 calls/s.

Each simulated endpoint is its own MQTT connection (own client ID, last will, inbox
subscription, retained DOCUMENT, SERVICE_QUERY). Endpoints connect at --ramp-rate; then calls
start on a schedule (--pacer poisson or constant at --rate calls/s, never waiting for earlier
calls) between random idle pairs of registered endpoints:

  caller: START_SESSION with an SDP offer (--offer, from fixtures/), trickles --ice candidates
          every --ice-gap (before and after the answer)
  callee: PRANSWER after --pranswer-delay, then after --answer-delay RESPONSE SUCCESS with
          the SDP answer and its own --ice candidates; or rejects (--reject-share, reason
          "busy") or lets it ring (--no-answer-share) until the caller cancels after
          --ring-timeout
  hold:   exponential with mean --hold-mean (at least until ICE is done), then STOP_SESSION
          from a random side

Latencies (connect, register, service_query, post_dial_delay, setup, ice, teardown) are
HdrHistograms corrected for coordinated omission (from the intended start) with the
uncorrected view kept. setup holds successful calls; calls that failed or timed out get
their time until that outcome in setup_failed (rejected and unanswered calls in neither).
Every call ends in exactly one outcome.

Every message a call sends is checked: each delivery is matched to the message that caused
it by method, transID, sigSessID, sender level (last topic level), receiving inbox and
content digest. A message not delivered intact within --loss-timeout of its own send is
lost; a second copy is duplicated; one at the wrong inbox or with the wrong sender level is
misrouted; one whose content or transID changed is altered; one nothing of ours caused is
unexpected; an ICE candidate delivered after a later one of its session and direction is
out_of_order. (A misrouted or altered copy does not deliver its message: unless an intact
copy arrives too, that message is also lost.)

Drain: after the --duration window no new call starts; calls being set up get their outcome
(up to --ring-timeout plus the 5 s setup timeout), then no new checked message is sent and
the run waits until every checked message is delivered or lost, at most --loss-timeout after
the last send. A finished run therefore has 0 messages in flight. Results: --out DIR
(params.json, intervals.hlog written every second, <metric>.hgrm, summary.json); formats in
loadgen/README.md.

Protocol check (--check): the passive checker (docs/CHECK.md) judges every publish of the run
against the requirement catalog, inside the embedded broker (with the client that sent it) or
subscribed to <topic path># on --broker. Findings go to the log as they happen and to
<results>/check/findings.jsonl, and the live line (on a terminal) counts them; summary.json,
the printed summary and the report list them per requirement and blamed participant;
<results>/check gets the verdict bundle. --slo 'violations<=0' fails the run (exit 1) on any
finding.

Many generators (docs/DISTRIBUTED.md): --shard i/N, or --shard-index-env VAR --shards N with
i from the environment (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX), makes this generator
shard i of N (own endpoint IDs, 1/N of the rates); merge the shards with report merge. With
--start-at every shard connects and registers first, then waits for the common start of the
load window; a shard not ready by then says so, still runs, and its run is invalid (exit 2).

Ctrl-C / SIGTERM stops scheduling, drains at most 2 s and finalizes: everything measured is
kept, the summary says the run was interrupted and how many messages were left in flight,
and the run is invalid (exit 2). If the target vanishes mid-run the results cover the run
until then and the exit status is 2.

Exit status: 0 ok; 1 an --slo threshold was breached; 2 the harness failed or the run is not
valid, whatever the SLOs say (target lost, interrupted, not ready at --start-at, messages in
flight after the drain, accounting does not balance, or the generator fell behind: more than
--max-late (default 1%) of calls started over 10 ms late, or any over 100 ms; every late start
is reported in the summary's warnings either way).`,
		Example: `  rtcomm-harness load
  rtcomm-harness load --endpoints 10000 --ramp-rate 500 --rate 500 --duration 60s --slo 'setup.p99<100ms,lost<=0'
  rtcomm-harness load --broker tcp://127.0.0.1:1883 --baseline
  rtcomm-harness load --broker tcp://mq:1883 --no-connector --shard 0/4 --endpoints 40000 --rate 2000
  JOB_COMPLETION_INDEX=1 rtcomm-harness load --broker tcp://mq:1883 --no-connector --shard-index-env JOB_COMPLETION_INDEX --shards 3 --start-at 2026-12-02T10:30:00Z
  rtcomm-harness load --endpoints 200 --duration 10s --reject-share 0 --fault drop-ice:0.05 --slo 'lost<=0'   # self-test: exits 1
  rtcomm-harness load --check --rate 100 --duration 60s --hold-mean 2s --slo 'violations<=0'
  rtcomm-harness load --check --duration 10s --reject-share 0 --fault alter-ice:3 --slo 'violations<=0'   # self-test: exits 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			tty := writerIsTerminal(cmd.ErrOrStderr())
			if cmd.Flags().Changed("no-pranswer") && o.noPranswer {
				o.pranswerDelay = -1
			}
			return runLoad(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr(), tty, log)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.endpoints, "endpoints", o.endpoints, "simulated endpoints (total over all shards)")
	f.Float64Var(&o.rampRate, "ramp-rate", o.rampRate, "endpoint connections per second while ramping up (total over all shards)")
	f.Float64Var(&o.rate, "rate", o.rate, "call attempts per second (total over all shards)")
	f.StringVar(&o.pacer, "pacer", o.pacer, "call arrivals: poisson or constant")
	f.DurationVar(&o.duration, "duration", o.duration, "length of the load window (ramp-up and draining not included)")
	f.DurationVar(&o.holdMean, "hold-mean", o.holdMean, "mean of the exponentially distributed hold time of answered calls")
	f.IntVar(&o.ice, "ice", o.ice, "ICE candidates trickled by each side of a call")
	f.DurationVar(&o.iceGap, "ice-gap", o.iceGap, "time between two trickled candidates of one side")
	f.Float64Var(&o.rejectShare, "reject-share", o.rejectShare, "share of calls the callee rejects (0..1)")
	f.Float64Var(&o.noAnswerShare, "no-answer-share", o.noAnswerShare, "share of calls that ring unanswered until --ring-timeout (0..1)")
	f.DurationVar(&o.pranswerDelay, "pranswer-delay", o.pranswerDelay, "callee sends PRANSWER this long after the offer arrives")
	f.BoolVar(&o.noPranswer, "no-pranswer", false, "callees answer without PRANSWER (unanswered calls still ring with one)")
	f.DurationVar(&o.answerDelay, "answer-delay", o.answerDelay, "callee answers this long after the offer arrives (simulated user; counts in setup)")
	f.DurationVar(&o.ringTimeout, "ring-timeout", o.ringTimeout, "caller cancels an unanswered call after this")
	f.DurationVar(&o.lossTimeout, "loss-timeout", o.lossTimeout, "a checked message not delivered this long after its own send is lost (also bounds the final drain)")
	f.StringVar(&o.fault, "fault", "", loadFaultHelp)
	f.StringVar(&o.offer, "offer", o.offer, "SDP offer fixture (fixtures/sdp); its answer fixture is the answer")
	f.StringVar(&o.shard, "shard", "", "i/N: this generator is shard i of N (own endpoint IDs, 1/N of the rates); merge with report merge")
	f.StringVar(&o.shardEnv, "shard-index-env", "", "take the shard index i from this environment variable (with --shards N), e.g. JOB_COMPLETION_INDEX in a Kubernetes Indexed Job")
	f.IntVar(&o.shards, "shards", 0, "with --shard-index-env: the number of shards N")
	f.StringVar(&o.startAt, "start-at", "", "RFC 3339 time at which the load window starts (the same for every shard): connect and register first, then wait; "+
		"a shard not ready by then still runs, and its run is invalid (exit 2)")
	f.DurationVar(&o.startIn, "start-in", 0, "as --start-at, this long after the command starts (for one machine; a launcher resolves it once and passes --start-at to every shard)")
	f.BoolVar(&o.baseline, "baseline", false, "after the window, relay the same message count and sizes as raw MQTT on the same broker and compare")
	f.StringVar(&o.sloSpec, "slo", "", "thresholds, e.g. 'setup.p99<100ms,errors<0.1%,lost<=0' (with --check also 'violations<=N', the checker's findings); exit 1 when breached (grammar: loadgen/README.md)")
	f.BoolVar(&o.check, "check", false, "judge the run's traffic with the passive protocol checker (inside the embedded broker, or subscribed to <topic path># on --broker): findings in summary.json, the report and <results>/check (docs/CHECK.md)")
	f.Float64Var(&o.maxLate, "max-late", o.maxLate, "share of calls allowed to start over 10 ms late before the run is invalid (exit 2); e.g. 0.05 on a shared CI machine")
	f.StringVar(&o.out, "out", "", "results directory (default ./results/load-<UTC timestamp>)")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the schedule and call choices (0 = random; recorded in params.json)")
	addTargetFlags(f, &o.targetFlags)
	f.StringVar(&o.appContext, "app-context", o.appContext, "appContext of registrations and calls")
	f.BoolVar(&o.noQuery, "no-service-query", false, "endpoints skip SERVICE_QUERY after registering")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load window to this file (go tool pprof)")
	f.StringVar(&o.blockProfile, "blockprofile", "", "write a blocking profile (channel/select/lock waits over 100 µs) of the load window to this file")
	f.StringVar(&o.mutexProfile, "mutexprofile", "", "write a mutex contention profile of the load window to this file")
	f.StringVar(&o.traceFile, "trace", "", "write an execution trace of 5 s of the load window to this file (go tool trace)")
	f.StringVar(&o.memProfile, "memprofile", "", "write a heap profile (live objects at the last GC) to this file when the run ends (after the drain and the report; see --memprofile-after)")
	f.DurationVar(&o.traceAfter, "trace-after", 0, "with --trace: start tracing this long into the load window")
	f.DurationVar(&o.memAfter, "memprofile-after", 0, "with --memprofile: write the heap profile this long into the load window instead, after a GC (live objects of that moment, e.g. the held calls), and a goroutine profile to <file>.goroutine")
	return cmd
}

// writerIsTerminal reports whether w is a terminal (the live line is only for humans).
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// runLoad runs the load command; out gets the summary, errOut the live line.
func runLoad(ctx context.Context, o loadOptions, out, errOut io.Writer, tty bool, log *slog.Logger) error {
	invalid := func(err error) error { return &exitError{code: exitLoadInvalid, err: err} }
	if os.Getenv("GOGC") == "" {
		// Thousands of paho connections (and the embedded broker) allocate per message; the
		// default GC target spent about a quarter of the CPU in a profiled run. With the light
		// client against an external broker it is set back once the pool is up (below).
		debug.SetGCPercent(400)
	}
	startAt, err := loadgen.StartAt(o.startAt, o.startIn, time.Now())
	if err != nil {
		return invalid(err)
	}
	sh, err := o.resolveShard(os.LookupEnv)
	if err != nil {
		return invalid(err)
	}
	ths, err := slo.Parse(o.sloSpec)
	if err != nil {
		return invalid(fmt.Errorf("--slo: %w", err))
	}
	if slo.HasViolations(ths) && !o.check {
		return invalid(errors.New("--slo: violations needs --check (the protocol checker counts them)"))
	}
	if !(o.maxLate >= 0 && o.maxLate < 1) {
		return invalid(fmt.Errorf("--max-late %g: must be in [0, 1)", o.maxLate))
	}
	if o.pacer != "poisson" && o.pacer != "constant" {
		return invalid(fmt.Errorf("--pacer %q: want poisson or constant", o.pacer))
	}
	if o.endpoints < 2 || o.rate <= 0 || o.duration <= 0 || o.rampRate <= 0 {
		return invalid(errors.New("--endpoints must be at least 2, --rate, --ramp-rate and --duration positive"))
	}
	model := sim.DefaultCallModel()
	model.Offer, model.ICE, model.ICEGap = o.offer, o.ice, o.iceGap
	model.PranswerDelay, model.AnswerDelay, model.RingTimeout = o.pranswerDelay, o.answerDelay, o.ringTimeout
	model.RejectShare, model.NoAnswerShare, model.HoldMean = o.rejectShare, o.noAnswerShare, o.holdMean
	model.LossTimeout = o.lossTimeout
	if o.lossTimeout <= 0 {
		return invalid(fmt.Errorf("--loss-timeout %s: must be positive", o.lossTimeout))
	}
	if err := model.Validate(); err != nil {
		return invalid(err)
	}
	fault, err := parseLoadFault(o.fault, o.topicPath)
	if err != nil {
		return invalid(err)
	}
	if fault != nil && o.noConnector {
		return invalid(errors.New("--fault plants the fault in the connector the harness starts: not with --no-connector"))
	}
	dir := o.out
	if dir == "" {
		name := "load-" + time.Now().UTC().Format("20060102T150405Z")
		if sh.Count > 1 {
			name += fmt.Sprintf("-shard%dof%d", sh.Index, sh.Count)
		}
		dir = filepath.Join("results", name)
	}

	if n, err := raiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit", "err", err)
	} else if need := uint64(sh.Len(o.endpoints)) * 2; n > 0 && n < need+100 && o.brokerURL == "" {
		log.Warn("open-file limit may be too low for the embedded broker and its endpoints", "limit", n, "need", need)
	}
	tgt := o.target(quietTarget(log))
	if fault != nil {
		tgt.ConnectorVia = fault.via
	}
	var lc *loadCheck
	if o.check {
		if lc, err = newLoadCheck(o, dir, log); err != nil {
			return invalid(err)
		}
		defer lc.close()
		tgt.BrokerHooks = append(tgt.BrokerHooks, lc.hook)
	}
	env, err := sim.StartTarget(ctx, tgt)
	if err != nil {
		return invalid(err)
	}
	defer env.Close()
	if lc != nil {
		if id := env.ConnectorID(); id != "" {
			lc.c.AddConnectorClient(id) // blame it as "connector", as serve --check does
		}
		if !env.Embedded() {
			if err := lc.subscribe(ctx, env.BrokerURL(), o); err != nil {
				return invalid(err)
			}
		}
	}
	fmt.Fprintf(out, "target:    %s\n", env.Describe())
	pc := sim.DefaultPoolConfig()
	pc.Endpoints, pc.Shard, pc.RampRate, pc.IDPrefix, pc.AppContext = o.endpoints, sh, o.rampRate, o.idPrefix, o.appContext
	pc.ServiceQuery = !o.noQuery
	if err := o.poolConfig(&pc); err != nil {
		return invalid(err)
	}
	fmt.Fprintf(out, "endpoints: connecting %d at %g/s ...\n", sh.Len(o.endpoints), sh.Rate(o.rampRate))
	rec := metrics.NewRecorder()
	t0 := time.Now()
	pool, err := sim.OpenPool(ctx, env, pc, rec)
	if err != nil {
		return invalid(err)
	}
	defer func() {
		if err := pool.Close(); err != nil {
			log.Warn("closing endpoints", "err", err)
		}
	}()
	if os.Getenv("GOGC") == "" && pool.Client() == sim.ClientLight && !env.Embedded() {
		// The light client allocates a fraction of paho's garbage: at Go's default target the
		// GC cost about as much CPU as 400 did and the heap stayed 40 % smaller
		// (docs/PERFORMANCE.md, "The light endpoint client"). Since held calls keep no
		// payloads (endpoint.Config.DropPayloads) the live heap is small and a cycle cheap:
		// 50 keeps the heap at 1.5 x live for about 0.05 ms more CPU per call than 100
		// (docs/PERFORMANCE.md, "Generator memory and decoding").
		debug.SetGCPercent(generatorGCPercent)
	}
	fmt.Fprintf(out, "endpoints: %d registered in %s (%s client)", pool.Len(), time.Since(t0).Round(100*time.Millisecond), pool.Client())
	if n := pool.Failed(); n > 0 {
		fmt.Fprintf(out, " (%d failed to come up)", n)
	}
	fmt.Fprintf(out, "\ncalls:     %g/s %s for %s; results in %s\n", sh.Rate(o.rate), o.pacer, o.duration, dir)
	step := sim.Step{Rate: o.rate, Duration: o.duration, Pacer: o.pacer, Seed: o.seed, Calls: model, SLO: o.sloSpec,
		Recorder: rec, Baseline: o.baseline, HarnessVersion: harnessVersion(), Progress: &sim.ProgressOut{W: errOut, TTY: tty}}
	if lc != nil {
		step.Check, step.Progress.Violations = lc.summary, lc.nFound.Load
	}
	if fault != nil {
		step.Extra = map[string]any{"fault": o.fault}
		step.Warnings = append(step.Warnings, "a fault was planted in the connector (--fault "+o.fault+"): this run is a harness self-test, not a measurement of the reference")
	}
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return invalid(fmt.Errorf("--cpuprofile: %w", err))
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return invalid(fmt.Errorf("--cpuprofile: %w", err))
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	stopProfiles, err := startWaitProfiles(o)
	if err != nil {
		return invalid(err)
	}
	defer stopProfiles(log)
	if !startAt.IsZero() {
		syncStart(out, sh, startAt, &step)
	}
	sum, err := pool.CallStep(ctx, dir, step)
	if sum != nil {
		printLoadSummary(out, sum)
	}
	if fault != nil {
		fmt.Fprintf(out, "fault:     %s\n", fault.Report())
	}
	fmt.Fprintf(out, "results:   %s\n", dir)
	var checkErr error
	if lc != nil {
		checkErr = lc.finish(out, log) // before the report, which links the check's bundle
	}
	writeLoadReport(out, dir, log) // also for a failed or interrupted run: what was measured is reported
	// An invalid run exits 2 whatever its SLOs say: its numbers are not a verdict.
	switch {
	case err != nil:
		return invalid(err)
	case checkErr != nil:
		return invalid(checkErr)
	case sum == nil:
		return invalid(errors.New("no summary"))
	case len(sum.Invalid) > 0:
		return invalid(errors.New(strings.Join(sum.Invalid, "; ")))
	case lateInvalid(sum.Tally, o.maxLate):
		return invalid(fmt.Errorf("the generator fell behind its schedule (%d late starts, worst %s): the run is not a valid measurement of the target",
			sum.Tally.LateStarts, sum.Tally.MaxLateLag()))
	case !sum.SLOPassed:
		return &exitError{code: exitSLOBreached, err: errors.New("SLO breached")}
	}
	return nil
}

// generatorGCPercent is the GC target of a light-client generator against an external
// broker (unless GOGC is set).
const generatorGCPercent = 50

// resolveShard reads --shard, or --shard-index-env with --shards.
func (o loadOptions) resolveShard(lookup func(string) (string, bool)) (loadgen.Shard, error) {
	switch {
	case o.shardEnv != "" && o.shard != "":
		return loadgen.Shard{}, errors.New("give --shard i/N or --shard-index-env with --shards, not both")
	case o.shardEnv != "":
		if o.shards < 1 {
			return loadgen.Shard{}, fmt.Errorf("--shard-index-env %s needs --shards N (N >= 1)", o.shardEnv)
		}
		return loadgen.ShardFromEnv(o.shardEnv, o.shards, lookup)
	case o.shards != 0:
		return loadgen.Shard{}, errors.New("--shards needs --shard-index-env (or give --shard i/N)")
	}
	sh, err := loadgen.ParseShard(o.shard)
	if err != nil {
		return loadgen.Shard{}, fmt.Errorf("--shard: %w", err)
	}
	return sh, nil
}

// syncStart sets up the step's wait for the common start of a synchronized run (the step
// waits once its results directory is ready). A shard that gets there late says so, runs
// anyway (its load is part of the run the other shards measure, and what it measures is kept)
// and its summary records the run as invalid, which report merge carries into the merged run.
func syncStart(out io.Writer, sh loadgen.Shard, at time.Time, step *sim.Step) {
	if step.Extra == nil {
		step.Extra = map[string]any{}
	}
	stamp := at.UTC().Format(time.RFC3339Nano)
	step.Extra["start_at"] = stamp
	step.StartAt = at
	step.NotReady = func(why string) { fmt.Fprintf(out, "NOT READY: %s; running anyway, the run is invalid\n", why) }
	if d := time.Until(at); d > 0 {
		fmt.Fprintf(out, "start:     shard %s ready; waiting %s for the common start %s\n", sh, d.Round(time.Millisecond), stamp)
	}
}

// startWaitProfiles starts the block, mutex and trace profiles the options ask for; the
// returned function writes them. They show where the serial chain of a run waits (a
// CPU profile shows only where it works).
func startWaitProfiles(o loadOptions) (func(*slog.Logger), error) {
	var stops []func() error
	if o.blockProfile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		stops = append(stops, func() error {
			defer runtime.SetBlockProfileRate(0)
			return writeProfile("block", o.blockProfile)
		})
	}
	if o.mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
		stops = append(stops, func() error {
			defer runtime.SetMutexProfileFraction(0)
			return writeProfile("mutex", o.mutexProfile)
		})
	}
	switch {
	case o.memProfile != "" && o.memAfter > 0:
		errc := make(chan error, 1)
		t := time.AfterFunc(o.memAfter, func() {
			runtime.GC() // the profile's live objects are those of the last GC: make it now
			err := writeProfile("heap", o.memProfile)
			errc <- errors.Join(err, writeProfile("goroutine", o.memProfile+".goroutine"))
		})
		stops = append(stops, func() error {
			if t.Stop() {
				return fmt.Errorf("--memprofile-after %s: the load window ended first, no heap profile written", o.memAfter)
			}
			return <-errc
		})
	case o.memProfile != "":
		stops = append(stops, func() error { return writeProfile("heap", o.memProfile) })
	}
	if o.traceFile != "" {
		tf, err := os.Create(o.traceFile)
		if err != nil {
			return nil, fmt.Errorf("--trace: %w", err)
		}
		// A trace of a whole run at hundreds of calls/s is gigabytes; 5 s shows the chain.
		var mu sync.Mutex
		started, stopped := false, false
		end := func() {
			mu.Lock()
			defer mu.Unlock()
			if started && !stopped {
				trace.Stop()
			}
			if !stopped {
				stopped = true
				tf.Close()
			}
		}
		begin := func() {
			mu.Lock()
			defer mu.Unlock()
			if stopped || started {
				return
			}
			if err := trace.Start(tf); err != nil {
				return
			}
			started = true
			time.AfterFunc(5*time.Second, end)
		}
		t := time.AfterFunc(o.traceAfter, begin)
		stops = append(stops, func() error { t.Stop(); end(); return nil })
	}
	return func(log *slog.Logger) {
		for _, stop := range stops {
			if err := stop(); err != nil {
				log.Warn("writing profile", "err", err)
			}
		}
	}, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile %s: %w", name, path, err)
	}
	return f.Close()
}

// lateLagInvalid is the lateness of a single start that invalidates a run whatever the
// share: timer and scheduler noise make a few starts 10-20 ms late on any busy machine, but a
// start this late is a generator that stalled. The summary warns about every late start.
const lateLagInvalid = 100 * time.Millisecond

// lateInvalid reports whether the generator fell behind: more than maxShare of the calls
// started late, or one start was later than lateLagInvalid.
func lateInvalid(t metrics.Tally, maxShare float64) bool {
	r, ok := t.LateRatio()
	return ok && (r > maxShare || t.MaxLateLag() > lateLagInvalid)
}

// printLoadSummary prints the readable summary of a run.
func printLoadSummary(w io.Writer, s *results.Summary) {
	t := s.Tally
	o := t.Outcomes
	fmt.Fprintf(w, "\nwindow     %.1fs  achieved %.1f calls/s  goodput %.1f/s\n", s.DurationS, s.AchievedRate, s.Goodput)
	fmt.Fprintf(w, "calls      %d attempts: %d success, %d rejected, %d no answer, %d failure, %d timeout, %d aborted\n",
		t.Attempts, o[metrics.Success], o[metrics.Rejected], o[metrics.NoAnswer], o[metrics.Failure], o[metrics.Timeout], o[metrics.Aborted])
	fmt.Fprintf(w, "messages   %d checked: %d delivered, %d lost, %d in flight\n", t.Sent, t.Delivered, t.Lost, t.InFlight)
	fmt.Fprintf(w, "deliveries %d duplicated, %d misrouted, %d altered, %d unexpected, %d out of order, %d malformed\n",
		t.Duplicated, t.Misrouted, t.Altered, t.Unexpected, t.OutOfOrder, t.Malformed)
	fmt.Fprintf(w, "generator  %d late starts (worst %s)\n", t.LateStarts, t.MaxLateLag())
	fmt.Fprintf(w, "\n%-16s %8s %10s %10s %10s %10s %10s\n", "latency", "count", "p50", "p90", "p99", "p99.9", "max")
	for _, m := range metrics.All() {
		st := s.Metrics[m.String()].Corrected
		if st.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "%-16s %8d %10s %10s %10s %10s %10s\n", m, st.Count, metrics.FormatMicros(st.P50US),
			metrics.FormatMicros(st.P90US), metrics.FormatMicros(st.P99US), metrics.FormatMicros(st.P999US), metrics.FormatMicros(st.MaxUS))
	}
	if len(t.Reasons) > 0 {
		keys := make([]string, 0, len(t.Reasons))
		for k := range t.Reasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "\nnot successful:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %6d  %s\n", t.Reasons[k], k)
		}
	}
	if s.Check != nil {
		printCheckSummary(w, s.Check)
	}
	if b := s.Baseline; b != nil {
		fmt.Fprintf(w, "\nbaseline   raw MQTT relay: %d msgs in %.2fs = %.0f msgs/s (p99 %s, %d lost); rtcomm: %.0f msgs/s delivered = %.1f%% of raw",
			b.Messages, b.DurationS, b.Rate, metrics.FormatMicros(b.Latency.P99US), b.Lost, b.RtcommRate, 100*b.Ratio)
		if b.Note != "" {
			fmt.Fprintf(w, " (%s)", b.Note)
		}
		fmt.Fprintln(w, "\n           (the ratio is the connector's share of the broker's limit only in a run that saturates the target)")
	}
	if len(s.SLO) > 0 {
		fmt.Fprintln(w, "\nSLO:")
		for _, v := range s.SLO {
			verdict := "pass"
			if !v.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(w, "  %-4s %s (measured %s)\n", verdict, v.Threshold, v.Measured)
		}
	}
	if len(s.Invalid) > 0 {
		fmt.Fprintln(w, "\nINVALID run (not a measurement):")
		for _, x := range s.Invalid {
			fmt.Fprintf(w, "  - %s\n", x)
		}
	}
	if len(s.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, x := range s.Warnings {
			fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(x))
		}
	}
	fmt.Fprintln(w)
}
