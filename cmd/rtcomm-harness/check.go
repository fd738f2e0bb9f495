package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Exit status of check (as load): 0 within the SLO, 1 breached, 2 the harness failed.
const (
	exitCheckBreached = 1
	exitCheckHarness  = 2
)

type checkOptions struct {
	brokerURL, topicPath, username, password string
	tlsCA                                    string
	profile, participant, out, sloSpec, name string
	duration                                 time.Duration
}

func newCheckCmd(g *globalFlags) *cobra.Command {
	o := checkOptions{topicPath: spec.DefaultTopicPath, profile: string(spec.ProfileClient), sloSpec: "violations<=0"}
	cmd := &cobra.Command{
		Use:   "check --broker URL",
		Short: "Watch live rtcomm traffic and judge every publish against the catalog (passive)",
		Long: `check subscribes to <topic path># on a broker, judges every publish it receives against
the requirement catalog (the single-message rules of the chosen profile, and the rules that
relate messages: replies echo their request's transID and reach its fromTopic, relays equal
their original apart from fromTopic, no MESSAGE relayed outside a session, SERVICE_QUERY
answered once within 5 s) and blames each finding on the participant that sent the message
(the sender ID the topic ends in; "connector" for what carries the connector's fromTopic).

It runs for --duration, or until Ctrl-C, then writes a verdict bundle in certify's format
(verdicts.json, junit.xml, report.html, report.md) plus findings.json and trace.jsonl.
A passive check never certifies: a requirement passes only where a cross-message check ran
and held; single-message rules report violations only, so the rest is "not tested".
A subscription sees only what the broker delivers to it (docs/CHECK.md); for the whole
picture, with the client that sent each message, run 'serve --check' instead.

Exit status: 0 within --slo; 1 --slo breached; 2 the harness failed.`,
		Example: `  rtcomm-harness check --broker tcp://127.0.0.1:1883 --duration 60s --out results/check
  rtcomm-harness check --broker ssl://mq:8883 --username monitor --password s3cret --participant alice`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return &exitError{code: exitCheckHarness, err: err}
			}
			return runCheck(cmd.Context(), o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokerURL, "broker", "", "broker URL (tcp://, ssl://, ws://, wss://) to watch (required)")
	addTopicPathFlag(f, &o.topicPath)
	f.StringVar(&o.username, "username", "", "MQTT username of the checker (a monitor user allowed to subscribe to <topic path>#)")
	f.StringVar(&o.password, "password", "", "MQTT password")
	f.StringVar(&o.tlsCA, "tls-ca", "", "PEM file of the CA that signed the broker's certificate (ssl://, wss://); default the system roots")
	f.StringVar(&o.profile, "profile", o.profile, "requirement profile the traffic is held to: client or strict")
	f.StringVar(&o.participant, "participant", "", "judge only what this participant sends (endpoint ID, or \"connector\")")
	f.DurationVar(&o.duration, "duration", 0, "how long to watch (0: until Ctrl-C)")
	f.StringVar(&o.out, "out", "", "bundle directory (default results/check-<UTC time>)")
	f.StringVar(&o.sloSpec, "slo", o.sloSpec, "threshold on findings, 'violations<=N' (or <, >, >=); exit 1 when breached")
	f.StringVar(&o.name, "name", "", "name of the target in the report (default the broker URL)")
	return cmd
}

// violationsSLO is a parsed --slo of check: violations OP N.
type violationsSLO struct {
	op    string
	limit int
	text  string
}

var violationsRE = regexp.MustCompile(`^\s*violations\s*(<=|<|>=|>)\s*([0-9]+)\s*$`)

func parseViolationsSLO(s string) (*violationsSLO, error) {
	if s == "" {
		return nil, nil
	}
	m := violationsRE.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("%q: want violations<=N (or <, >, >=)", s)
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return &violationsSLO{op: m[1], limit: n, text: s}, nil
}

// holds reports whether n findings satisfy the threshold.
func (v *violationsSLO) holds(n int) bool {
	switch v.op {
	case "<":
		return n < v.limit
	case "<=":
		return n <= v.limit
	case ">":
		return n > v.limit
	default:
		return n >= v.limit
	}
}

func checkProfile(p string) (spec.Profile, error) {
	switch spec.Profile(p) {
	case spec.ProfileClient, spec.ProfileStrict:
		return spec.Profile(p), nil
	}
	return "", fmt.Errorf("--profile %q: want client or strict", p)
}

func runCheck(ctx context.Context, o checkOptions, out io.Writer, log *slog.Logger) error {
	invalid := func(err error) error { return &exitError{code: exitCheckHarness, err: err} }
	if o.brokerURL == "" {
		return invalid(errors.New("--broker URL is required (to check the embedded broker's own clients, run serve --check)"))
	}
	prof, err := checkProfile(o.profile)
	if err != nil {
		return invalid(err)
	}
	slo, err := parseViolationsSLO(o.sloSpec)
	if err != nil {
		return invalid(fmt.Errorf("--slo: %w", err))
	}
	if o.out == "" {
		o.out = filepath.Join("results", "check-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return invalid(fmt.Errorf("--out: %w", err))
	}
	trace, err := os.Create(filepath.Join(o.out, watch.TraceFile))
	if err != nil {
		return invalid(fmt.Errorf("trace: %w", err))
	}
	defer trace.Close()
	mo := mqttc.Options{BrokerURL: o.brokerURL, Username: o.username, Password: o.password,
		ClientID: "rtcomm-check-" + uuid.NewString()[:8], Logger: log}
	if o.tlsCA != "" {
		if mo.TLSConfig, err = caTLS(o.tlsCA); err != nil {
			return invalid(err)
		}
	}
	c := watch.New(watch.Config{TopicPath: o.topicPath, Profile: prof, Participant: o.participant, Trace: trace})
	cl, err := mqttc.Dial(ctx, mo)
	if err != nil {
		return invalid(fmt.Errorf("check %s: %w", o.brokerURL, err))
	}
	start := time.Now()
	filter := spec.NewTopics(o.topicPath).Path + "#"
	err = cl.Subscribe(ctx, filter, 0, func(m mqttc.Message) {
		for _, f := range c.Observe(watch.Observation{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, Time: time.Now()}) {
			logFinding(log, f)
		}
	})
	if err != nil {
		cl.Close()
		return invalid(fmt.Errorf("check: subscribe %s: %w", filter, err))
	}
	fmt.Fprintf(out, "checking %s (subscribed to %s, profile %s) -> %s\n", o.brokerURL, filter, prof, o.out)
	wait := ctx.Done()
	if o.duration > 0 {
		t := time.NewTimer(o.duration)
		defer t.Stop()
		select {
		case <-wait:
		case <-t.C:
		}
	} else {
		<-wait
	}
	cl.Close()
	for _, f := range c.Finish(time.Now()) {
		logFinding(log, f)
	}
	name := o.name
	if name == "" {
		name = o.brokerURL
	}
	t := verdict.Target{Name: name, Mode: "check", Profile: prof, TopicPath: o.topicPath,
		Broker:      verdict.Broker{TCP: o.brokerURL},
		Description: "passive check by subscription to " + filter}
	return finishCheck(out, o.out, c, t, start, slo, log)
}

// logFinding puts a live finding in the log.
func logFinding(log *slog.Logger, f watch.Finding) {
	log.Warn("protocol violation", "req", f.Requirement, "participant", f.Participant, "expected", f.Expected, "actual", f.Actual)
}

// finishCheck writes the bundle of a check (verdicts, JUnit, findings, certreport's HTML and
// Markdown), prints the summary, and judges --slo; for check and serve --check.
func finishCheck(out io.Writer, dir string, c *watch.Checker, t verdict.Target, start time.Time, slo *violationsSLO, log *slog.Logger) error {
	v := c.Verdicts(t, start, time.Now(), false)
	v.HarnessVersion = harnessVersion()
	if err := c.WriteBundle(dir, v); err != nil {
		return &exitError{code: exitCheckHarness, err: err}
	}
	writeCertReport(out, dir, v, log)
	fs := c.Findings()
	perWho := map[string]int{}
	for _, f := range fs {
		perWho[f.Participant]++
	}
	fmt.Fprintf(out, "checked %d publishes: %d finding(s), %d requirement(s) failed; bundle %s\n",
		c.Observed(), len(fs), v.Summary.Fail, dir)
	who := slices.Sorted(maps.Keys(perWho))
	for _, p := range who {
		fmt.Fprintf(out, "  %s: %d finding(s)\n", p, perWho[p])
	}
	if n := c.DroppedToConnectors(); n > 0 {
		// Only the hook learns of them; what the connector would have done with them is not judged.
		fmt.Fprintf(out, "  the broker dropped %d delivery(ies) to the connector (its queue was full): their relays, answers and registrations not judged\n", n)
	}
	if slo != nil && !slo.holds(len(fs)) {
		return &exitError{code: exitCheckBreached, err: fmt.Errorf("--slo %s breached: %d violation(s)", slo.text, len(fs))}
	}
	return nil
}
