package framework_test

import (
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// TestInterruptedScenarioIsNotAFailure: a scenario stopped by Ctrl-C says nothing about the
// target. Its requirements are not failed; the run is incomplete and not certified.
func TestInterruptedScenarioIsNotAFailure(t *testing.T) {
	r := types.Report{
		SpecialSuiteFailureReasons: []string{"Interrupted by User"},
		SpecReports: []types.SpecReport{
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "passes", LeafNodeLabels: []string{"SESS-002"}, State: types.SpecStatePassed,
				ReportEntries: types.ReportEntries{{Name: scenarios.EntryFinding,
					Value: types.WrapEntryValue(scenarios.Finding{Req: "SESS-002", Outcome: scenarios.OutcomePass})}}},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "interrupted", LeafNodeLabels: []string{"REG-008"},
				State: types.SpecStateInterrupted, Failure: types.Failure{Message: "Interrupted by User"}},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "failed on its own", LeafNodeLabels: []string{"SESS-003"},
				State: types.SpecStateFailed, Failure: types.Failure{Message: "boom"}},
		},
	}
	v := scenarios.ComputeVerdicts(r, scenarios.EmbeddedDeclaration())
	want := map[string]scenarios.Verdict{"SESS-002": scenarios.VerdictPass, "REG-008": scenarios.VerdictNotTested, "SESS-003": scenarios.VerdictFail}
	for id, w := range want {
		if got, ok := v.Get(id); !ok || got.Verdict != w {
			t.Errorf("%s: expected %s, actual %s (%s)", id, w, got.Verdict, got.Reason)
		}
	}
	if !v.Interrupted || v.Complete || v.Certified {
		t.Errorf("expected an interrupted, incomplete, uncertified run; actual interrupted %v complete %v certified %v", v.Interrupted, v.Complete, v.Certified)
	}
}
