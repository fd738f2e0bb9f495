package watch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Files of a check bundle besides certify's verdicts.json and junit.xml.
const (
	TraceFile    = "trace.jsonl"   // every observed publish, one JSON object a line
	FindingsFile = "findings.json" // every finding, with its participant
)

// maxEvidence bounds the failure records kept per requirement in the verdicts (all are in
// findings.json).
const maxEvidence = 50

// Filter is the verdicts' filter: a passive check judges only the traffic it saw, so it
// never claims a complete run (and never "certified"; see docs/CHECK.md).
const Filter = "passive check: only the observed traffic"

// Verdicts judges the catalog from what the checker saw between start and end: a
// requirement fails on a finding, passes only where a cross-message check ran and held, and
// is otherwise not tested (single-message rules report violations only, so silence is not a pass).
func (c *Checker) Verdicts(t verdict.Target, start, end time.Time, interrupted bool) *verdict.Verdicts {
	findings, passes := c.Findings(), c.Passes()
	run := verdict.Run{Target: t, Start: start, Duration: end.Sub(start), Filter: Filter, Interrupted: interrupted}
	perReq := map[string]int{}
	for _, f := range findings {
		if perReq[f.Requirement]++; perReq[f.Requirement] > maxEvidence {
			continue
		}
		run.Scenarios = append(run.Scenarios, verdict.Scenario{
			Name:   fmt.Sprintf("check %s: %s at %s", f.Participant, f.Requirement, f.Time.UTC().Format(time.RFC3339Nano)),
			Labels: []string{f.Requirement}, State: verdict.StateFailed, FailureKind: verdict.KindViolation,
			Findings: []verdict.Finding{{Req: f.Requirement, Outcome: verdict.OutcomeFail, Expected: f.Expected, Actual: f.Actual}},
			Trace:    traceOf(f.Evidence, start),
		})
	}
	var who []string
	for p := range passes {
		who = append(who, p)
	}
	sort.Strings(who)
	for _, p := range who {
		sc := verdict.Scenario{Name: "check " + p, State: verdict.StatePassed}
		for req, n := range passes[p] {
			sc.Labels = append(sc.Labels, req)
			for range n {
				sc.Findings = append(sc.Findings, verdict.Finding{Req: req, Outcome: verdict.OutcomePass})
			}
		}
		sort.Strings(sc.Labels)
		run.Scenarios = append(run.Scenarios, sc)
	}
	// The checker judges whatever traffic it sees, optional features included.
	t.Features = spec.Features()
	run.Target = t
	v := verdict.Compute(run, spec.Catalog())
	endpointVerdicts(v, run, c.Observed())
	return v
}

// endpointVerdicts judges the requirements on endpoints, which Compute leaves not
// applicable (certify judges brokers and connectors; here the clients are the subject):
// fail on a finding, otherwise not tested. Then it recounts the summary.
func endpointVerdicts(v *verdict.Verdicts, run verdict.Run, observed int) {
	failures := map[string][]verdict.FailureEvidence{}
	for _, sc := range run.Scenarios {
		for _, f := range sc.Findings {
			if f.Outcome == verdict.OutcomeFail {
				failures[f.Req] = append(failures[f.Req], verdict.FailureEvidence{Scenario: sc.Name, Kind: verdict.KindViolation,
					Expected: f.Expected, Actual: f.Actual, Trace: sc.Trace})
			}
		}
	}
	byID := map[string]spec.Requirement{}
	for _, r := range spec.Catalog() {
		byID[r.ID] = r
	}
	for i := range v.Requirements {
		rv := &v.Requirements[i]
		r := byID[rv.ID]
		if rv.Verdict == verdict.NotApplicable && r.InProfile(v.Target.Profile) &&
			!r.AppliesTo(spec.SubjectBroker) && !r.AppliesTo(spec.SubjectConnector) {
			if fs := failures[rv.ID]; len(fs) > 0 {
				rv.Verdict, rv.Failures = verdict.Fail, fs
				rv.Reason = fmt.Sprintf("%d violation(s) observed", len(fs))
			} else {
				rv.Verdict = verdict.NotTested
				rv.Reason = fmt.Sprintf("no violation in %d observed publishes; a passive check reports violations only", observed)
			}
		}
	}
	v.Recount()
	v.Certified = false // a passive check judges only what it saw (Filter says so)
}

func traceOf(obs []Observation, start time.Time) []verdict.TraceEvent {
	var out []verdict.TraceEvent
	for _, o := range obs {
		client := o.Client
		if client == "" {
			client = spec.Sender(o.Topic)
		}
		out = append(out, verdict.TraceEvent{At: o.Time.Sub(start).Round(time.Millisecond).String(), Dir: "pub",
			Client: client, Topic: o.Topic, Retained: o.Retained, Payload: short(o.Payload), Size: len(o.Payload)})
	}
	return out
}

// WriteBundle writes verdicts.json, junit.xml and findings.json into dir (the trace is
// written as the checker runs, by a TraceWriter).
func (c *Checker) WriteBundle(dir string, v *verdict.Verdicts) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("check bundle: %w", err)
	}
	b, err := json.MarshalIndent(c.Findings(), "", "  ")
	if err != nil {
		return fmt.Errorf("check bundle: %w", err)
	}
	return errors.Join(
		v.WriteFile(filepath.Join(dir, verdict.File)),
		v.WriteJUnit(filepath.Join(dir, "junit.xml")),
		os.WriteFile(filepath.Join(dir, FindingsFile), append(b, '\n'), 0o644))
}

// TraceWriter writes observations as JSON lines (the bundle's trace.jsonl).
type TraceWriter struct {
	enc *json.Encoder
}

// NewTraceWriter writes the trace to w.
func NewTraceWriter(w io.Writer) *TraceWriter { return &TraceWriter{enc: json.NewEncoder(w)} }

// traceLine is one line of trace.jsonl.
type traceLine struct {
	Time     time.Time       `json:"time"`
	Client   string          `json:"client,omitempty"`
	Topic    string          `json:"topic"`
	Retained bool            `json:"retained,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Text     string          `json:"text,omitempty"` // a payload that is not JSON
}

// Write records one observation; the caller serializes calls.
func (t *TraceWriter) Write(o Observation) error {
	l := traceLine{Time: o.Time.UTC(), Client: o.Client, Topic: o.Topic, Retained: o.Retained}
	if json.Valid(o.Payload) {
		l.Payload = o.Payload
	} else {
		l.Text = string(o.Payload)
	}
	return t.enc.Encode(l)
}
