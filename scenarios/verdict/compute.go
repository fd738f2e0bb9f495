package verdict

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// State is how a scenario ended.
type State string

// Scenario states.
const (
	StatePassed      State = "passed"
	StateFailed      State = "failed" // a check failed, or the scenario stopped on an error
	StateTimedOut    State = "timedout"
	StateInterrupted State = "interrupted" // Ctrl-C, suite timeout: says nothing about the target
	StateSkipped     State = "skipped"     // skipped itself: not claimed / not applicable (Skip says which)
	StateNotRun      State = "not-run"     // filtered out, pending
)

// Scenario is what one scenario of a run said: the input of Compute.
type Scenario struct {
	Name string
	// Labels are the requirement IDs the scenario names.
	Labels   []string
	State    State
	Findings []Finding
	// Failure is the scenario's failure message; FailureKind says what kind of failure it
	// was when no check recorded a violation (KindHarness, KindTimeout or KindError).
	Failure     string
	FailureKind string
	Location    string
	Trace       []TraceEvent
	// Skip is NotClaimed or NotApplicable for a scenario that skipped itself, with why.
	Skip    Verdict
	SkipWhy string
}

// Run is one run of the suite against a target.
type Run struct {
	Target        Target
	Start         time.Time
	Duration      time.Duration
	Scenarios     []Scenario
	Filter        string // label filter / focus ("" for a full run)
	Interrupted   bool
	SuiteFailures []string
}

// evidence is what one scenario says about one requirement.
type evidence struct {
	name      string
	passes    int // checks that passed
	fail      []FailureEvidence
	unchecked bool // the scenario ran and names it, but recorded no check against it
	skip      Verdict
	skipWhy   string
	notRun    bool
}

// Compute judges every requirement of cat from the checks the scenarios recorded. A
// requirement passes only if at least one check recorded against it passed and none failed;
// a requirement that scenarios name but never check is not tested.
func Compute(r Run, cat []spec.Requirement) *Verdicts {
	v := &Verdicts{
		Format: Format, CatalogVersion: spec.CatalogVersion, RunDate: r.Start.UTC(),
		Duration: r.Duration.Round(time.Millisecond).String(), Target: r.Target,
		Filter: r.Filter, Interrupted: r.Interrupted, SuiteFailures: r.SuiteFailures,
	}
	known := map[string]bool{}
	for _, c := range cat {
		known[c.ID] = true
	}
	byReq := map[string][]evidence{}
	unknown := map[string]bool{}
	complete := r.Filter == "" && !r.Interrupted
	for _, sc := range r.Scenarios {
		v.Summary.Scenarios++
		switch sc.State {
		case StateNotRun:
			complete = false
		case StateSkipped:
		default:
			v.Summary.ScenariosRun++
		}
		if sc.FailureKind == KindHarness && sc.State != StatePassed {
			v.HarnessErrors = append(v.HarnessErrors, sc.Name+": "+sc.Failure)
		}
		for id, ev := range scenarioEvidence(sc) {
			if !known[id] {
				unknown[id] = true
			}
			byReq[id] = append(byReq[id], ev)
		}
	}
	v.Complete = complete
	for id := range unknown {
		v.Unknown = append(v.Unknown, id)
	}
	sort.Strings(v.Unknown)

	for _, c := range cat {
		rv := RequirementVerdict{ID: c.ID, Area: c.Area, Level: string(c.Level), Text: c.Text, Source: c.Source,
			Subject: c.Subject, Feature: c.Feature}
		evs := byReq[c.ID]
		for _, ev := range evs {
			rv.Specs = append(rv.Specs, ev.name)
			if ev.unchecked {
				rv.Unchecked = append(rv.Unchecked, ev.name)
			}
		}
		rv.Verdict, rv.Reason = judge(c, r.Target, evs)
		switch rv.Verdict {
		case Fail:
			for _, ev := range evs {
				rv.Failures = append(rv.Failures, ev.fail...)
			}
		case Pass:
			for _, ev := range evs {
				rv.Checks += ev.passes
			}
		}
		v.Requirements = append(v.Requirements, rv)
	}
	v.Recount()
	v.Certified = v.Summary.MustFailures == 0 && len(v.SuiteFailures) == 0 && len(v.HarnessErrors) == 0 &&
		v.Complete && v.Summary.ScenariosRun > 0
	return v
}

// Recount recounts the summary's requirement counts from v.Requirements (the scenario counts
// stay): for a caller that changed verdicts after Compute, as the passive checker does for
// the requirements on endpoints.
func (v *Verdicts) Recount() {
	s := Summary{Scenarios: v.Summary.Scenarios, ScenariosRun: v.Summary.ScenariosRun}
	for _, rv := range v.Requirements {
		s.add(rv.Verdict, rv.Level == string(spec.Must))
	}
	v.Summary = s
}

func (s *Summary) add(verdict Verdict, must bool) {
	s.Total++
	switch verdict {
	case Pass:
		s.Pass++
	case Fail:
		s.Fail++
		if must {
			s.MustFailures++
		}
	case NotClaimed:
		s.NotClaimed++
	case NotApplicable:
		s.NotApplicable++
	case NotTested:
		s.NotTested++
	}
}

// scenarioEvidence is what one scenario says about each requirement it names or checked.
func scenarioEvidence(sc Scenario) map[string]evidence {
	labelled := slices.Clone(sc.Labels)
	sort.Strings(labelled)
	labelled = slices.Compact(labelled)
	ids := slices.Clone(labelled)
	attributed := false // a check recorded a violation: the scenario's failure is that violation
	for _, f := range sc.Findings {
		if !slices.Contains(ids, f.Req) {
			ids = append(ids, f.Req)
		}
		if f.Outcome == OutcomeFail {
			attributed = true
		}
	}
	ran := sc.State == StatePassed || sc.State == StateFailed || sc.State == StateTimedOut
	failedUnattributed := (sc.State == StateFailed || sc.State == StateTimedOut) && !attributed
	out := map[string]evidence{}
	for _, id := range ids {
		ev := evidence{name: sc.Name}
		for _, f := range sc.Findings {
			if f.Req != id {
				continue
			}
			switch f.Outcome {
			case OutcomePass:
				ev.passes++
			case OutcomeFail:
				ev.fail = append(ev.fail, FailureEvidence{Scenario: sc.Name, Kind: KindViolation, Expected: f.Expected,
					Actual: f.Actual, Location: sc.Location, Trace: sc.Trace})
			}
		}
		isLabel := slices.Contains(labelled, id)
		switch {
		case len(ev.fail) > 0 || ev.passes > 0:
		case failedUnattributed && isLabel:
			// The scenario stopped before any check judged this requirement (harness error,
			// timeout, unexpected error): it could not be shown to hold.
			kind := sc.FailureKind
			if sc.State == StateTimedOut {
				kind = KindTimeout
			}
			if kind == "" {
				kind = KindError
			}
			ev.fail = append(ev.fail, FailureEvidence{Scenario: sc.Name, Kind: kind,
				Actual: "scenario failed before a check judged it: " + sc.Failure, Location: sc.Location, Trace: sc.Trace})
		case !isLabel:
			continue // named by nothing but a framework check that did not speak here
		case ran:
			ev.unchecked = true
		case sc.State == StateSkipped && sc.Skip != "":
			ev.skip, ev.skipWhy = sc.Skip, sc.SkipWhy
		default:
			ev.notRun = true
		}
		out[id] = ev
	}
	return out
}

// judge aggregates one requirement's evidence: any failure fails it; otherwise one passed
// check passes it; otherwise the skip reasons decide, and the rest is not tested.
func judge(c spec.Requirement, t Target, evs []evidence) (Verdict, string) {
	if len(c.Profiles) > 0 && !c.InProfile(t.Profile) {
		ps := make([]string, len(c.Profiles))
		for i, p := range c.Profiles {
			ps[i] = string(p)
		}
		return NotApplicable, fmt.Sprintf("applies to profile %s; the target is held to %s", strings.Join(ps, ", "), t.Profile)
	}
	if !c.AppliesTo(spec.SubjectBroker) && !c.AppliesTo(spec.SubjectConnector) {
		why := "a requirement on endpoints (" + c.Subject + "), not on a broker or connector"
		if len(evs) > 0 {
			why += "; the harness's endpoints follow it and the target was shown to accept what they send"
		}
		return NotApplicable, why
	}
	if !t.Claims(c.Feature) {
		return NotClaimed, fmt.Sprintf("optional feature %q is not claimed by the target", c.Feature)
	}
	var passes, fails, unchecked int
	var nc, na bool
	var ncWhy, naWhy string
	for _, ev := range evs {
		switch {
		case len(ev.fail) > 0:
			fails++
		case ev.passes > 0:
			passes++
		case ev.unchecked:
			unchecked++
		case ev.skip == NotClaimed:
			nc, ncWhy = true, ev.skipWhy
		case ev.skip == NotApplicable:
			na, naWhy = true, ev.skipWhy
		}
	}
	switch {
	case fails > 0:
		return Fail, fmt.Sprintf("%d of %d scenarios found a violation", fails, len(evs))
	case passes > 0:
		return Pass, ""
	case nc:
		return NotClaimed, ncWhy
	case na:
		return NotApplicable, naWhy
	case c.Untestable != "":
		return NotTested, c.Untestable
	case unchecked > 0:
		return NotTested, fmt.Sprintf("named by %d scenario(s) that ran, but no check recorded against it", unchecked)
	case len(evs) == 0:
		return NotTested, "no scenario checks this requirement"
	}
	return NotTested, "its scenarios did not run (label filter, focus or interruption)"
}
