package scenarios_test

import (
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const scenariosImport = "github.com/rtcomm-harness/rtcomm-harness/scenarios/"

// TestEveryAreaIsLinked: each area package registers its specs only when something links it,
// so a package under scenarios/ that this package does not import would silently drop its
// scenarios from every run (and from certification). It also keeps the layout of
// README.md: an area imports the framework, never another area.
func TestEveryAreaIsLinked(t *testing.T) {
	areas := map[string]bool{}
	for _, f := range scenarioFiles(t) {
		if d := path.Dir(f); d != "framework" {
			areas[d] = true
		}
	}
	if len(areas) < 10 {
		t.Fatalf("found only %d area packages: the walk is broken", len(areas))
	}
	linked := map[string]bool{}
	for _, imp := range importsOf(t, "*.go") {
		if a, ok := strings.CutPrefix(imp, scenariosImport); ok {
			linked[a] = true
		}
	}
	for a := range areas {
		if !linked[a] {
			t.Errorf("scenarios/%s holds scenario sources but package scenarios does not import it: its specs never run", a)
		}
		for _, imp := range importsOf(t, filepath.Join(a, "*.go")) {
			if other, ok := strings.CutPrefix(imp, scenariosImport); ok && areas[other] {
				t.Errorf("area scenarios/%s imports area scenarios/%s: move what they share to the framework", a, other)
			}
		}
	}
}

// importsOf lists the import paths of the non-test files matching glob.
func importsOf(t *testing.T, glob string) []string {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range af.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
