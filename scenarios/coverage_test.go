package scenarios_test

import (
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// TestEveryRequirementIsCovered: each catalog requirement is named by at least one scenario
// label or carries the catalog's written reason why it cannot be tested; every label is a
// catalog ID.
func TestEveryRequirementIsCovered(t *testing.T) {
	cov := scenarios.Coverage()
	for _, r := range spec.Catalog() {
		if len(cov.Scenarios[r.ID]) == 0 && r.Untestable == "" {
			t.Errorf("%s (%s) is checked by no scenario and has no Untestable reason: %s", r.ID, r.Area, r.Text)
		}
	}
	for _, id := range cov.Unknown {
		t.Errorf("scenario label %s is not a catalog requirement", id)
	}
	if cov.Total == 0 {
		t.Fatal("no scenarios found")
	}
	t.Logf("%d scenarios cover %d requirement IDs", cov.Total, len(cov.Scenarios))
}
