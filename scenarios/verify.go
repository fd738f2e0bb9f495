package scenarios

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads best unqualified
	"github.com/onsi/ginkgo/v2/types"
	gomegatypes "github.com/onsi/gomega/types"
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
	OutcomePass = "pass"
	OutcomeFail = "fail"
)

// Finding is one requirement checked by a scenario: what was expected and what the target did.
type Finding struct {
	Req      string `json:"req"`
	Outcome  string `json:"outcome"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
}

// String renders the finding the way failures read (h2spec style).
func (f Finding) String() string {
	if f.Outcome == OutcomePass {
		return f.Req + ": pass"
	}
	return fmt.Sprintf("%s violated\nExpected: %s\nActual:   %s", f.Req, f.Expected, f.Actual)
}

// Pass records that the target met requirement req in this scenario.
func Pass(req string) {
	AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever, Offset(1))
}

// Violate records that the target broke req and fails the scenario now.
func Violate(req, expected string, actualFormat string, args ...any) {
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String(), 1)
}

// Check passes req when ok, otherwise records the violation and fails the scenario.
func Check(req string, ok bool, expected string, actualFormat string, args ...any) {
	if ok {
		AddReportEntry(EntryFinding, Finding{Req: req, Outcome: OutcomePass}, ReportEntryVisibilityNever, Offset(1))
		return
	}
	f := Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
	Fail(f.String(), 1)
}

// That checks actual with a Gomega matcher for requirement req: a pass, or a violation whose
// Expected is what the requirement asks (expected, in our words) and whose Actual is the
// matcher's own account of the difference. A matcher that cannot judge actual (e.g. MatchJSON
// on a payload that is not JSON) fails the requirement, as Gomega's Expect would: the value
// came from the target.
func That(req string, actual any, matcher gomegatypes.GomegaMatcher, expected string) {
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
	Fail(f.String(), 1)
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

// softViolation records a violation without stopping the scenario; the scenario is failed at
// teardown (used for format violations found on messages in flight).
func softViolation(f Finding) {
	f.Outcome = OutcomeFail
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever)
}

// Harness fails the scenario for a reason that is not a verdict on one requirement (the
// harness could not do its part, e.g. connect). Every requirement the scenario names fails
// with this as the actual outcome: it could not be shown to hold.
func Harness(err error, what string) {
	if err != nil {
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
