package scenarios_test

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// checkFuncs take the requirement ID they judge as their first argument (preconditions such
// as Invite, Answer and MustConnect only attribute a failed step and are not listed).
var checkFuncs = []string{"Check", "That", "Violate", "Pass", "CheckSoft", "Expect", "ExpectNone"}

var idLiteral = regexp.MustCompile(`^[A-Z]+-[0-9]{3}$`)

// scenarioSource is one It as the source shows it.
type scenarioSource struct {
	pos    token.Position
	title  string
	labels []string
	checks []checkSource // direct, then through package helpers
}

// checkSource is one call that records against a literal requirement ID.
type checkSource struct {
	req, fn, expected, via string
}

// expectedArg is the index of the "expected" argument of each check function.
var expectedArg = map[string]int{"Check": 2, "That": 3, "Violate": 1, "CheckSoft": 2, "Expect": 1, "ExpectNone": 1}

// notScenarioSources are the directories below scenarios/ that hold neither the framework nor
// an area's specs.
var notScenarioSources = []string{"faulty", "testdata", "verdict", "watch"}

// scenarioFiles lists the scenario sources: the framework and every area package, as paths
// relative to scenarios/ (framework/env.go, sessions/sessions.go, ...).
func scenarioFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !slices.Contains(notScenarioSources, filepath.Dir(f)) {
			out = append(out, filepath.ToSlash(f))
		}
	}
	return out
}

// walkScenarios parses the scenario sources, framework and area packages together (as
// Kubernetes' test/conformance walk does), and returns every It with its labels and the checks
// it makes.
func walkScenarios(t *testing.T) []scenarioSource {
	t.Helper()
	fset := token.NewFileSet()
	files := scenarioFiles(t)
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
	}
	// Package-level string slices (Req(formatReqs...)) and the functions of all these packages
	// (one namespace by name, as when they were one package).
	vars := map[string][]string{}
	funcs := map[string]*ast.FuncDecl{}
	for _, af := range parsed {
		for _, d := range af.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				funcs[d.Name.Name] = d
			case *ast.GenDecl:
				for _, sp := range d.Specs {
					vs, ok := sp.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if cl, ok := vs.Values[i].(*ast.CompositeLit); ok {
								vars[n.Name] = literals(cl.Elts)
							}
						}
					}
				}
			}
		}
	}
	memo := map[string][]checkSource{}
	var checked func(n ast.Node, via string, depth int) []checkSource
	checked = func(n ast.Node, via string, depth int) []checkSource {
		var out []checkSource
		// for _, id := range formatReqs { Check(id, ...) }: id stands for the slice's IDs.
		ranged := map[string][]string{}
		ast.Inspect(n, func(x ast.Node) bool {
			if rs, ok := x.(*ast.RangeStmt); ok {
				v, vok := rs.Value.(*ast.Ident)
				xs, xok := rs.X.(*ast.Ident)
				if vok && xok {
					ranged[v.Name] = vars[xs.Name]
				}
			}
			return true
		})
		ast.Inspect(n, func(x ast.Node) bool {
			call, ok := x.(*ast.CallExpr)
			if !ok {
				return true
			}
			name := calleeName(call)
			if slices.Contains(checkFuncs, name) && len(call.Args) > 0 {
				ids := literals(call.Args[:1])
				if id, ok := call.Args[0].(*ast.Ident); ok {
					ids = ranged[id.Name]
				}
				for _, id := range ids {
					c := checkSource{req: id, fn: name, via: via}
					if i, ok := expectedArg[name]; ok && i < len(call.Args) {
						c.expected = source(fset, call.Args[i])
					}
					out = append(out, c)
				}
			}
			if fd, ok := funcs[name]; ok && fd.Recv == nil && len(call.Args) > 1 && name != "Precondition" && !slices.Contains(checkFuncs, name) {
				// A helper given the requirement to judge, e.g. robustnessRun(e, "ROB-002", ...).
				for _, id := range literals(call.Args) {
					out = append(out, checkSource{req: id, fn: name, via: via})
				}
			}
			if fd, ok := funcs[name]; ok && depth < 6 && fd.Body != nil {
				cs, done := memo[name]
				if !done {
					memo[name] = nil // recursion guard
					cs = checked(fd.Body, name, depth+1)
					memo[name] = cs
				}
				for _, c := range cs {
					if via != "" {
						c.via = via
					}
					out = append(out, c)
				}
			}
			return true
		})
		return out
	}
	var out []scenarioSource
	for _, af := range parsed {
		ast.Inspect(af, func(x ast.Node) bool {
			call, ok := x.(*ast.CallExpr)
			if !ok || calleeName(call) != "It" || len(call.Args) < 2 {
				return true
			}
			sc := scenarioSource{pos: fset.Position(call.Pos())}
			sc.title, _ = strconv.Unquote(exprString(call.Args[0]))
			// sh.In("...") generates the It once per party shape (PartyShape.In).
			if in, ok := call.Args[0].(*ast.CallExpr); ok && calleeName(in) == "In" && len(in.Args) == 1 {
				t, _ := strconv.Unquote(exprString(in.Args[0]))
				sc.title = t + " [each party shape]"
			}
			var body ast.Node
			for _, a := range call.Args[1:] {
				switch a := a.(type) {
				case *ast.CallExpr:
					if calleeName(a) == "Req" {
						sc.labels = append(sc.labels, literals(a.Args)...)
						for _, arg := range a.Args {
							if id, ok := arg.(*ast.Ident); ok {
								sc.labels = append(sc.labels, vars[id.Name]...)
							}
						}
					}
				case *ast.FuncLit:
					body = a.Body
				}
			}
			if body != nil {
				sc.checks = checked(body, "", 0)
			}
			out = append(out, sc)
			return true
		})
	}
	if len(out) < 20 {
		t.Fatalf("found only %d It nodes: the walk is broken", len(out))
	}
	return out
}

// TestChecksNameTheirScenarioLabels fails for every It whose body, or a package function it
// calls, checks a requirement ID its Req(...) labels do not name. At run time such a check
// is a harness error (mustName); this finds it without running the suite.
func TestChecksNameTheirScenarioLabels(t *testing.T) {
	for _, sc := range walkScenarios(t) {
		var missing []string
		for _, c := range sc.checks {
			if !slices.Contains(sc.labels, c.req) && !slices.Contains(missing, c.req) {
				missing = append(missing, c.req)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			t.Errorf("%s: It %q checks %v but its Req(...) names only %v", sc.pos, sc.title, missing, sc.labels)
		}
	}
}

// source renders an expression as Go source on one line, shortened for a table cell.
func source(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	if err := printer.Fprint(&b, fset, e); err != nil {
		return "?"
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	if len(s) > 140 {
		s = s[:140] + "…"
	}
	return s
}

func calleeName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// literals returns the requirement-ID string literals among exprs.
func literals(exprs []ast.Expr) []string {
	var out []string
	for _, e := range exprs {
		if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if s, err := strconv.Unquote(bl.Value); err == nil && idLiteral.MatchString(s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func exprString(e ast.Expr) string {
	if bl, ok := e.(*ast.BasicLit); ok {
		return bl.Value
	}
	return `""`
}
