package certreport

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

const compatibilityDoc = "../../docs/COMPATIBILITY.md"

// TestCompatibilityDocOfficialClients keeps the "Official clients" section of
// docs/COMPATIBILITY.md equal to what the corpus says now (go test -update rewrites it).
func TestCompatibilityDocOfficialClients(t *testing.T) {
	var want bytes.Buffer
	if err := RenderOfficialClients(&want); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(compatibilityDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	before, section, found := strings.Cut(text, OfficialClientsHeading)
	if found {
		section = OfficialClientsHeading + section
	}
	if *update {
		if found {
			text = before
		} else {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		if err := os.WriteFile(compatibilityDoc, []byte(text+want.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !found || section != want.String() {
		t.Fatalf("%s: the %q section is missing or stale: run go test ./reports/certreport -run TestCompatibilityDocOfficialClients -update",
			compatibilityDoc, OfficialClientsHeading)
	}
}

// TestOfficialClientsSection: the client profile rejects nothing, the strict one names sentences.
func TestOfficialClientsSection(t *testing.T) {
	var b bytes.Buffer
	if err := RenderOfficialClients(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.Contains(s, "| corpus | client | ") || !strings.Contains(s, " | 0 |\n| official clients") {
		t.Errorf("expected a client-profile row with 0 rejected, actual:\n%s", s)
	}
	for _, id := range []string{"REG-003", "SESS-012", "SESS-014", "ID-004"} {
		if !strings.Contains(s, "**"+id+"**") {
			t.Errorf("expected strict rejection %s listed, actual:\n%s", id, s)
		}
	}
	if strings.Contains(s, "spec:  \n") {
		t.Errorf("a strict rejection without its spec sentence:\n%s", s)
	}
}
