package framework

import (
	"slices"
	"sort"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// CoverageReport maps requirement IDs to the scenarios that check them.
type CoverageReport struct {
	Total     int                 // scenarios in the suite
	Scenarios map[string][]string // requirement ID -> scenario full names
	Unknown   []string            // labels that look like IDs but are not in the catalog
}

// Coverage walks the suite without running it (Ginkgo's PreviewSpecs) and reports which
// requirements the scenarios name. Call it before Run in a process, not after.
func Coverage() CoverageReport {
	rep := PreviewSpecs(SuiteName)
	out := CoverageReport{Scenarios: map[string][]string{}}
	unknown := map[string]bool{}
	for _, sr := range rep.SpecReports {
		if sr.LeafNodeType.String() != "It" {
			continue
		}
		out.Total++
		for _, id := range requirementLabels(sr.Labels()) {
			out.Scenarios[id] = append(out.Scenarios[id], sr.FullText())
			if _, ok := spec.Lookup(id); !ok {
				unknown[id] = true
			}
		}
	}
	for id := range unknown {
		out.Unknown = append(out.Unknown, id)
	}
	sort.Strings(out.Unknown)
	out.Unknown = slices.Compact(out.Unknown)
	return out
}
