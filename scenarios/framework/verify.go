package framework

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads best unqualified
	"github.com/onsi/ginkgo/v2/types"
	gomegatypes "github.com/onsi/gomega/types"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

// Report entry names the verdict computation reads back from the Ginkgo report.
const (
	// EntryFinding carries one Finding: a requirement checked, with its outcome.
	EntryFinding = "rtcomm.finding"
	// EntryTrace carries the message trace of a failed scenario ([]TraceEvent).
	EntryTrace = "rtcomm.trace"
	// EntryNotClaimed/EntryNotApplicable mark why a scenario was skipped.
	skipNotClaimed    = "[not claimed]"
	skipNotApplicable = "[not applicable]"
)

// Outcome of one check.
const (
	OutcomePass = verdict.OutcomePass
	OutcomeFail = verdict.OutcomeFail
)

// Finding is one requirement checked by a scenario: what was expected and what the target did.
type Finding = verdict.Finding

// Pass records that the target met requirement req in this scenario.
func Pass(req string) {
	GinkgoHelper()
	mustName(req)
	AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever, Offset(1))
}

// Violate records that the target broke req and fails the scenario now.
func Violate(req, expected string, actualFormat string, args ...any) {
	GinkgoHelper()
	mustName(req)
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String())
}

// Check passes req when ok, otherwise records the violation and fails the scenario.
func Check(req string, ok bool, expected string, actualFormat string, args ...any) {
	GinkgoHelper()
	mustName(req)
	if ok {
		AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever, Offset(1))
		return
	}
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String())
}

// That checks actual with a Gomega matcher for requirement req: a pass, or a violation whose
// Expected is what the requirement asks (expected, in our words) and whose Actual is the
// matcher's own account of the difference. A matcher that cannot judge actual (e.g. MatchJSON
// on a payload that is not JSON) fails the requirement, as Gomega's Expect would: the value
// came from the target.
func That(req string, actual any, matcher gomegatypes.GomegaMatcher, expected string) {
	GinkgoHelper()
	mustName(req)
	ok, err := matcher.Match(actual)
	if ok && err == nil {
		AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever, Offset(1))
		return
	}
	why := "cannot be checked: " + fmt.Sprint(err)
	if err == nil {
		why = matcher.FailureMessage(actual)
	}
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: oneLine(why, maxMatcherMessage)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String())
}

// Precondition records that the target broke req in a step the scenario needs before it
// can judge what it names (the call reaches the callee, the query is answered), and fails
// the scenario. It is the one recording that may name a requirement the scenario is not
// labelled with: it never passes anything, it only attributes a stop to the requirement the
// target broke, instead of a bare timeout.
func Precondition(req, expected string, actualFormat string, args ...any) {
	GinkgoHelper()
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String())
}

// mustName fails the scenario with a harness error when it is not labelled with req: a
// check may only speak for a requirement its scenario names (Req(...)), so that coverage,
// filters and the catalogue's scenario lists tell the truth (Kubernetes' framework rejects
// such specs the same way). Every check and expectation helper calls it before it waits, so
// a mislabelled scenario fails on its first run, whatever the target does.
func mustName(req string) {
	GinkgoHelper()
	if !slices.Contains(CurrentSpecReport().Labels(), req) {
		Fail(fmt.Sprintf("%s error: this scenario checks %s but does not name it: add %q to its Req(...) labels", harnessErrorPrefix, req, req))
	}
}

// maxMatcherMessage bounds the Actual of a matcher failure: MatchJSON prints both documents
// in full, and an SDP offer is several kilobytes.
const maxMatcherMessage = 800

// oneLine folds a Gomega failure message (indented, multi-line) into one line of at most
// limit bytes for verdicts.
func oneLine(msg string, limit int) string {
	s := strings.TrimSpace(lineBreaks.ReplaceAllString(msg, " "))
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + " …"
	}
	return s
}

var lineBreaks = regexp.MustCompile(`\s*\n\s*`)

// frameworkPass records a pass of a check the framework runs in every scenario (the
// retained-state check), which therefore names no scenario's label.
func frameworkPass(req string) {
	AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever)
}

// softViolation records a violation without stopping the scenario; the scenario is failed at
// teardown (used for format violations found on messages in flight, by the framework's
// validator on every message, whatever the scenario names).
func softViolation(f Finding) {
	f.Outcome = OutcomeFail
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever)
}

// Harness fails the scenario for a reason that is not a verdict on one requirement (the
// harness could not do its part, e.g. connect). Every requirement the scenario names fails
// with this as the actual outcome: it could not be shown to hold.
func Harness(err error, what string) {
	if err != nil {
		if !strings.HasPrefix(what, harnessErrorPrefix) {
			what = harnessErrorPrefix + ": " + what
		}
		Fail(fmt.Sprintf("%s: %v", what, err), 1)
	}
}

// NotClaimed skips the scenario because the target does not claim feature f.
func NotClaimed(f Feature) {
	Skip(fmt.Sprintf("%s feature %q is not claimed by the target", skipNotClaimed, f), 1)
}

// NotApplicable skips the scenario: the requirement does not apply to this target.
func NotApplicable(why string) {
	Skip(skipNotApplicable+" "+why, 1)
}

// findings decodes the Finding entries of a spec report (in-process or from JSON).
func findings(sr types.SpecReport) []Finding {
	var out []Finding
	for _, e := range sr.ReportEntries {
		if e.Name != EntryFinding {
			continue
		}
		if f, ok := e.Value.GetRawValue().(Finding); ok {
			out = append(out, f)
			continue
		}
		var f Finding
		if decodeEntry(e, &f) == nil && f.Req != "" {
			out = append(out, f)
		}
	}
	return out
}

// traceOf decodes the trace entry of a spec report, if any.
func traceOf(sr types.SpecReport) []TraceEvent {
	for _, e := range sr.ReportEntries {
		if e.Name != EntryTrace {
			continue
		}
		if t, ok := e.Value.GetRawValue().(TraceLog); ok {
			return t
		}
		var t []TraceEvent
		if decodeEntry(e, &t) == nil {
			return t
		}
	}
	return nil
}

// decodeEntry reads an entry value through its JSON form, which is all that survives
// aggregation across parallel processes.
func decodeEntry(e types.ReportEntry, dst any) error {
	b, err := json.Marshal(e.Value)
	if err != nil {
		return err
	}
	var wrapped struct{ AsJSON string }
	if err := json.Unmarshal(b, &wrapped); err != nil {
		return err
	}
	if wrapped.AsJSON == "" {
		return fmt.Errorf("entry %s has no JSON value", e.Name)
	}
	return json.NewDecoder(strings.NewReader(wrapped.AsJSON)).Decode(dst)
}
