package certreport

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

// verdictsOf builds a bundle's verdicts from id -> verdict.
func verdictsOf(name string, notes map[string]string, vs map[string]verdict.Verdict) *verdict.Verdicts {
	v := &verdict.Verdicts{Format: verdict.Format, Target: verdict.Target{Name: name, Mode: "broker", Notes: notes}}
	for _, id := range []string{"BRK-001", "BRK-008", "BRK-009", "BRK-010", "REG-005", "SESS-002", "SESS-003", "QUE-002"} {
		vd, ok := vs[id]
		if !ok {
			vd = verdict.Pass
		}
		r := verdict.RequirementVerdict{ID: id, Level: "MUST", Text: id + " text", Verdict: vd}
		if vd == verdict.Fail {
			r.Failures = []verdict.FailureEvidence{{Scenario: "s", Expected: "e", Actual: "a"}}
		}
		v.Requirements = append(v.Requirements, r)
	}
	return v
}

func TestExplainBlamesFailedBrokerNeeds(t *testing.T) {
	t.Parallel()
	v := verdictsOf("b", map[string]string{"BRK-010": "no $share: vendor docs", "SESS-002": "see issue 1", "BRK-001": "stale"},
		map[string]verdict.Verdict{
			"BRK-010": verdict.Fail, "QUE-002": verdict.Fail,
			"SESS-002": verdict.Fail, "SESS-003": verdict.Fail,
		})
	if e := Explain(v, "QUE-002"); !slices.Equal(e.Blame, []string{"BRK-010"}) || e.BlameText() != "broker lacks BRK-010 (shared subscriptions)" {
		t.Errorf("QUE-002: expected blame on BRK-010, actual %v %q", e.Blame, e.BlameText())
	}
	if e := Explain(v, "BRK-010"); len(e.Blame) != 0 || !e.Broker || e.BlameText() != "the broker itself" || e.Note == "" {
		t.Errorf("BRK-010: expected the broker itself with its note, actual %+v", e)
	}
	if e := Explain(v, "SESS-002"); len(e.Blame) != 0 || e.Note != "see issue 1" || !e.Explained() {
		t.Errorf("SESS-002: expected no blame (BRK-001 passed) and the note, actual %+v", e)
	}
	if got := Unexplained(v); !slices.Equal(got, []string{"SESS-003"}) {
		t.Errorf("unexplained: expected [SESS-003], actual %v", got)
	}
	if got := staleNotes(v); !slices.Equal(got, []string{"BRK-001"}) {
		t.Errorf("stale notes: expected [BRK-001], actual %v", got)
	}
	var md bytes.Buffer
	if err := RenderMatrix(&md, "m", []*verdict.Verdicts{v}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| **FAIL** ← BRK-010 |", "| **FAIL** † |", "**unexplained**", "note for BRK-001, which did not fail"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("matrix: expected %q in\n%s", want, md.String())
		}
	}
}

func TestBrowserColumn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ws, v31 verdict.Verdict
		want    string
	}{
		{verdict.Pass, verdict.Pass, "yes"},
		{verdict.NotClaimed, verdict.Pass, "no: no WebSocket listener"},
		{verdict.Fail, verdict.Pass, "no: BRK-008 failed (WebSocket /mqtt, mqttv3.1)"},
		{verdict.Pass, verdict.Fail, "no: BRK-009 failed (MQTT 3.1)"},
		{verdict.NotTested, verdict.Pass, "unknown (BRK-008 not-tested)"},
		{verdict.Pass, verdict.NotTested, "unknown (BRK-009 not-tested)"},
	} {
		v := verdictsOf("b", nil, map[string]verdict.Verdict{"BRK-008": tc.ws, "BRK-009": tc.v31})
		if got := Browser(v); got != tc.want {
			t.Errorf("BRK-008 %s, BRK-009 %s: expected %q, actual %q", tc.ws, tc.v31, tc.want, got)
		}
	}
}
