package certreport

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/reports"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		a, b := string(want), string(got)
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		lo := max(0, i-200)
		t.Errorf("%s differs from the golden file at byte %d (go test -update to accept):\nwant ...%s\ngot  ...%s",
			name, i, a[lo:min(len(a), i+200)], b[lo:min(len(b), i+200)])
	}
}

func bundles(t *testing.T) (a, b *verdict.Verdicts) {
	t.Helper()
	a, err := Load("testdata/a.json")
	if err != nil {
		t.Fatal(err)
	}
	if b, err = Load("testdata/b.json"); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// selfContained checks that hostile payloads in the trace came out as text.
func selfContained(t *testing.T, html []byte) {
	t.Helper()
	if refs := reports.ExternalRefs(html); len(refs) > 0 {
		t.Errorf("the HTML references things outside itself: %q", refs)
	}
	if n := bytes.Count(html, []byte("<script")); n != 0 {
		t.Errorf("%d <script> tags in a certification report: a payload was not escaped", n)
	}
}

func TestSingleBundleReport(t *testing.T) {
	t.Parallel()
	a, _ := bundles(t)
	var h, md bytes.Buffer
	if err := HTML(&h, []*verdict.Verdicts{a}); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, []*verdict.Verdicts{a}); err != nil {
		t.Fatal(err)
	}
	selfContained(t, h.Bytes())
	html := h.String()
	// Summary and verdict come before the requirement tables.
	iv, is, ir := strings.Index(html, "Not certified for profile strict"), strings.Index(html, "<h2>Summary"), strings.Index(html, "Requirements by area")
	if iv < 0 || is < iv || ir < is {
		t.Errorf("expected verdict, then summary, then requirements: %d %d %d", iv, is, ir)
	}
	for _, want := range []string{`id="fail-SESS-004"`, `href="#fail-SESS-004"`, "a RESPONSE within 5s", "message trace (3 messages)",
		"&lt;script src=//evil.example/a.js&gt;", "(5000 bytes)", "1 claimed MUST requirement(s) failed", "shared-subscriptions, websocket",
		`<span class="muted mono">/src/scenarios/sessions/sessions.go:91</span>`} {
		if !strings.Contains(html, want) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	m := md.String()
	for _, want := range []string{"**❌ Not certified for profile strict.**", "### SESS-004 (MUST)", "| BRK-010 | MUST | A shared subscription delivers each message to exactly one member \\| of the group. | pass |", "<details><summary>message trace (3 messages)",
		"(`/src/scenarios/sessions/sessions.go:91`)"} {
		if !strings.Contains(m, want) {
			t.Errorf("the Markdown lacks %q", want)
		}
	}
	golden(t, "single.html", h.Bytes())
	golden(t, "single.md", md.Bytes())
}

func TestMatrixReport(t *testing.T) {
	t.Parallel()
	a, b := bundles(t)
	vs := []*verdict.Verdicts{a, b}
	var h, md, direct bytes.Buffer
	if err := HTML(&h, vs); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, vs); err != nil {
		t.Fatal(err)
	}
	selfContained(t, h.Bytes())
	html := h.String()
	for _, want := range []string{"Compatibility matrix", `<a href="#f0-SESS-004">FAIL</a>`, `id="f0-SESS-004"`, "ICE-003", "v-missing"} {
		if !strings.Contains(html, want) {
			t.Errorf("the HTML matrix lacks %q", want)
		}
	}
	// The Markdown of several bundles is the compatibility matrix of certify matrix.
	if err := RenderMatrix(&direct, "Compatibility matrix", vs); err != nil {
		t.Fatal(err)
	}
	if md.String() != direct.String() {
		t.Error("report cert --markdown with several bundles differs from the matrix")
	}
	if !strings.Contains(md.String(), "| ICE-003 | MUST | A newer catalog requirement only bundle b knows. | - | pass |") {
		t.Errorf("a requirement only the second bundle knows is not a row with '-' for the first:\n%s", md.String())
	}
	golden(t, "matrix.html", h.Bytes())
	golden(t, "matrix.md", md.Bytes())
}

func TestVerdictLine(t *testing.T) {
	t.Parallel()
	a, b := bundles(t)
	if ok, h, _ := Verdict(b); !ok || h != "Certified for profile strict" {
		t.Errorf("b: %v %q", ok, h)
	}
	p := *b
	p.Certified, p.Complete, p.Filter = false, false, "area:ice"
	if ok, _, why := Verdict(&p); ok || !strings.Contains(why, "partial run (filter area:ice)") {
		t.Errorf("partial run: %v %q", ok, why)
	}
	if ok, _, why := Verdict(a); ok || !strings.Contains(why, "1 claimed MUST") {
		t.Errorf("a: %v %q", ok, why)
	}
	if err := HTML(&bytes.Buffer{}, nil); err == nil {
		t.Error("no bundles: expected an error")
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("a directory without verdicts.json: expected an error")
	}
}
