package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/sim"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/soak"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
)

// soakOptions are the flags of `soak`.
type soakOptions struct {
	duration    time.Duration
	rate        float64
	endpoints   int
	hold        time.Duration
	every       time.Duration
	warmup      time.Duration
	tolerance   float64
	out         string
	topicPath   string
	seed        uint64
	settleAfter time.Duration
}

// The soak is a subcommand rather than a Go test behind an env var: it needs the harness's
// own flags and output directory, a user can soak their own build the same way, and a
// 30-minute run does not belong under `go test ./...` timeouts.
func newSoakCmd(g *globalFlags) *cobra.Command {
	o := soakOptions{}
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Long load run against the embedded reference; checks goroutines, heap, sessions and registry stay flat",
		Long: `Run calls at a moderate rate against the embedded reference (broker + connector in
this process) for --duration, sampling every --sample-every: goroutines, live heap, heap in
use, the connector's session table (active and pending) and registry, and the broker's
clients and retained messages. Samples go to OUT/samples.csv as they are taken, the load
run's results to OUT/load, the verdict to OUT/soak.json.

After --warmup, each gauge is fitted with a least-squares line; it passes when the line's
rise over the window is within --tolerance of its mean (or a small absolute allowance for
noise: 50 goroutines, 8 MiB heap). After the load the pool is closed and the session table
and registry must drain to zero. The process hosts the load generator too, so goroutines
and heap are the generator's plus the target's.

Exit status: 0 every gauge flat and drained, 1 a gauge grew or did not drain, 2 the
harness failed.`,
		Example: `  rtcomm-harness soak --duration 30m
  make soak DURATION=30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return &exitError{2, err}
			}
			return runSoak(cmd.Context(), o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 30*time.Minute, "length of the load")
	f.Float64Var(&o.rate, "rate", 50, "calls per second (a moderate rate: well below the knee)")
	f.IntVar(&o.endpoints, "endpoints", 2000, "simulated endpoints, registered for the whole run")
	f.DurationVar(&o.hold, "hold", 20*time.Second, "mean hold time of answered calls")
	f.DurationVar(&o.every, "sample-every", 10*time.Second, "sampling interval")
	f.DurationVar(&o.warmup, "warmup", 0, "samples before this are not fitted (0: 3m, or a fifth of a shorter run)")
	f.Float64Var(&o.tolerance, "tolerance", 0.1, "allowed rise of a gauge's fitted line over the window, as a fraction of its mean")
	f.StringVar(&o.out, "out", "", "output directory (default soak-<timestamp>)")
	addTopicPathFlag(f, &o.topicPath)
	f.Uint64Var(&o.seed, "seed", 0, "seed of arrivals and call choices (0: random)")
	f.DurationVar(&o.settleAfter, "drain-wait", 15*time.Second, "after the load, how long the session table and registry get to reach zero")
	return cmd
}

// soakReport is soak.json.
type soakReport struct {
	Format      string         `json:"format"` // soak.Format
	Params      map[string]any `json:"params"`
	Start       time.Time      `json:"start"`
	End         time.Time      `json:"end"`
	Samples     string         `json:"samples"` // CSV file, relative
	Load        string         `json:"load"`    // results directory of the load, relative
	Trends      []soak.Trend   `json:"trends"`
	Drained     map[string]int `json:"drained"`    // session table and registry after the pool closed
	DrainedOK   bool           `json:"drained_ok"` // both reached zero within drain-wait
	Pass        bool           `json:"pass"`
	Interrupted bool           `json:"interrupted"`
	Notes       []string       `json:"notes,omitempty"`
}

func runSoak(ctx context.Context, o soakOptions, out io.Writer, log *slog.Logger) error {
	if o.duration <= 0 || o.rate <= 0 || o.endpoints < 2 || o.every <= 0 || o.tolerance <= 0 {
		return &exitError{2, errors.New("soak: --duration, --rate, --sample-every, --tolerance must be positive and --endpoints at least 2")}
	}
	if o.warmup == 0 {
		o.warmup = min(3*time.Minute, o.duration/5)
	}
	if o.out == "" {
		o.out = "soak-" + time.Now().Format("20060102-150405")
	}
	fail := func(err error) error { return &exitError{2, fmt.Errorf("soak: %w", err)} }
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fail(err)
	}

	// The embedded reference, started here (not by sim.StartTarget) so the soak can read the
	// connector's and broker's own gauges.
	tlog := quietTarget(log)
	b, err := broker.Start(ctx, broker.Config{WSAddr: broker.Off, TopicPath: o.topicPath, Logger: tlog.With("component", "broker")})
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	cfg := connector.DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath, cfg.Logger = b.TCPURL(), o.topicPath, tlog.With("component", "connector")
	cfg.Dial = connector.InProcess(b) // as serve: no socket between the broker and its connector
	conn, err := connector.New(cfg)
	if err == nil {
		err = conn.Start(ctx)
	}
	if err != nil {
		return fail(fmt.Errorf("connector: %w", err))
	}
	defer conn.Close()
	env, err := sim.StartTarget(ctx, sim.Target{BrokerURL: b.TCPURL(), NoConnector: true, TopicPath: o.topicPath, Logger: tlog})
	if err != nil {
		return fail(err)
	}
	defer env.Close()

	fmt.Fprintf(out, "soak: embedded reference on %s; %d endpoints, %g calls/s, hold %s, for %s (samples every %s, warm-up %s)\n",
		b.TCPURL(), o.endpoints, o.rate, o.hold, o.duration, o.every, o.warmup)
	pcfg := sim.DefaultPoolConfig()
	pcfg.Endpoints, pcfg.IDPrefix = o.endpoints, "soak-"
	pool, err := sim.OpenPool(ctx, env, pcfg, nil)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	fmt.Fprintf(out, "soak: %d endpoints registered (%d failed)\n", pool.Len(), pool.Failed())

	probes := soakProbes(conn, b)
	start := time.Now()
	sampler, err := soak.NewSampler(filepath.Join(o.out, "samples.csv"), probes, start)
	if err != nil {
		return fail(err)
	}
	defer sampler.Close()
	if _, err := sampler.Take(start); err != nil {
		return fail(err)
	}
	sctx, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan error, 1)
	lastPrint := time.Time{}
	go func() {
		samplerDone <- sampler.Run(sctx, o.every, func(s soak.Sample) {
			if time.Since(lastPrint) >= time.Minute { // a line a minute: the run is long
				lastPrint = time.Now()
				fmt.Fprintf(out, "soak: %6s goroutines %.0f, heap live %.1f MiB, sessions %.0f, registrations %.0f\n",
					s.Elapsed.Truncate(time.Second), s.Values[0], s.Values[1]/(1<<20), s.Values[3], s.Values[5])
			}
		})
	}()

	model := sim.DefaultCallModel()
	model.HoldMean = o.hold
	sum, lerr := pool.CallStep(ctx, filepath.Join(o.out, "load"), sim.Step{Rate: o.rate, Duration: o.duration,
		Seed: o.seed, Calls: model, HarnessVersion: harnessVersion(), Extra: map[string]any{"run": "soak"}})
	stopSampling()
	serr := <-samplerDone
	end := time.Now()
	if _, err := sampler.Take(end); err != nil && serr == nil {
		serr = err
	}
	interrupted := ctx.Err() != nil

	// Drain: every call was hung up by CallStep; closing the pool unregisters every endpoint.
	cerr := pool.Close()
	drained := map[string]int{}
	deadline := time.Now().Add(o.settleAfter)
	for {
		st := conn.Stats()
		drained["sessions"], drained["pending_sessions"], drained["registrations"] = st.ActiveSessions, st.PendingSessions, st.Registrations
		if (st.ActiveSessions == 0 && st.Registrations == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	runtime.GC()
	drained["goroutines_after_close"] = runtime.NumGoroutine()

	rep := soakReport{
		Format: soak.Format, Start: start.UTC(), End: end.UTC(), Samples: "samples.csv", Load: "load",
		Params: map[string]any{"harness_version": harnessVersion(), "duration": o.duration.String(), "rate": o.rate,
			"endpoints": o.endpoints, "hold_mean": o.hold.String(), "sample_every": o.every.String(),
			"warmup": o.warmup.String(), "tolerance": o.tolerance, "target": "embedded reference " + b.TCPURL(),
			"gomaxprocs": runtime.GOMAXPROCS(0), "num_cpu": runtime.NumCPU()},
		Trends:      soak.Analyze(sampler.Samples(), probes, o.warmup, o.duration, o.tolerance),
		Drained:     drained,
		DrainedOK:   drained["sessions"] == 0 && drained["registrations"] == 0,
		Interrupted: interrupted,
	}
	rep.Pass = rep.DrainedOK && !interrupted
	for _, t := range rep.Trends {
		rep.Pass = rep.Pass && t.Pass
	}
	if sum != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("load: %d call attempts, achieved %.1f/s, setup p99 %s, outcomes %v",
			sum.Tally.Attempts, sum.AchievedRate, time.Duration(sum.Metrics["setup"].Corrected.P99US)*time.Microsecond,
			sum.Tally.Outcomes))
		t := sum.Tally
		rep.Notes = append(rep.Notes, fmt.Sprintf("messages: %d checked, %d lost, %d in flight; %d duplicated, %d misrouted, %d altered, %d unexpected, %d out of order",
			t.Sent, t.Lost, t.InFlight, t.Duplicated, t.Misrouted, t.Altered, t.Unexpected, t.OutOfOrder))
		rep.Notes = append(rep.Notes, sum.Warnings...)
		for _, x := range sum.Invalid {
			rep.Notes = append(rep.Notes, "the load run is invalid: "+x)
		}
		// An invalid run (unbalanced accounting, messages left in flight) cannot pass a soak;
		// an interrupted one is reported as interrupted below.
		rep.Pass = rep.Pass && (len(sum.Invalid) == 0 || interrupted)
	}
	if lerr != nil {
		rep.Notes = append(rep.Notes, "load step: "+lerr.Error())
	}
	if err := writeJSONFile(filepath.Join(o.out, "soak.json"), rep); err != nil && serr == nil {
		serr = err
	}
	printSoak(out, o.out, rep)
	switch {
	case serr != nil:
		return fail(serr)
	case lerr != nil && !interrupted:
		return fail(lerr)
	case cerr != nil:
		log.Warn("closing the pool", "err", cerr)
	}
	if interrupted {
		return &exitError{1, errors.New("soak interrupted: the trend covers the run until then")}
	}
	if !rep.Pass {
		return &exitError{1, errors.New("soak: a gauge grew or did not drain (see soak.json)")}
	}
	return nil
}

// quietTarget is the logger for an in-process target: warnings and errors only unless the
// harness logs at debug level (the connector logs every registration at info).
func quietTarget(log *slog.Logger) *slog.Logger {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		return log
	}
	return slog.New(warnOnly{log.Handler()})
}

// warnOnly drops records below warning level.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(a)} }
func (h warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{h.Handler.WithGroup(n)} }

// soakProbes are the gauges sampled. Floors are the growth a flat gauge shows as noise.
func soakProbes(conn *connector.Connector, b *broker.Broker) []soak.Probe {
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	return []soak.Probe{
		{Name: "goroutines", Unit: "count", Floor: 50, Read: func() float64 { return float64(runtime.NumGoroutine()) }},
		{Name: "heap_live_bytes", Unit: "bytes", Floor: 8 << 20, Read: func() float64 {
			rtmetrics.Read(live) // heap marked live by the last GC: no sawtooth
			if live[0].Value.Kind() != rtmetrics.KindUint64 {
				return 0
			}
			return float64(live[0].Value.Uint64())
		}},
		{Name: "heap_inuse_bytes", Unit: "bytes", Floor: 16 << 20, Read: func() float64 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return float64(ms.HeapInuse)
		}},
		{Name: "sessions", Unit: "count", Floor: 50, Read: func() float64 { return float64(conn.Stats().ActiveSessions) }},
		{Name: "pending_sessions", Unit: "count", Floor: 50, Read: func() float64 { return float64(conn.Stats().PendingSessions) }},
		{Name: "registrations", Unit: "count", Floor: 0, Read: func() float64 { return float64(conn.Stats().Registrations) }},
		{Name: "broker_clients", Unit: "count", Floor: 0, Read: func() float64 { return float64(b.Stats().ClientsConnected) }},
		{Name: "broker_retained", Unit: "count", Floor: 0, Read: func() float64 { return float64(b.Stats().Retained) }},
	}
}

func printSoak(out io.Writer, dir string, rep soakReport) {
	fmt.Fprintf(out, "\nsoak: %s .. %s\n", rep.Start.Format(time.RFC3339), rep.End.Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "gauge\tfirst\tlast\tmean\tslope/h\tgrowth\tallowed\tverdict")
	for _, t := range rep.Trends {
		v := "flat"
		if !t.Pass {
			v = "GROWS"
		}
		if t.Note != "" {
			v = t.Note
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%+.1f\t%+.1f\t%.0f\t%s\n", t.Metric, t.First, t.Last, t.Mean, t.SlopePerHour, t.Growth, t.Allowed, v)
	}
	tw.Flush()
	fmt.Fprintf(out, "after the pool closed: %v (drained: %v)\n", rep.Drained, rep.DrainedOK)
	for _, n := range rep.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "soak %s; samples %s, verdict %s\n", verdict, filepath.Join(dir, rep.Samples), filepath.Join(dir, "soak.json"))
}

// writeJSONFile writes v indented, atomically (temp file, fsync, rename).
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
