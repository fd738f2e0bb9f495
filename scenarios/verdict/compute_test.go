package verdict_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

var strict = verdict.Target{Name: "t", Mode: "embedded", Profile: spec.ProfileStrict, Features: spec.Features()}

func pass(id string) verdict.Finding { return verdict.Finding{Req: id, Outcome: verdict.OutcomePass} }

func fail(id string) verdict.Finding {
	return verdict.Finding{Req: id, Outcome: verdict.OutcomeFail, Expected: "e", Actual: "a"}
}

// TestVerdictsComeFromChecks: a requirement passes only on a recorded passing check; named
// but never checked is not tested; any failed check fails it, with Expected/Actual.
func TestVerdictsComeFromChecks(t *testing.T) {
	run := verdict.Run{Target: strict, Scenarios: []verdict.Scenario{
		{Name: "checks SESS-002", Labels: []string{"SESS-002", "SESS-003"}, State: verdict.StatePassed, Findings: []verdict.Finding{pass("SESS-002")}},
		{Name: "fails SESS-004", Labels: []string{"SESS-004", "SESS-008"}, State: verdict.StateFailed,
			Findings: []verdict.Finding{pass("SESS-004"), fail("SESS-004")}, Failure: "SESS-004 violated"},
		{Name: "times out", Labels: []string{"SESS-005"}, State: verdict.StateTimedOut, Failure: "timed out", FailureKind: verdict.KindTimeout},
		{Name: "harness", Labels: []string{"SESS-006"}, State: verdict.StateFailed, Failure: "harness error: x", FailureKind: verdict.KindHarness},
		{Name: "skipped", Labels: []string{"EVT-001"}, State: verdict.StateSkipped, Skip: verdict.NotClaimed, SkipWhy: "events"},
	}}
	v := verdict.Compute(run, spec.Catalog())
	for id, want := range map[string]verdict.Verdict{
		"SESS-002": verdict.Pass, "SESS-003": verdict.NotTested, "SESS-004": verdict.Fail, "SESS-008": verdict.NotTested,
		"SESS-005": verdict.Fail, "SESS-006": verdict.Fail, "EVT-001": verdict.NotClaimed, "SESS-007": verdict.NotApplicable,
		"REG-005": verdict.NotTested,
	} {
		if got, _ := v.Get(id); got.Verdict != want {
			t.Errorf("%s: expected %s, actual %s (%s)", id, want, got.Verdict, got.Reason)
		}
	}
	if r, _ := v.Get("SESS-003"); len(r.Unchecked) != 1 {
		t.Errorf("SESS-003: expected the unchecked scenario listed, actual %v", r.Unchecked)
	}
	kinds := map[string]string{"SESS-004": verdict.KindViolation, "SESS-005": verdict.KindTimeout, "SESS-006": verdict.KindHarness}
	for id, kind := range kinds {
		r, _ := v.Get(id)
		if len(r.Failures) != 1 || r.Failures[0].Kind != kind {
			t.Errorf("%s: expected one %s failure, actual %+v", id, kind, r.Failures)
		}
	}
	if r, _ := v.Get("SESS-004"); r.Failures[0].Expected != "e" || r.Failures[0].Actual != "a" {
		t.Errorf("SESS-004: expected Expected/Actual from the check, actual %+v", r.Failures[0])
	}
	if v.Certified || len(v.HarnessErrors) != 1 {
		t.Errorf("expected an uncertified run with one harness error, actual certified %v, %v", v.Certified, v.HarnessErrors)
	}
}

// TestJUnitNeverPassesAnUncheckedRequirement: in junit.xml, only a pass is a passed test case.
func TestJUnitNeverPassesAnUncheckedRequirement(t *testing.T) {
	v := verdict.Compute(verdict.Run{Target: strict, Scenarios: []verdict.Scenario{
		{Name: "named only", Labels: []string{"SESS-003"}, State: verdict.StatePassed},
	}}, spec.Catalog())
	path := t.TempDir() + "/junit.xml"
	if err := v.WriteJUnit(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := string(raw)
	if !strings.Contains(b, `status="not-tested"`) || !strings.Contains(b, `<skipped message="not-tested: named by 1 scenario(s) that ran, but no check recorded against it">`) {
		t.Errorf("expected SESS-003 skipped as not tested, actual:\n%s", b)
	}
}

// TestVerdictIsALeaf: the verdict model, and the reports that read it, link neither Ginkgo
// nor the reference stack (DESIGN-NOTES: a leaf verdict-model package).
func TestVerdictIsALeaf(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, pkg := range []string{".", "../../reports/..."} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range []string{"github.com/onsi/", "rtcomm-harness/reference", "mochi-mqtt", "rtcomm-harness/scenarios\n"} {
				if strings.Contains(dep+"\n", banned) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
