package framework_test

import (
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/framework"
)

// TestInterruptedScenarioIsNotAFailure: a scenario stopped by Ctrl-C says nothing about the
// target. Its requirements are not failed; the run is incomplete and not certified.
func TestInterruptedScenarioIsNotAFailure(t *testing.T) {
	r := types.Report{
		SpecialSuiteFailureReasons: []string{"Interrupted by User"},
		SpecReports: []types.SpecReport{
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "passes", LeafNodeLabels: []string{"SESS-002"}, State: types.SpecStatePassed,
				ReportEntries: types.ReportEntries{{Name: framework.EntryFinding,
					Value: types.WrapEntryValue(framework.Finding{Req: "SESS-002", Outcome: framework.OutcomePass})}}},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "interrupted", LeafNodeLabels: []string{"REG-008"},
				State: types.SpecStateInterrupted, Failure: types.Failure{Message: "Interrupted by User"}},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "failed on its own", LeafNodeLabels: []string{"SESS-003"},
				State: types.SpecStateFailed, Failure: types.Failure{Message: "boom"}},
		},
	}
	v := framework.ComputeVerdicts(r, framework.EmbeddedDeclaration())
	want := map[string]framework.Verdict{"SESS-002": framework.VerdictPass, "REG-008": framework.VerdictNotTested, "SESS-003": framework.VerdictFail}
	for id, w := range want {
		if got, ok := v.Get(id); !ok || got.Verdict != w {
			t.Errorf("%s: expected %s, actual %s (%s)", id, w, got.Verdict, got.Reason)
		}
	}
	if !v.Interrupted || v.Complete || v.Certified {
		t.Errorf("expected an interrupted, incomplete, uncertified run; actual interrupted %v complete %v certified %v", v.Interrupted, v.Complete, v.Certified)
	}
}
