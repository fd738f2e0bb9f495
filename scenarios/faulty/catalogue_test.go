package faulty_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

var update = flag.Bool("update", false, "rewrite docs/FAULTS.md (with -run TestFaultyTargetsAreCaught: also the measured figure)")

const faultsDoc = "../../docs/FAULTS.md"

// lastRunLine is the one line of docs/FAULTS.md a full fault run writes (the static
// comparison ignores it).
var lastRunLine = regexp.MustCompile(`(?m)^Last full run: .*\n`)

// targetMusts are the MUST requirements on the broker or the connector.
func targetMusts() []spec.Requirement {
	var out []spec.Requirement
	for _, r := range spec.Catalog() {
		if r.Level == spec.Must && (r.AppliesTo(spec.SubjectBroker) || r.AppliesTo(spec.SubjectConnector)) {
			out = append(out, r)
		}
	}
	return out
}

// catalogueMarkdown renders the fault catalogue; lastRun is the measured line ("" keeps a
// placeholder).
func catalogueMarkdown(lastRun string) []byte {
	faults := faulty.Faults()
	musts := targetMusts()
	covered := map[string][]string{}
	for _, f := range faults {
		for _, id := range f.Breaks {
			covered[id] = append(covered[id], f.Name)
		}
	}
	var uncovered []string
	n := 0
	for _, r := range musts {
		if len(covered[r.ID]) > 0 {
			n++
		} else {
			uncovered = append(uncovered, r.ID)
		}
	}
	var b bytes.Buffer
	b.WriteString("# Fault catalogue\n\n")
	b.WriteString("Generated from `scenarios/faulty` by `go test ./scenarios/faulty -run TestFaultCatalogueDoc -update`;\n" +
		"do not edit by hand. Each fault is a bug a real broker or connector could have, planted in the\n" +
		"embedded reference: a proxy that rewrites what the connector publishes or receives, a modified\n" +
		"connector configuration, or mochi hooks (or a proxy) on the embedded broker.\n\n")
	b.WriteString("`TestFaultyTargetsAreCaught` (`make faulty`, which CI runs; `make test` and `-short` skip it) runs the\n" +
		"unmodified reference once per profile, which must have no failure at all (a baseline that fails\n" +
		"on a loaded machine is run once more, and the test says so), then each fault on the\n" +
		"scenarios labelled with the requirements it breaks, and requires for each of them: the baseline\n" +
		"passes it, and the fault run fails it by a check that recorded Expected and Actual (not a timeout\n" +
		"or a harness error), the catalogue's check among them.\n\n")
	fmt.Fprintf(&b, "- faults: %d\n", len(faults))
	fmt.Fprintf(&b, "- target-side MUST requirements (broker or connector): %d; with at least one fault: %d (%d%%)\n",
		len(musts), n, 100*n/max(len(musts), 1))
	if len(uncovered) > 0 {
		fmt.Fprintf(&b, "- without a fault yet: %s\n", strings.Join(uncovered, ", "))
	}
	if lastRun == "" {
		lastRun = "Last full run: not recorded (run `go test ./scenarios/faulty -run TestFaultyTargetsAreCaught -update`).\n"
	}
	b.WriteString("\n" + lastRun)
	b.WriteString("\n| fault | breaks | caught by the check | profile | the bug |\n|---|---|---|---|---|\n")
	for _, f := range faults {
		p := string(f.Profile)
		if p == "" {
			p = "strict"
		}
		check := f.Check
		if check == "" {
			check = "(each requirement's own checks)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, strings.Join(f.Breaks, ", "),
			cell("…"+check+"…"), p, cell(f.Description))
	}
	b.WriteString("\nThe check column is a piece of the *expected* text of the check that fails; the requirement's\n" +
		"scenarios and all their checks are listed in [REQUIREMENTS.md](REQUIREMENTS.md#verification-scenarios-and-checks-per-requirement).\n")
	return b.Bytes()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "`", "'") }

// TestFaultCatalogueDoc keeps docs/FAULTS.md in sync with the faults (the measured line
// aside): go test ./scenarios/faulty -run TestFaultCatalogueDoc -update.
func TestFaultCatalogueDoc(t *testing.T) {
	got, _ := os.ReadFile(faultsDoc)
	last := string(lastRunLine.Find(got))
	want := catalogueMarkdown(last)
	if *update {
		if err := os.WriteFile(faultsDoc, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run go test ./scenarios/faulty -run TestFaultCatalogueDoc -update", faultsDoc)
	}
}

// TestFaultsAreWellFormed: every fault names catalog requirements, a check and a bug; names
// are unique.
func TestFaultsAreWellFormed(t *testing.T) {
	var names []string
	for _, f := range faulty.Faults() {
		if slices.Contains(names, f.Name) {
			t.Errorf("fault %s: duplicate name", f.Name)
		}
		names = append(names, f.Name)
		if len(f.Breaks) == 0 || f.Description == "" {
			t.Errorf("fault %s: needs Breaks and a Description", f.Name)
		}
		for _, id := range f.Breaks {
			if _, ok := spec.Lookup(id); !ok {
				t.Errorf("fault %s: %s is not a catalog requirement", f.Name, id)
			}
		}
	}
}

// writeLastRun records the measured figure of a full fault run in docs/FAULTS.md.
func writeLastRun(t *testing.T, caught, total int, failures []string) {
	line := fmt.Sprintf("Last full run: %d of %d faults caught by their own requirement's check", caught, total)
	if len(failures) > 0 {
		line += " (not caught: " + strings.Join(failures, ", ") + ")"
	}
	line += ".\n"
	if err := os.WriteFile(faultsDoc, catalogueMarkdown(line), 0o644); err != nil {
		t.Error(err)
	}
}
