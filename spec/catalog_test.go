package spec_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

var update = flag.Bool("update", false, "rewrite docs/REQUIREMENTS.md from the catalog")

const requirementsDoc = "../docs/REQUIREMENTS.md"

var idRE = regexp.MustCompile(`^[A-Z]+-\d{3}$`)

func TestCatalogWellFormed(t *testing.T) {
	t.Parallel()
	cat := spec.Catalog()
	if len(cat) < 50 {
		t.Fatalf("catalog size: expected >= 50, actual %d", len(cat))
	}
	validLevel := map[spec.Level]bool{spec.Must: true, spec.Should: true, spec.May: true}
	validProfile := map[spec.Profile]bool{spec.ProfileStrict: true, spec.ProfileClient: true}
	validSubject := map[string]bool{spec.SubjectBroker: true, spec.SubjectConnector: true, spec.SubjectEndpoint: true}
	validFeature := map[string]bool{"": true, spec.FeatureWebSocket: true, spec.FeatureSecure: true,
		spec.FeatureQueues: true, spec.Feature3PCC: true, spec.FeatureEvents: true,
		spec.FeatureSchemes: true, spec.FeatureShared: true}
	seen := map[string]bool{}
	perArea := map[string]int{}
	for _, r := range cat {
		if !idRE.MatchString(r.ID) {
			t.Errorf("%q: expected ID matching %s", r.ID, idRE)
		}
		if seen[r.ID] {
			t.Errorf("%s: expected unique ID, actual duplicate", r.ID)
		}
		seen[r.ID] = true
		prefix, _, _ := strings.Cut(r.ID, "-")
		if got := spec.AreaPrefix(r.Area); got != prefix {
			t.Errorf("%s: area %q expects prefix %q, actual %q", r.ID, r.Area, got, prefix)
		}
		perArea[r.Area]++
		for name, v := range map[string]string{"Area": r.Area, "Text": r.Text, "Source": r.Source, "Subject": r.Subject} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: expected %s filled, actual empty", r.ID, name)
			}
		}
		if !strings.HasSuffix(r.Text, ".") {
			t.Errorf("%s: expected Text to be a sentence ending in '.', actual %q", r.ID, r.Text)
		}
		if !validLevel[r.Level] {
			t.Errorf("%s: expected Level MUST/SHOULD/MAY, actual %q", r.ID, r.Level)
		}
		if len(r.Profiles) == 0 {
			t.Errorf("%s: expected at least one profile, actual none", r.ID)
		}
		ps := map[spec.Profile]bool{}
		for _, p := range r.Profiles {
			if !validProfile[p] || ps[p] {
				t.Errorf("%s: expected distinct strict/client profiles, actual %v", r.ID, r.Profiles)
			}
			ps[p] = true
		}
		for _, s := range strings.Split(r.Subject, ",") {
			if !validSubject[s] {
				t.Errorf("%s: expected subject broker/connector/endpoint, actual %q", r.ID, r.Subject)
			}
		}
		// A strict-only requirement exists because the written spec says so: it must name the
		// sentence, so a strict verdict can show the target which one it broke.
		if r.InProfile(spec.ProfileStrict) && !r.InProfile(spec.ProfileClient) && strings.TrimSpace(r.Sentence) == "" {
			t.Errorf("%s: strict-only requirement without the spec Sentence it comes from", r.ID)
		}
		// Endpoint behaviour comes from the web client, never from lib.rtcomm.node (3PCC and
		// event monitoring only).
		if strings.Contains(r.Source, "lib.rtcomm.node") && !strings.Contains(r.Source, "lib/3pcc.js") &&
			!strings.Contains(r.Source, "lib/RtcConnector.js") && !strings.Contains(r.Source, "rtcomm.service.proto.spec.md") {
			t.Errorf("%s: source names lib.rtcomm.node without a file of it: %q", r.ID, r.Source)
		}
		if !validFeature[r.Feature] {
			t.Errorf("%s: expected a known feature, actual %q", r.ID, r.Feature)
		}
	}
	for _, a := range spec.Areas() {
		if perArea[a] == 0 {
			t.Errorf("area %q: expected at least one requirement, actual none", a)
		}
	}
	if len(perArea) != len(spec.Areas()) {
		t.Errorf("areas used: expected %d, actual %d (%v)", len(spec.Areas()), len(perArea), perArea)
	}
}

func TestCatalogOrderAndCopy(t *testing.T) {
	t.Parallel()
	cat := spec.Catalog()
	areaRank := map[string]int{}
	for i, a := range spec.Areas() {
		areaRank[a] = i
	}
	for i := 1; i < len(cat); i++ {
		a, b := cat[i-1], cat[i]
		if areaRank[a.Area] > areaRank[b.Area] || (a.Area == b.Area && a.ID >= b.ID) {
			t.Errorf("order: expected %s before %s", b.ID, a.ID)
		}
	}
	cat[0].Text = "mutated"
	cat[0].Profiles[0] = "mutated"
	again := spec.Catalog()
	if again[0].Text == "mutated" || again[0].Profiles[0] == "mutated" {
		t.Fatalf("Catalog: expected a copy, actual shares state with the caller")
	}
	r, ok := spec.Lookup(again[0].ID)
	if !ok || r.ID != again[0].ID {
		t.Fatalf("Lookup(%s): expected found, actual %v %+v", again[0].ID, ok, r)
	}
	r.Profiles[0] = "mutated"
	if r2, _ := spec.Lookup(r.ID); r2.Profiles[0] == "mutated" {
		t.Fatalf("Lookup: expected a copy, actual shares Profiles")
	}
	if _, ok := spec.Lookup("NOPE-001"); ok {
		t.Fatalf("Lookup(NOPE-001): expected not found, actual found")
	}
	if spec.AreaPrefix("nonsense") != "" {
		t.Fatalf("AreaPrefix(nonsense): expected empty")
	}
}

func TestCatalogProfilesDiffer(t *testing.T) {
	t.Parallel()
	// The known differences must be visible in the catalog: some entries bind only one profile.
	var strictOnly, clientOnly int
	for _, r := range spec.Catalog() {
		switch {
		case r.InProfile(spec.ProfileStrict) && !r.InProfile(spec.ProfileClient):
			strictOnly++
		case r.InProfile(spec.ProfileClient) && !r.InProfile(spec.ProfileStrict):
			clientOnly++
		}
	}
	if strictOnly == 0 || clientOnly == 0 {
		t.Fatalf("profile-only entries: expected some of each, actual strict %d, client %d", strictOnly, clientOnly)
	}
	for id, want := range map[string][2]bool{"REG-003": {true, false}, "REG-004": {false, true}, "BRK-001": {true, true}} {
		r, _ := spec.Lookup(id)
		if got := [2]bool{r.InProfile(spec.ProfileStrict), r.InProfile(spec.ProfileClient)}; got != want {
			t.Errorf("%s profiles (strict, client): expected %v, actual %v", id, want, got)
		}
	}
	if r, _ := spec.Lookup("FMT-001"); !r.AppliesTo(spec.SubjectConnector) || !r.AppliesTo(spec.SubjectEndpoint) || r.AppliesTo(spec.SubjectBroker) {
		t.Errorf("FMT-001 subjects: expected connector and endpoint only, actual %q", r.Subject)
	}
}

// TestCatalogTagsExist checks that every requirement ID tagged in this package's code exists.
func TestCatalogTagsExist(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`//.*?\b([A-Z]{2,4}-\d{3})\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tag.FindAllSubmatch(b, -1) {
			if _, ok := spec.Lookup(string(m[1])); !ok {
				t.Errorf("%s: tag %s: expected a catalog ID, actual unknown", f, m[1])
			}
		}
	}
}

// TestCatalogDoc keeps docs/REQUIREMENTS.md in sync with the catalog (go test ./spec -run TestCatalogDoc -update).
func TestCatalogDoc(t *testing.T) {
	want := catalogMarkdown()
	if *update {
		if err := os.WriteFile(requirementsDoc, want, 0o644); err != nil {
			t.Fatalf("write %s: %v", requirementsDoc, err)
		}
		return
	}
	got, err := os.ReadFile(requirementsDoc)
	if err != nil {
		t.Fatalf("read %s: %v (run: go test ./spec -run TestCatalogDoc -update)", requirementsDoc, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with spec/catalog.go: run go test ./spec -run TestCatalogDoc -update", requirementsDoc)
	}
}

func catalogMarkdown() []byte {
	cat := spec.Catalog()
	var b bytes.Buffer
	b.WriteString("# Rtcomm requirement catalog\n\n")
	fmt.Fprintf(&b, "Catalog version %s. Generated from `spec/catalog.go` by\n"+
		"`go test ./spec -run TestCatalogDoc -update`; do not edit by hand.\n\n", spec.CatalogVersion)
	b.WriteString("Profiles: `strict` holds a target to the written signaling spec; `client` to what the official\n" +
		"rtcomm.js 1.0.9 and lib.rtcomm.node need. A requirement with a feature applies only to targets that\n" +
		"claim that feature. Untestable requirements are kept and reported as such.\n\n")
	b.WriteString("| area | prefix | requirements | MUST | SHOULD | MAY | untestable |\n|---|---|---|---|---|---|---|\n")
	total := 0
	for _, area := range spec.Areas() {
		var n, must, should, may, untestable int
		for _, r := range cat {
			if r.Area != area {
				continue
			}
			n++
			switch r.Level {
			case spec.Must:
				must++
			case spec.Should:
				should++
			case spec.May:
				may++
			}
			if r.Untestable != "" {
				untestable++
			}
		}
		total += n
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %d | %d | %d | %d | %d |\n", area, area, spec.AreaPrefix(area), n, must, should, may, untestable)
	}
	fmt.Fprintf(&b, "| **total** | | %d | | | | |\n", total)
	for _, area := range spec.Areas() {
		fmt.Fprintf(&b, "\n## %s\n\n", area)
		b.WriteString("| ID | level | subject | profiles | feature | requirement | source | spec sentence |\n|---|---|---|---|---|---|---|---|\n")
		for _, r := range cat {
			if r.Area != area {
				continue
			}
			ps := make([]string, len(r.Profiles))
			for i, p := range r.Profiles {
				ps[i] = string(p)
			}
			slices.Sort(ps)
			text := r.Text
			if r.Untestable != "" {
				text += " *Untestable: " + r.Untestable + ".*"
			}
			feature := r.Feature
			if feature == "" {
				feature = "core"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.ID, r.Level,
				strings.ReplaceAll(r.Subject, ",", ", "), strings.Join(ps, ", "), feature, cell(text), cell(r.Source), cell(r.Sentence))
		}
	}
	return b.Bytes()
}

// cell escapes a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
