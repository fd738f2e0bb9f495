package spec_test

import (
	"slices"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Every key and every dependency is a catalog requirement, dependencies are broker
// requirements, none lists itself or twice, and every connector requirement a broker run
// judges has an entry (a new one without is a gap in blame).
func TestBrokerNeedsWellFormed(t *testing.T) {
	t.Parallel()
	for _, r := range spec.Catalog() {
		needs := spec.BrokerNeeds(r.ID)
		for i, dep := range needs {
			d, ok := spec.Lookup(dep)
			switch {
			case !ok:
				t.Errorf("%s needs %s: not in the catalog", r.ID, dep)
			case !d.AppliesTo(spec.SubjectBroker):
				t.Errorf("%s needs %s: not a broker requirement (subject %s)", r.ID, dep, d.Subject)
			case dep == r.ID:
				t.Errorf("%s needs itself", r.ID)
			case slices.Contains(needs[:i], dep):
				t.Errorf("%s needs %s twice", r.ID, dep)
			}
		}
		if r.AppliesTo(spec.SubjectConnector) && len(needs) == 0 {
			t.Errorf("%s (connector) lists no broker requirements it needs", r.ID)
		}
	}
}

func TestBrokerNeedsKeysExist(t *testing.T) {
	t.Parallel()
	for _, id := range spec.BrokerNeedsKeys() {
		if _, ok := spec.Lookup(id); !ok {
			t.Errorf("dependency table entry %s: not in the catalog", id)
		}
	}
}

func TestBlame(t *testing.T) {
	t.Parallel()
	failed := map[string]bool{"BRK-010": true, "BRK-004": true, "QUE-002": true, "BRK-008": true}
	got := spec.Blame("QUE-002", func(id string) bool { return failed[id] })
	if !slices.Equal(got, []string{"BRK-010", "BRK-004"}) {
		t.Errorf("QUE-002 blame: expected [BRK-010 BRK-004] (most specific first), actual %v", got)
	}
	if got := spec.Blame("SQ-002", func(id string) bool { return failed[id] }); !slices.Equal(got, []string{"BRK-004"}) {
		t.Errorf("SQ-002 blame: expected [BRK-004], actual %v", got)
	}
	if got := spec.Blame("BRK-010", func(string) bool { return true }); len(got) != 0 {
		t.Errorf("BRK-010 needs no other broker requirement: expected no blame, actual %v", got)
	}
	if got := spec.Blame("SESS-002", func(string) bool { return false }); len(got) != 0 {
		t.Errorf("nothing failed: expected no blame, actual %v", got)
	}
}
