package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reports/certreport"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// Exit statuses of `certify` (scenarios/BUNDLE.md): 0 certified, exitNotCertified when a
// claimed MUST requirement failed, exitHarness when the harness could not run the suite
// (bad declaration, unreachable target, incomplete run, bundle not written).
const (
	exitNotCertified = 1
	exitHarness      = 2
)

// certifyOptions are the flags of `certify`.
type certifyOptions struct {
	target      string
	out         string
	overrides   scenarios.Overrides
	labelFilter string
	areas       []string
	seed        int64
	verbose     bool
	timeout     time.Duration
	launch      string
}

func newCertifyCmd(g *globalFlags) *cobra.Command {
	o := certifyOptions{}
	cmd := &cobra.Command{
		Use:   "certify",
		Short: "Run the conformance suite against a target and write a certification bundle",
		Long: `Run the Rtcomm conformance suite against a target and write a certification bundle:
Ginkgo's JUnit XML and JSON reports, verdicts.json (per requirement: pass, fail, not-claimed,
not-applicable or not-tested, with expected/actual and the message trace of failures), and
the target declaration. scenarios/BUNDLE.md describes the bundle.

The target is described by a declaration file (--target, YAML or JSON; format in
scenarios/README.md) and/or flags: --mode embedded (default without a file: the in-process
reference), broker (an external broker; the harness attaches the reference connector) or
connector (an external broker with its own connector attached).

Exit status: 0 certified (no claimed MUST failed), 1 a claimed MUST requirement failed,
2 the harness could not complete the run.`,
		Example: `  rtcomm-harness certify --out bundle/
  rtcomm-harness certify --target scenarios/testdata/mosquitto.yaml \
      --broker-tcp tcp://127.0.0.1:1883 --broker-ws ws://127.0.0.1:8080/mqtt --out bundle-mosquitto/
  rtcomm-harness certify --target scenarios/testdata/rabbitmq.yaml --launch rabbitmq --out bundle-rabbitmq/
  rtcomm-harness certify --target scenarios/testdata/ejabberd.yaml --launch ejabberd --out bundle-ejabberd/
  rtcomm-harness certify --target my-connector.yaml --areas sessions,ice --out bundle/
  rtcomm-harness certify matrix --out docs/COMPATIBILITY.md bundle-mosquitto/ bundle-rabbitmq/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return &exitError{code: exitHarness, err: err}
			}
			return runCertify(cmd.Context(), o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", os.Getenv(scenarios.EnvTarget), "target declaration file (YAML or JSON); env "+scenarios.EnvTarget)
	f.StringVar(&o.out, "out", "", "directory for the certification bundle (required)")
	f.StringVar(&o.overrides.Mode, "mode", os.Getenv(scenarios.EnvMode), "embedded, broker or connector (overrides the file)")
	f.StringVar(&o.overrides.BrokerTCP, "broker-tcp", os.Getenv(scenarios.EnvBrokerTCP), "broker TCP URL, e.g. tcp://127.0.0.1:1883")
	f.StringVar(&o.overrides.BrokerWS, "broker-ws", os.Getenv(scenarios.EnvBrokerWS), "broker WebSocket URL, e.g. ws://127.0.0.1:8080/mqtt")
	f.StringVar(&o.overrides.TopicPath, "topic-path", os.Getenv(scenarios.EnvTopicPath), "topic path (mode connector: the one the connector serves)")
	f.StringVar(&o.overrides.Profile, "profile", os.Getenv(scenarios.EnvProfile), "strict or client (overrides the file)")
	f.StringVar(&o.overrides.Username, "username", os.Getenv(scenarios.EnvUsername), "MQTT username for every harness client")
	f.StringVar(&o.overrides.Password, "password", os.Getenv(scenarios.EnvPassword), "MQTT password for every harness client")
	f.StringVar(&o.overrides.Topology, "topology", os.Getenv(scenarios.EnvTopology),
		"how the harness runs the reference connector (modes embedded and broker): single, route-only, replicas=N or route-only,replicas=N (overrides the file's topology:)")
	f.StringVar(&o.labelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'area:sessions || ICE-003' (a filtered run is not complete, so not certified)")
	f.StringSliceVar(&o.areas, "areas", nil, "run only these areas (broker, registration, service-query, sessions, ice, messages, referral, events, queues, schemes, identity, robustness, format)")
	f.Int64Var(&o.seed, "seed", 0, "random seed for the scenario order (0: time-based)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "stream every scenario as it runs")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "upper bound for the whole run")
	f.StringVar(&o.launch, "launch", "", "start this broker on free loopback ports for the run and use its URLs: "+strings.Join(extbroker.LauncherNames(), ", ")+
		" (docs/brokers/<name>.md: how to install it, what the launcher configures)")
	cmd.AddCommand(newMatrixCmd())
	return cmd
}

// suiteFailer is the GinkgoTestingT of a run outside `go test`: Ginkgo only calls Fail.
type suiteFailer struct{ failed bool }

func (f *suiteFailer) Fail() { f.failed = true }

func runCertify(ctx context.Context, o certifyOptions, out io.Writer, log *slog.Logger) error {
	if o.out == "" {
		return &exitError{code: exitHarness, err: errors.New("--out DIR is required")}
	}
	if o.launch != "" {
		p, err := launchBroker(ctx, o.launch)
		if err != nil {
			return &exitError{code: exitHarness, err: err}
		}
		defer p.Close()
		o.overrides.BrokerTCP, o.overrides.BrokerWS = p.TCP, p.WS
		if o.overrides.Mode == "" && o.target == "" {
			o.overrides.Mode = string(scenarios.ModeBroker)
		}
		fmt.Fprintf(out, "launched %s: %s %s\n", o.launch, p.TCP, p.WS)
	}
	d, err := scenarios.ResolveDeclaration(o.target, o.overrides)
	if err != nil {
		return &exitError{code: exitHarness, err: err}
	}
	filter := o.labelFilter
	if len(o.areas) > 0 {
		var parts []string
		for _, a := range o.areas {
			parts = append(parts, "area:"+strings.TrimSpace(a))
		}
		if filter != "" {
			filter = "(" + filter + ") && (" + strings.Join(parts, " || ") + ")"
		} else {
			filter = strings.Join(parts, " || ")
		}
	}
	// The target's own components (embedded broker, reference connector, harness endpoints)
	// log only at --log-level debug; otherwise their warnings about the traffic the
	// scenarios provoke on purpose would drown the summary.
	targetLog := slog.New(slog.DiscardHandler)
	if log.Enabled(ctx, slog.LevelDebug) {
		targetLog = log
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	target, err := scenarios.Open(octx, d, targetLog)
	cancel()
	if err != nil {
		return &exitError{code: exitHarness, err: err}
	}
	defer target.Close()
	fmt.Fprintf(out, "certifying %s (mode %s, profile %s) -> %s\n", d.Name, d.Mode, d.Profile, o.out)
	res, err := scenarios.Run(&suiteFailer{}, scenarios.RunOptions{
		Target: target, OutDir: o.out, LabelFilter: filter, Seed: o.seed,
		Verbose: o.verbose, Succinct: !o.verbose, HarnessVersion: harnessVersion(), Timeout: o.timeout,
		NoColor: !isTerminal(os.Stdout),
	})
	if err != nil {
		return &exitError{code: exitHarness, err: err}
	}
	if res.BundleErr != nil {
		return &exitError{code: exitHarness, err: fmt.Errorf("bundle: %w", res.BundleErr)}
	}
	v := res.Verdicts
	if v == nil {
		return &exitError{code: exitHarness, err: errors.New("the suite produced no verdicts")}
	}
	printSummary(out, v, o.out)
	writeCertReport(out, o.out, v, log) // "report: DIR/report.html"; a report failure does not change the verdict
	switch {
	case len(v.SuiteFailures) > 0:
		return &exitError{code: exitHarness, err: fmt.Errorf("suite set-up failed: %s", v.SuiteFailures[0])}
	case v.Summary.MustFailures > 0:
		return &exitError{code: exitNotCertified, err: fmt.Errorf("not certified: %d claimed MUST requirement(s) failed", v.Summary.MustFailures)}
	case len(v.HarnessErrors) > 0:
		return &exitError{code: exitHarness, err: fmt.Errorf("%d scenario(s) stopped on a harness error: not certified; first: %s", len(v.HarnessErrors), v.HarnessErrors[0])}
	case v.Interrupted:
		return &exitError{code: exitHarness, err: errors.New("the run was interrupted: not certified")}
	case v.Filter != "":
		fmt.Fprintf(out, "partial run (%s): no claimed MUST failed, but a partial run certifies nothing\n", v.Filter)
	}
	return nil
}

// launchBroker starts a third-party broker for the run.
func launchBroker(ctx context.Context, name string) (*extbroker.Process, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return extbroker.Launch(ctx, name)
}

// printSummary writes the verdict counts and the failed requirements.
func printSummary(w io.Writer, v *scenarios.Verdicts, dir string) {
	s := v.Summary
	fmt.Fprintf(w, "\n%s: %d requirements (catalog %s), %d/%d scenarios ran in %s\n",
		v.Target.Name, s.Total, v.CatalogVersion, s.ScenariosRun, s.Scenarios, v.Duration)
	fmt.Fprintf(w, "  pass %d  fail %d  not-claimed %d  not-applicable %d  not-tested %d\n",
		s.Pass, s.Fail, s.NotClaimed, s.NotApplicable, s.NotTested)
	for _, r := range v.Requirements {
		if r.Verdict != scenarios.VerdictFail {
			continue
		}
		fmt.Fprintf(w, "  FAIL %-9s %-6s %s\n", r.ID, r.Level, r.Text)
		for i, f := range r.Failures {
			if i == 2 {
				fmt.Fprintf(w, "         ... %d more\n", len(r.Failures)-i)
				break
			}
			fmt.Fprintf(w, "         expected: %s\n         actual:   %s\n", oneLine(f.Expected, 200), oneLine(f.Actual, 300))
		}
	}
	for _, h := range v.HarnessErrors {
		fmt.Fprintf(w, "  HARNESS ERROR %s\n", oneLine(h, 300))
	}
	verdict := "CERTIFIED"
	if !v.Certified {
		verdict = "NOT CERTIFIED"
	}
	fmt.Fprintf(w, "%s; bundle: %s\n", verdict, dir)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// newMatrixCmd renders the compatibility matrix (requirement x target) from bundles.
func newMatrixCmd() *cobra.Command {
	var out, title string
	var requireExplained bool
	cmd := &cobra.Command{
		Use:   "matrix BUNDLE...",
		Short: "Render a requirement x target compatibility matrix (Markdown) from certification bundles",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []*scenarios.Verdicts
			for _, dir := range args {
				v, err := scenarios.ReadVerdicts(filepath.Join(dir, scenarios.BundleVerdicts))
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
			w := cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := certreport.RenderMatrix(w, title, vs); err != nil {
				return err
			}
			if !requireExplained {
				return nil
			}
			var missing []string
			for i, v := range vs {
				for _, id := range certreport.Unexplained(v) {
					missing = append(missing, fmt.Sprintf("%s: %s (%s)", v.Target.Name, id, args[i]))
				}
			}
			if len(missing) > 0 {
				return &exitError{code: exitNotCertified, err: fmt.Errorf("%d failure(s) carry neither a blame entry nor a note in the declaration: %s",
					len(missing), strings.Join(missing, "; "))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&requireExplained, "require-explained", false,
		"exit 1 when a failure has neither a blame entry (a broker requirement it needs failed too) nor a note in the target declaration")
	cmd.Flags().StringVar(&out, "out", "-", "Markdown file to write (- for stdout), e.g. docs/COMPATIBILITY.md")
	cmd.Flags().StringVar(&title, "title", "Broker compatibility", "document title")
	return cmd
}

// isTerminal reports whether f is a character device (colours only for humans).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
