package framework

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// The verdict model lives in package verdict (a leaf reports import without Ginkgo); these
// names keep the scenarios API as it was.
type (
	// Verdict is the outcome for one requirement.
	Verdict = verdict.Verdict
	// Verdicts is the verdict file of a certification bundle (verdicts.json).
	Verdicts = verdict.Verdicts
	// Summary counts requirements per verdict.
	Summary = verdict.Summary
	// RequirementVerdict is the verdict on one catalog requirement, with its evidence.
	RequirementVerdict = verdict.RequirementVerdict
	// FailureEvidence documents one failed check.
	FailureEvidence = verdict.FailureEvidence
)

// Verdicts, as in package verdict.
const (
	VerdictsFormat       = verdict.Format
	VerdictPass          = verdict.Pass
	VerdictFail          = verdict.Fail
	VerdictNotClaimed    = verdict.NotClaimed
	VerdictNotApplicable = verdict.NotApplicable
	VerdictNotTested     = verdict.NotTested
)

// ReadVerdicts reads a verdict file and checks its format.
func ReadVerdicts(path string) (*Verdicts, error) { return verdict.Read(path) }

// harnessErrorPrefix starts the failure message of a scenario the harness got wrong.
const harnessErrorPrefix = "harness"

// ComputeVerdicts turns a Ginkgo report into per-requirement verdicts for a declaration,
// against spec's catalog.
func ComputeVerdicts(r types.Report, d Declaration) *Verdicts {
	run := verdict.Run{Target: d.summary(), Start: r.StartTime, Duration: r.RunTime}
	for _, sr := range r.SpecReports {
		if sr.LeafNodeType != types.NodeTypeIt {
			if sr.State.Is(types.SpecStateFailureStates) {
				run.SuiteFailures = append(run.SuiteFailures, sr.LeafNodeType.String()+" "+sr.LeafNodeText+": "+sr.Failure.Message)
			}
			continue
		}
		run.Scenarios = append(run.Scenarios, scenarioOf(sr))
	}
	var filters []string
	if r.SuiteConfig.LabelFilter != "" {
		filters = append(filters, "labels: "+r.SuiteConfig.LabelFilter)
	}
	if len(r.SuiteConfig.FocusStrings) > 0 {
		filters = append(filters, "focus: "+strings.Join(r.SuiteConfig.FocusStrings, ", "))
	}
	run.Filter = strings.Join(filters, "; ")
	run.Interrupted = slices.ContainsFunc(r.SpecialSuiteFailureReasons, func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, "interrupt") || strings.Contains(s, "timeout") || strings.Contains(s, "timed out")
	})
	return verdict.Compute(run, spec.Catalog())
}

// scenarioOf reads one It's report.
func scenarioOf(sr types.SpecReport) verdict.Scenario {
	sc := verdict.Scenario{Name: sr.FullText(), Labels: requirementLabels(sr.Labels()), Findings: findings(sr)}
	switch {
	case sr.State == types.SpecStatePassed:
		sc.State = verdict.StatePassed
	case sr.State == types.SpecStateInterrupted:
		sc.State = verdict.StateInterrupted
	case sr.State == types.SpecStateTimedout:
		sc.State = verdict.StateTimedOut
	case sr.State.Is(types.SpecStateFailureStates):
		sc.State = verdict.StateFailed
	case sr.State == types.SpecStateSkipped:
		sc.Skip, sc.SkipWhy = classifySkip(sr.Failure.Message)
		sc.State = verdict.StateSkipped
		if sc.Skip == "" {
			sc.State = verdict.StateNotRun // no marker: filtered out (focus, label filter, fail-fast)
		}
	default:
		sc.State = verdict.StateNotRun
	}
	if sr.State.Is(types.SpecStateFailureStates) {
		sc.Failure = sr.Failure.Message
		sc.Location = sr.Failure.Location.String()
		sc.Trace = traceOf(sr)
		switch {
		case strings.HasPrefix(sc.Failure, harnessErrorPrefix):
			sc.FailureKind = verdict.KindHarness
		case sr.State == types.SpecStateTimedout:
			sc.FailureKind = verdict.KindTimeout
		default:
			sc.FailureKind = verdict.KindError
		}
	}
	return sc
}

// classifySkip reads the marker a scenario skipped with.
func classifySkip(msg string) (Verdict, string) {
	switch {
	case strings.HasPrefix(msg, skipNotClaimed):
		return VerdictNotClaimed, strings.TrimSpace(strings.TrimPrefix(msg, skipNotClaimed))
	case strings.HasPrefix(msg, skipNotApplicable):
		return VerdictNotApplicable, strings.TrimSpace(strings.TrimPrefix(msg, skipNotApplicable))
	}
	return "", ""
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
