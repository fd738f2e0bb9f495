package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reports"
	"github.com/rtcomm-harness/rtcomm-harness/reports/certreport"
	"github.com/rtcomm-harness/rtcomm-harness/reports/loadreport"
	"github.com/rtcomm-harness/rtcomm-harness/reports/plan"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// Report file names written next to the results they describe.
const (
	reportHTML = "report.html"
	reportMD   = "report.md"
	reportJSON = "report.json"
)

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Render certification bundles and load results as reports (HTML, Markdown, JSON) and plan capacity",
		Long: `Render what certify and load/capacity wrote into documents people read:

  report cert BUNDLE...      certification report (HTML + Markdown); several bundles side by side
                             as a compatibility matrix
  report load DIR...         load report (HTML + JSON) of one results directory, of shards of one
                             run (merged exactly in memory) or of a capacity search (capacity.json)
  report merge OUT DIR...    merge shard results directories into OUT exactly, then report on it
  report plan --users ...    capacity-planning calculator, against measured capacity (--capacity)

HTML reports are single self-contained files: inline CSS and SVG charts, a small inline
script for the planning calculator, nothing loaded from the network.`,
	}
	cmd.AddCommand(newReportCertCmd(), newReportLoadCmd(), newReportMergeCmd(), newReportPlanCmd())
	return cmd
}

// outputs are where a report goes; "" skips a format, "-" is stdout.
type outputs struct{ html, md, json string }

func newReportCertCmd() *cobra.Command {
	var o outputs
	cmd := &cobra.Command{
		Use:   "cert BUNDLE...",
		Short: "Certification report of a bundle, or a compatibility matrix of several",
		Long: `Render certification bundles (directories written by certify, or their verdicts.json).
One bundle: a certification report (verdict and summary first, requirements by area, failures
with expected vs actual and the message trace), written by default to BUNDLE/report.html and
BUNDLE/report.md. Several bundles: a compatibility matrix (targets as columns, requirements as
rows); give --html and/or --markdown. The bundle's junit.xml stays the CI format.`,
		Example: `  rtcomm-harness report cert bundle/
  rtcomm-harness report cert --html compat.html --markdown docs/COMPATIBILITY.md bundle-mosquitto/ bundle-rabbitmq/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs := make([]*scenarios.Verdicts, 0, len(args))
			for _, a := range args {
				v, err := certreport.Load(a)
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
			if o.html == "" && o.md == "" {
				if len(args) > 1 || strings.HasSuffix(args[0], ".json") {
					return errors.New("give --html and/or --markdown for the output")
				}
				o.html, o.md = filepath.Join(args[0], reportHTML), filepath.Join(args[0], reportMD)
			}
			out := cmd.OutOrStdout()
			if err := writeTo(out, o.html, func(w io.Writer) error { return certreport.HTML(w, vs) }); err != nil {
				return err
			}
			return writeTo(out, o.md, func(w io.Writer) error { return certreport.Markdown(w, vs) })
		},
	}
	cmd.Flags().StringVar(&o.html, "html", "", "HTML file to write (- for stdout; default BUNDLE/report.html for one bundle)")
	cmd.Flags().StringVar(&o.md, "markdown", "", "Markdown file to write (- for stdout; default BUNDLE/report.md for one bundle)")
	return cmd
}

// planFlags are the planning inputs shared by `report plan` and `report load`.
type planFlags struct {
	users, bhca, share, headroom float64
	hold                         time.Duration
}

func (p *planFlags) register(cmd *cobra.Command) {
	d := loadreport.DefaultInputs()
	f := cmd.Flags()
	f.Float64Var(&p.users, "users", d.Users, "user population")
	f.Float64Var(&p.bhca, "bhca", d.BHCA, "busy-hour call attempts per user")
	f.DurationVar(&p.hold, "hold", d.Hold, "mean call duration (holding time)")
	f.Float64Var(&p.share, "registered-share", d.RegisteredShare, "share of users registered (connected) in the busy hour, 0..1 (60% also accepted as 60)")
	f.Float64Var(&p.headroom, "headroom", d.Headroom, "factor >= 1 the load is multiplied by before sizing (1.5 = 50% spare)")
}

func (p *planFlags) inputs() plan.Inputs {
	share := p.share
	if share > 1 && share <= 100 {
		share /= 100 // --registered-share 60 means 60%
	}
	return plan.Inputs{Users: p.users, BHCA: p.bhca, Hold: p.hold, RegisteredShare: share, Headroom: p.headroom}
}

func newReportLoadCmd() *cobra.Command {
	var o outputs
	var pf planFlags
	cmd := &cobra.Command{
		Use:   "load DIR...",
		Short: "Load or capacity report (HTML + JSON) of results directories",
		Long: `Render load results (loadgen/README.md): one results directory; several directories that
are shards of one run (merged exactly in memory, as report merge does on disk); or a capacity
search directory (capacity.json: the curve with the knee, and the knee step in detail).
Defaults write DIR/report.html and DIR/report.json for one directory. The planning flags set
the calculator's starting population (editable in the HTML).`,
		Example: `  rtcomm-harness report load results/run1
  rtcomm-harness report load results/capacity --users 250000 --bhca 0.8 --hold 3m
  rtcomm-harness report load --html merged.html shard0/ shard1/ shard2/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.html == "" && o.json == "" {
				if len(args) > 1 {
					return errors.New("several directories: give --html and/or --json (or merge them with report merge)")
				}
				o.html, o.json = filepath.Join(args[0], reportHTML), filepath.Join(args[0], reportJSON)
			}
			r, err := loadreport.Build(args, loadreport.Options{Plan: pf.inputs()})
			if err != nil {
				return err
			}
			return writeLoadOutputs(cmd.OutOrStdout(), r, o)
		},
	}
	cmd.Flags().StringVar(&o.html, "html", "", "HTML file to write (- for stdout; default DIR/report.html)")
	cmd.Flags().StringVar(&o.json, "json", "", "JSON file to write (- for stdout; default DIR/report.json)")
	pf.register(cmd)
	return cmd
}

func writeLoadOutputs(out io.Writer, r *loadreport.Report, o outputs) error {
	if err := writeTo(out, o.html, r.HTML); err != nil {
		return err
	}
	return writeTo(out, o.json, r.JSON)
}

func newReportMergeCmd() *cobra.Command {
	var shards int
	cmd := &cobra.Command{
		Use:   "merge OUT DIR...",
		Short: "Merge shard results directories exactly into OUT, then write its report",
		Long: `Merge the results directories of the shards of one run into OUT (results.MergeDir):
histograms merged value for value, counters added, intervals interleaved in time order. Refuses
the same shard twice, shards of different counts and re-merging a merge. Then writes
OUT/report.html and OUT/report.json, with one row per shard (start offset, rates, errors, lost
messages, late starts, validity).

A DIR with * ? or [ is a pattern the command expands itself (the container image has no
shell). --shards N refuses a merge that is not exactly shards 0/N .. N-1/N.`,
		Example: `  rtcomm-harness report merge results/all results/shard-0 results/shard-1 results/shard-2
  rtcomm-harness report merge --shards 3 /results/run1/merged '/results/run1/shard-*'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			dirs, err := expandDirs(args[1:])
			if err != nil {
				return err
			}
			if shards > 0 {
				pre, err := results.Merge(dirs...)
				if err != nil {
					return err
				}
				if err := completeShards(pre.Shards, shards); err != nil {
					return err
				}
			}
			sum, err := results.MergeDir(args[0], dirs...)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "merged %d results directories into %s: %d call attempts, %.1f/s achieved\n",
				len(dirs), args[0], sum.Tally.Attempts, sum.AchievedRate)
			for _, r := range sum.ShardRuns {
				fmt.Fprintf(out, "  shard %-6s start %+8.1f ms  %6.1f/s of %g/s  %d attempts, %d errors, %d lost, %d late starts\n",
					r.Shard, r.StartOffsetMS, r.AchievedRate, r.IntendedRate, r.Attempts, r.Errors, r.Lost, r.LateStarts)
			}
			for _, w := range sum.Warnings {
				fmt.Fprintf(out, "  warning: %s\n", w)
			}
			for _, x := range sum.Invalid {
				fmt.Fprintf(out, "  INVALID: %s\n", x)
			}
			r, err := loadreport.Build(args[:1], loadreport.Options{})
			if err != nil {
				return err
			}
			return writeLoadOutputs(out, r, outputs{html: filepath.Join(args[0], reportHTML), json: filepath.Join(args[0], reportJSON)})
		},
	}
	cmd.Flags().IntVar(&shards, "shards", 0, "require exactly the shards 0/N .. N-1/N (0: merge what is given)")
	return cmd
}

// expandDirs expands the arguments that are patterns (filepath.Glob), in order.
func expandDirs(args []string) ([]string, error) {
	var dirs []string
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			dirs = append(dirs, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", a, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("no results directories match %q", a)
		}
		dirs = append(dirs, m...)
	}
	return dirs, nil
}

// completeShards checks that labels are exactly the shards 0/n .. n-1/n.
func completeShards(labels []string, n int) error {
	have := map[string]bool{}
	for _, l := range labels {
		have[l] = true
	}
	var missing []string
	for i := range n {
		if l := fmt.Sprintf("%d/%d", i, n); !have[l] {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 || len(labels) != n {
		return fmt.Errorf("--shards %d: have %v, missing %v: the merge would cover part of the run", n, labels, missing)
	}
	return nil
}

func newReportPlanCmd() *cobra.Command {
	var pf planFlags
	var caps []string
	var override plan.Capacity
	var asJSON bool
	var html string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Capacity-planning calculator: load of a user population and the instances it needs",
		Long: `Work out what a user population asks of a deployment in its busy hour:

  session establishment rate = users x BHCA / 3600            (calls/s)
  concurrent sessions        = rate x mean call duration      (Little's law, L = lambda W)
  connections                = users x registered share       (one MQTT connection per registered endpoint)

each multiplied by --headroom for sizing; then, against the measured capacity of one instance,
connector instances = ceil(design rate / connector calls/s) and broker instances = the larger
of ceil(design rate / broker calls/s) and ceil(design connections / broker connections).

--capacity takes capacity search directories (capacity.json; mode calls gives calls/s, mode
endpoints connections per broker, mode registrations registrations/s) or a results directory
of a run that met its SLO (its achieved rate: a lower bound). A search loads one connector
with one broker, so its rate is used for both unless --connector-rate/--broker-rate say
otherwise.`,
		Example: `  rtcomm-harness report plan --users 200000 --bhca 0.8 --hold 3m --registered-share 0.6 --headroom 1.5 --capacity results/capacity
  rtcomm-harness report plan --users 50000 --bhca 2 --hold 90s --registered-share 0.4 --headroom 2 --connector-rate 400 --broker-connections 20000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadreport.CapacityFrom(caps)
			if err != nil {
				return err
			}
			if override.ConnectorRate > 0 {
				c.ConnectorRate = override.ConnectorRate
				c.Sources = append(c.Sources, fmt.Sprintf("--connector-rate %g", override.ConnectorRate))
			}
			if override.BrokerRate > 0 {
				c.BrokerRate = override.BrokerRate
				c.Sources = append(c.Sources, fmt.Sprintf("--broker-rate %g", override.BrokerRate))
			}
			if override.Connections > 0 {
				c.Connections = override.Connections
				c.Sources = append(c.Sources, fmt.Sprintf("--broker-connections %g", override.Connections))
			}
			if override.RegistrationRate > 0 {
				c.RegistrationRate = override.RegistrationRate
				c.Sources = append(c.Sources, fmt.Sprintf("--registration-rate %g", override.RegistrationRate))
			}
			r, err := plan.Compute(pf.inputs(), c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if html != "" {
				err := writeTo(out, html, func(w io.Writer) error {
					form, err := plan.HTML(r)
					if err != nil {
						return err
					}
					return reports.Page{Title: "Capacity planning", Subtitle: "Rtcomm deployment sizing", Body: form, Script: plan.Script}.Write(w)
				})
				if err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			_, err = io.WriteString(out, plan.Text(r))
			return err
		},
	}
	pf.register(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&caps, "capacity", nil, "capacity search or results directory with the measured capacity (repeatable)")
	f.Float64Var(&override.ConnectorRate, "connector-rate", 0, "calls/s one connector instance sustains (overrides --capacity)")
	f.Float64Var(&override.BrokerRate, "broker-rate", 0, "calls/s one broker instance sustains (overrides --capacity)")
	f.Float64Var(&override.Connections, "broker-connections", 0, "registered endpoints (MQTT connections) one broker holds (overrides --capacity)")
	f.Float64Var(&override.RegistrationRate, "registration-rate", 0, "registrations/s one broker absorbs (overrides --capacity)")
	f.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	f.StringVar(&html, "html", "", "also write the calculator as a self-contained HTML page")
	return cmd
}

// writeTo renders into path ("-" stdout, "" nothing), atomically for files, and says where.
func writeTo(out io.Writer, path string, render func(io.Writer) error) error {
	switch path {
	case "":
		return nil
	case "-":
		return render(out)
	}
	var b bytes.Buffer
	if err := render(&b); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(out, "report: %s\n", path)
	return nil
}

// writeCertReport writes report.html and report.md into a certification bundle and prints
// where they are. A report that cannot be written is logged, never a certification failure:
// the verdicts are in the bundle either way.
func writeCertReport(out io.Writer, dir string, v *scenarios.Verdicts, log *slog.Logger) {
	vs := []*scenarios.Verdicts{v}
	err := errors.Join(
		writeTo(out, filepath.Join(dir, reportHTML), func(w io.Writer) error { return certreport.HTML(w, vs) }),
		writeTo(out, filepath.Join(dir, reportMD), func(w io.Writer) error { return certreport.Markdown(w, vs) }))
	if err != nil {
		log.Warn("certification report not written", "dir", dir, "err", err)
	}
}

// writeLoadReport writes report.html and report.json into a results (or capacity)
// directory and prints where they are; for `load` and `capacity` to call when they finish.
// A report that cannot be written is logged, never a failure of the run.
func writeLoadReport(out io.Writer, dir string, log *slog.Logger) {
	r, err := loadreport.Build([]string{dir}, loadreport.Options{})
	if err == nil {
		err = writeLoadOutputs(out, r, outputs{html: filepath.Join(dir, reportHTML), json: filepath.Join(dir, reportJSON)})
	}
	if err != nil {
		log.Warn("load report not written", "dir", dir, "err", err)
	}
}
