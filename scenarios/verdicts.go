package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// VerdictsFormat names the version of the verdict file layout (scenarios/BUNDLE.md).
const VerdictsFormat = "rtcomm-harness/verdicts/v1"

// Verdict is the outcome for one requirement.
type Verdict string

// Verdicts.
const (
	VerdictPass          Verdict = "pass"
	VerdictFail          Verdict = "fail"
	VerdictNotClaimed    Verdict = "not-claimed"    // optional feature the target does not claim
	VerdictNotApplicable Verdict = "not-applicable" // e.g. a profile the target is not held to
	VerdictNotTested     Verdict = "not-tested"     // untestable (reason given) or no scenario ran
)

// AllVerdicts lists the verdicts in report order.
var AllVerdicts = []Verdict{VerdictPass, VerdictFail, VerdictNotClaimed, VerdictNotApplicable, VerdictNotTested}

// Verdicts is the verdict file of a certification bundle (verdicts.json).
type Verdicts struct {
	Format         string      `json:"format"`
	HarnessVersion string      `json:"harnessVersion"`
	CatalogVersion string      `json:"catalogVersion"`
	RunDate        time.Time   `json:"runDate"`
	Duration       string      `json:"duration"`
	Target         Declaration `json:"target"`
	// Certified: no claimed MUST requirement failed and the suite ran to the end.
	Certified bool `json:"certified"`
	// Complete: every scenario ran (no label filter, focus or interruption).
	Complete bool `json:"complete"`
	// Filter is the label filter / focus that narrowed the run ("" for a full run).
	Filter string `json:"filter,omitempty"`
	// Interrupted: the run was cut short (signal, suite timeout).
	Interrupted  bool                 `json:"interrupted,omitempty"`
	Summary      Summary              `json:"summary"`
	Requirements []RequirementVerdict `json:"requirements"`
	// Unknown lists requirement labels used by scenarios but absent from the catalog (a harness bug).
	Unknown []string `json:"unknown,omitempty"`
	// SuiteFailures are failures outside any scenario (e.g. suite set-up), verbatim.
	SuiteFailures []string `json:"suiteFailures,omitempty"`
}

// Summary counts requirements per verdict.
type Summary struct {
	Total         int `json:"total"`
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	NotClaimed    int `json:"notClaimed"`
	NotApplicable int `json:"notApplicable"`
	NotTested     int `json:"notTested"`
	// MustFailures counts failed MUST requirements: non-zero means not certified.
	MustFailures int `json:"mustFailures"`
	Scenarios    int `json:"scenarios"`
	ScenariosRun int `json:"scenariosRun"`
}

// RequirementVerdict is the verdict on one catalog requirement, with its evidence.
type RequirementVerdict struct {
	ID      string   `json:"id"`
	Area    string   `json:"area"`
	Level   string   `json:"level"`
	Text    string   `json:"text"`
	Source  string   `json:"source,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Feature string   `json:"feature,omitempty"`
	Verdict Verdict  `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
	Specs   []string `json:"scenarios,omitempty"` // full names of the scenarios that check it
	// Failures: what was expected and what the target did, with the message trace.
	Failures []FailureEvidence `json:"failures,omitempty"`
}

// FailureEvidence documents one failed check.
type FailureEvidence struct {
	Scenario string       `json:"scenario"`
	Expected string       `json:"expected,omitempty"`
	Actual   string       `json:"actual"`
	Location string       `json:"location,omitempty"`
	Trace    []TraceEvent `json:"trace,omitempty"`
}

// specEvidence is what one scenario says about one requirement.
type specEvidence struct {
	name     string
	pass     bool
	fail     []FailureEvidence
	skip     Verdict // not-claimed / not-applicable
	skipWhy  string
	notRun   bool
	runState types.SpecState
}

// ComputeVerdicts turns a Ginkgo report into per-requirement verdicts for a declaration.
func ComputeVerdicts(r types.Report, d Declaration, cat []CatalogEntry) *Verdicts {
	v := &Verdicts{
		Format: VerdictsFormat, CatalogVersion: catalogVersion(), RunDate: r.StartTime.UTC(),
		Duration: r.RunTime.Round(time.Millisecond).String(), Target: d.Redacted(), Complete: true,
	}
	known := map[string]bool{}
	for _, c := range cat {
		known[c.ID] = true
	}
	evidence := map[string][]specEvidence{}
	unknown := map[string]bool{}
	for _, sr := range r.SpecReports {
		if sr.LeafNodeType != types.NodeTypeIt {
			if sr.State.Is(types.SpecStateFailureStates) {
				v.SuiteFailures = append(v.SuiteFailures, fmt.Sprintf("%s %s: %s", sr.LeafNodeType, sr.LeafNodeText, sr.Failure.Message))
			}
			continue
		}
		v.Summary.Scenarios++
		labelled := requirementLabels(sr.Labels())
		fs := findings(sr)
		// A scenario speaks to the requirements it names and to any other requirement one
		// of its checks recorded (format violations, retained leaks).
		reqs := slices.Clone(labelled)
		for _, f := range fs {
			if !slices.Contains(reqs, f.Req) {
				reqs = append(reqs, f.Req)
			}
		}
		for _, id := range reqs {
			if !known[id] {
				unknown[id] = true
			}
		}
		name := sr.FullText()
		var trace []TraceEvent
		if sr.State.Is(types.SpecStateFailureStates) {
			trace = traceOf(sr)
		}
		skipV, skipWhy, filtered := classifySkip(sr)
		if !filtered && sr.State != types.SpecStateSkipped && sr.State != types.SpecStatePending {
			v.Summary.ScenariosRun++
		}
		if filtered {
			v.Complete = false
		}
		attributed := false
		for _, f := range fs {
			if f.Outcome == OutcomeFail {
				attributed = true
			}
		}
		for _, id := range reqs {
			ev := specEvidence{name: name, runState: sr.State}
			var passed, failed bool
			for _, f := range fs {
				if f.Req != id {
					continue
				}
				switch f.Outcome {
				case OutcomePass:
					passed = true
				case OutcomeFail:
					failed = true
					ev.fail = append(ev.fail, FailureEvidence{Scenario: name, Expected: f.Expected, Actual: f.Actual,
						Location: sr.Failure.Location.String(), Trace: trace})
				}
			}
			switch {
			case failed:
			case sr.State == types.SpecStatePassed:
				ev.pass = true
			case !slices.Contains(labelled, id) && !passed:
				// Named only by a check that did not fail here: no evidence either way.
				ev.notRun = true
			case sr.State == types.SpecStateInterrupted && !passed:
				// Stopped (Ctrl-C, suite timeout) before it judged this requirement: the run
				// is incomplete, which says nothing about the target.
				ev.notRun = true
			case sr.State.Is(types.SpecStateFailureStates) && !attributed && !passed:
				// The scenario failed before it could judge this requirement (no check
				// recorded a violation): the requirement could not be shown to hold.
				ev.fail = append(ev.fail, FailureEvidence{Scenario: name, Actual: "scenario failed: " + sr.Failure.Message,
					Location: sr.Failure.Location.String(), Trace: trace})
			case sr.State.Is(types.SpecStateFailureStates) && passed:
				ev.pass = true
			case skipV != "":
				ev.skip, ev.skipWhy = skipV, skipWhy
			default:
				ev.notRun = true
			}
			evidence[id] = append(evidence[id], ev)
		}
	}
	var filters []string
	if r.SuiteConfig.LabelFilter != "" {
		filters = append(filters, "labels: "+r.SuiteConfig.LabelFilter)
	}
	if len(r.SuiteConfig.FocusStrings) > 0 {
		filters = append(filters, "focus: "+strings.Join(r.SuiteConfig.FocusStrings, ", "))
	}
	v.Filter = strings.Join(filters, "; ")
	v.Interrupted = slices.ContainsFunc(r.SpecialSuiteFailureReasons, func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, "interrupt") || strings.Contains(s, "timeout") || strings.Contains(s, "timed out")
	})
	v.Complete = v.Complete && v.Filter == "" && !v.Interrupted
	for id := range unknown {
		v.Unknown = append(v.Unknown, id)
	}
	sort.Strings(v.Unknown)

	for _, c := range cat {
		rv := RequirementVerdict{ID: c.ID, Area: c.Area, Level: c.Level, Text: c.Text, Source: c.Source,
			Subject: c.Subject, Feature: c.Feature}
		evs := evidence[c.ID]
		for _, ev := range evs {
			rv.Specs = append(rv.Specs, ev.name)
		}
		rv.Verdict, rv.Reason = judge(c, d, evs)
		if rv.Verdict == VerdictFail {
			for _, ev := range evs {
				rv.Failures = append(rv.Failures, ev.fail...)
			}
		}
		v.Requirements = append(v.Requirements, rv)
		v.Summary.Total++
		switch rv.Verdict {
		case VerdictPass:
			v.Summary.Pass++
		case VerdictFail:
			v.Summary.Fail++
			if isMust(c.Level) {
				v.Summary.MustFailures++
			}
		case VerdictNotClaimed:
			v.Summary.NotClaimed++
		case VerdictNotApplicable:
			v.Summary.NotApplicable++
		case VerdictNotTested:
			v.Summary.NotTested++
		}
	}
	v.Certified = v.Summary.MustFailures == 0 && len(v.SuiteFailures) == 0 && v.Complete && v.Summary.ScenariosRun > 0
	return v
}

// judge aggregates one requirement's evidence: any failure fails it; otherwise one pass
// passes it; otherwise the skip reasons decide.
func judge(c CatalogEntry, d Declaration, evs []specEvidence) (Verdict, string) {
	if len(c.Profiles) > 0 && !slices.Contains(c.Profiles, string(d.Profile)) {
		return VerdictNotApplicable, fmt.Sprintf("applies to profile %s; the target is held to %s", strings.Join(c.Profiles, ", "), d.Profile)
	}
	if !appliesToTarget(c.Subject) {
		why := "a requirement on endpoints (" + c.Subject + "), not on a broker or connector"
		if len(evs) > 0 {
			why += "; the harness's endpoints follow it and the target was shown to accept what they send"
		}
		return VerdictNotApplicable, why
	}
	if c.Feature != "" && !d.Claims(Feature(c.Feature)) {
		return VerdictNotClaimed, fmt.Sprintf("optional feature %q is not claimed by the target", c.Feature)
	}
	var pass, nc, na bool
	var ncWhy, naWhy string
	fails := 0
	for _, ev := range evs {
		switch {
		case len(ev.fail) > 0:
			fails++
		case ev.pass:
			pass = true
		case ev.skip == VerdictNotClaimed:
			nc, ncWhy = true, ev.skipWhy
		case ev.skip == VerdictNotApplicable:
			na, naWhy = true, ev.skipWhy
		}
	}
	switch {
	case fails > 0:
		return VerdictFail, fmt.Sprintf("%d of %d scenarios found a violation", fails, len(evs))
	case pass:
		return VerdictPass, ""
	case nc:
		return VerdictNotClaimed, ncWhy
	case na:
		return VerdictNotApplicable, naWhy
	case c.Untestable != "":
		return VerdictNotTested, c.Untestable
	case len(evs) == 0:
		return VerdictNotTested, "no scenario checks this requirement"
	}
	return VerdictNotTested, "its scenarios did not run (label filter, focus or interruption)"
}

// classifySkip reads the marker a scenario skipped with.
func classifySkip(sr types.SpecReport) (Verdict, string, bool) {
	if sr.State != types.SpecStateSkipped {
		return "", "", sr.State == types.SpecStatePending
	}
	msg := sr.Failure.Message
	switch {
	case strings.HasPrefix(msg, skipNotClaimed):
		return VerdictNotClaimed, strings.TrimSpace(strings.TrimPrefix(msg, skipNotClaimed)), false
	case strings.HasPrefix(msg, skipNotApplicable):
		return VerdictNotApplicable, strings.TrimSpace(strings.TrimPrefix(msg, skipNotApplicable)), false
	}
	return "", "", msg == "" // no message: filtered out (focus, label filter, fail-fast)
}

// reqIDPattern is the shape of catalog IDs, e.g. "SESS-004".
var reqIDPattern = regexp.MustCompile(`^[A-Z]+-[0-9]{3}$`)

// requirementLabels keeps the labels that are requirement IDs (not "area:...", "Serial").
func requirementLabels(labels []string) []string {
	var out []string
	for _, l := range labels {
		if reqIDPattern.MatchString(l) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func isMust(level string) bool { return strings.EqualFold(strings.TrimSpace(level), "MUST") }

// WriteFile writes the verdicts as indented JSON.
func (v *Verdicts) WriteFile(path string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("verdicts: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadVerdicts reads a verdict file and checks its format.
func ReadVerdicts(path string) (*Verdicts, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	var v Verdicts
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("verdicts %s: %w", path, err)
	}
	if v.Format != VerdictsFormat {
		return nil, fmt.Errorf("verdicts %s: format %q, want %q", path, v.Format, VerdictsFormat)
	}
	return &v, nil
}

// Get returns the verdict on one requirement.
func (v *Verdicts) Get(id string) (RequirementVerdict, bool) {
	for _, r := range v.Requirements {
		if r.ID == id {
			return r, true
		}
	}
	return RequirementVerdict{}, false
}

// Failed lists the IDs of failed requirements.
func (v *Verdicts) Failed() []string {
	var out []string
	for _, r := range v.Requirements {
		if r.Verdict == VerdictFail {
			out = append(out, r.ID)
		}
	}
	return out
}
