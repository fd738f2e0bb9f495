// Package certreport renders certification bundles (scenarios/BUNDLE.md, verdicts.json
// v1) for people: one bundle as a report (summary and verdict first, then every requirement
// by area, failures expanded to expected vs actual and the message trace), several bundles
// side by side as a compatibility matrix. HTML (self-contained) and Markdown.
package certreport

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/reports"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

// Load reads the verdicts of a bundle directory (or a verdicts.json file).
func Load(path string) (*verdict.Verdicts, error) {
	if !strings.HasSuffix(path, ".json") {
		path = filepath.Join(path, verdict.File)
	}
	v, err := verdict.Read(path)
	if err != nil {
		return nil, fmt.Errorf("certification report: %w", err)
	}
	return v, nil
}

// Verdict says in one line whether the bundle certifies its target, and why not.
func Verdict(v *verdict.Verdicts) (ok bool, headline, why string) {
	if v.Certified {
		return true, fmt.Sprintf("Certified for profile %s", v.Target.Profile), fmt.Sprintf(
			"No claimed MUST requirement failed in a complete run (%d of %d scenarios ran).", v.Summary.ScenariosRun, v.Summary.Scenarios)
	}
	var reasons []string
	if n := v.Summary.MustFailures; n > 0 {
		reasons = append(reasons, fmt.Sprintf("%d claimed MUST requirement(s) failed", n))
	}
	if len(v.SuiteFailures) > 0 {
		reasons = append(reasons, "the suite could not set up")
	}
	if n := len(v.HarnessErrors); n > 0 {
		reasons = append(reasons, fmt.Sprintf("%d scenario(s) stopped on a harness error", n))
	}
	if v.Interrupted {
		reasons = append(reasons, "the run was interrupted")
	}
	if v.Filter != "" {
		reasons = append(reasons, fmt.Sprintf("partial run (filter %s): a partial run certifies nothing", v.Filter))
	} else if !v.Complete && !v.Interrupted {
		reasons = append(reasons, "incomplete run")
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "see the verdicts")
	}
	return false, fmt.Sprintf("Not certified for profile %s", v.Target.Profile), strings.Join(reasons, "; ") + "."
}

// area groups a bundle's requirements under one catalog area, in catalog order.
type area struct {
	Name string
	Reqs []verdict.RequirementVerdict
}

func areas(rs []verdict.RequirementVerdict) []area {
	var out []area
	idx := map[string]int{}
	for _, r := range rs {
		i, ok := idx[r.Area]
		if !ok {
			i = len(out)
			idx[r.Area] = i
			out = append(out, area{Name: r.Area})
		}
		out[i].Reqs = append(out[i].Reqs, r)
	}
	return out
}

// count is one verdict's tally for the summary table.
type count struct {
	Verdict verdict.Verdict
	N       int
}

func counts(v *verdict.Verdicts) []count {
	s := v.Summary
	return []count{
		{verdict.Pass, s.Pass}, {verdict.Fail, s.Fail}, {verdict.NotClaimed, s.NotClaimed},
		{verdict.NotApplicable, s.NotApplicable}, {verdict.NotTested, s.NotTested},
	}
}

func features(v *verdict.Verdicts) string {
	if len(v.Target.Features) == 0 {
		return "none"
	}
	fs := make([]string, len(v.Target.Features))
	for i, f := range v.Target.Features {
		fs[i] = string(f)
	}
	return strings.Join(fs, ", ")
}

// Title is the report's title for a set of bundles.
func Title(vs []*verdict.Verdicts) string {
	if len(vs) == 1 {
		return "Certification report: " + vs[0].Target.Name
	}
	return "Compatibility matrix"
}

var funcs = template.FuncMap{
	"verdicts": counts,
	"areas":    areas,
	"features": features,
	"failed":   failedOf,
	"explain":  explanations,
	"blameOf":  func(v *verdict.Verdicts, id string) string { return strings.Join(Explain(v, id).Blame, ", ") },
	"browser":  Browser,
	"verdict": func(v *verdict.Verdicts) map[string]any {
		ok, h, why := Verdict(v)
		return map[string]any{"OK": ok, "Headline": h, "Why": why}
	},
	"cellOf": func(v *verdict.Verdicts, id string) string {
		if r, ok := v.Get(id); ok {
			return string(r.Verdict)
		}
		return "missing"
	},
	"label": func(s string) string {
		switch verdict.Verdict(s) {
		case verdict.Pass:
			return "pass"
		case verdict.Fail:
			return "FAIL"
		case verdict.NotClaimed:
			return "not claimed"
		case verdict.NotApplicable:
			return "n/a"
		case verdict.NotTested:
			return "not tested"
		}
		return "–"
	},
	"date": func(v *verdict.Verdicts) string { return v.RunDate.UTC().Format("2006-01-02 15:04:05 UTC") },
	"add":  func(a, b int) int { return a + b },
	"str":  func(v verdict.Verdict) string { return string(v) },
}

var htmlTmpl = template.Must(template.New("cert").Funcs(funcs).Parse(`
{{define "failure"}}<div class="failure">
<div><b>{{.Scenario}}</b>{{if .Location}} <span class="muted mono">{{.Location}}</span>{{end}}</div>
{{if .Expected}}<div>expected:</div><pre>{{.Expected}}</pre>{{end}}
<div>actual:</div><pre>{{.Actual}}</pre>
{{if .Trace}}<details><summary>message trace ({{len .Trace}} messages)</summary>
<table class="trace"><thead><tr><th>at</th><th>dir</th><th>client</th><th>topic</th><th>payload</th></tr></thead><tbody>
{{range .Trace}}<tr><td>{{.At}}</td><td>{{.Dir}}</td><td>{{.Client}}</td><td>{{.Topic}}{{if .Retained}} <span class="muted">retained</span>{{end}}{{if .QoS}} <span class="muted">qos{{.QoS}}</span>{{end}}</td><td class="payload">{{if .Size}}{{.Payload}}{{if gt .Size (len .Payload)}} <span class="muted">({{.Size}} bytes)</span>{{end}}{{else}}<span class="muted">(empty)</span>{{end}}</td></tr>
{{end}}</tbody></table></details>{{end}}
</div>{{end}}

{{define "facts"}}<table class="kv">
<tr><th>target</th><td>{{.Target.Name}}</td></tr>
{{if .Target.Description}}<tr><th>description</th><td>{{.Target.Description}}</td></tr>{{end}}
<tr><th>mode</th><td>{{.Target.Mode}}</td></tr>
<tr><th>declared profile</th><td>{{.Target.Profile}}</td></tr>
{{if ne .Target.Mode "connector"}}<tr><th>reference connector topology</th><td>{{.Target.Topology}}</td></tr>{{end}}
<tr><th>features claimed</th><td>{{features .}}</td></tr>
<tr><th>official web client (browser)</th><td>{{browser .}}</td></tr>
{{if .Target.Broker.TCP}}<tr><th>broker (TCP)</th><td class="mono">{{.Target.Broker.TCP}}</td></tr>{{end}}
{{if .Target.Broker.WS}}<tr><th>broker (WebSocket)</th><td class="mono">{{.Target.Broker.WS}}</td></tr>{{end}}
<tr><th>harness version</th><td>{{.HarnessVersion}}</td></tr>
<tr><th>catalog version</th><td>{{.CatalogVersion}}</td></tr>
<tr><th>run date</th><td>{{date .}}</td></tr>
<tr><th>duration</th><td>{{.Duration}}</td></tr>
<tr><th>scenarios run</th><td>{{.Summary.ScenariosRun}} of {{.Summary.Scenarios}}{{if .Filter}} (filter <code>{{.Filter}}</code>){{end}}</td></tr>
</table>{{end}}

{{define "single"}}{{$v := .}}{{$verdict := verdict .}}
<div class="banner {{if $verdict.OK}}ok{{else}}bad{{end}}">{{$verdict.Headline}}<small>{{$verdict.Why}}</small></div>
<h2>Summary</h2>
{{template "facts" .}}
<table class="kv"><thead><tr><th>verdict</th><th class="num">requirements</th></tr></thead><tbody>
{{range verdicts .}}<tr><td><span class="verdict v-{{str .Verdict}}">{{label (str .Verdict)}}</span></td><td class="num">{{.N}}</td></tr>
{{end}}<tr><th>total</th><th class="num">{{.Summary.Total}}</th></tr>
<tr><td>failed MUST</td><td class="num">{{.Summary.MustFailures}}</td></tr></tbody></table>
{{if or .SuiteFailures .Unknown .HarnessErrors}}<ul class="warnings">
{{range .SuiteFailures}}<li>suite failure: {{.}}</li>{{end}}
{{range .HarnessErrors}}<li>harness error: {{.}}</li>{{end}}
{{range .Unknown}}<li>scenarios name {{.}}, which is not in the catalog (a harness bug)</li>{{end}}
</ul>{{end}}
<p class="muted">The bundle also holds <code>junit.xml</code> (for CI dashboards), <code>ginkgo-report.json</code> and <code>target.yaml</code>; verdicts come from <code>verdicts.json</code> (format {{.Format}}).</p>
{{with failed .}}<h2>Failed requirements</h2>
<table><thead><tr><th>ID</th><th>blame</th><th>note</th></tr></thead><tbody>
{{range explain $v}}<tr><td class="mono"><a href="#fail-{{.ID}}">{{.ID}}</a></td><td>{{.BlameText}}</td><td>{{.Note}}</td></tr>
{{end}}</tbody></table>
{{range .}}<h3 id="fail-{{.ID}}">{{.ID}} <span class="verdict v-fail">{{.Level}}</span> {{.Text}}</h3>
{{if .Reason}}<p class="muted">{{.Reason}}</p>{{end}}
{{range .Failures}}{{template "failure" .}}{{end}}
{{end}}{{end}}
<h2>Requirements by area</h2>
{{range areas .Requirements}}<h3>{{.Name}}</h3>
<table><thead><tr><th>ID</th><th>level</th><th>requirement</th><th>verdict</th><th>why</th></tr></thead><tbody>
{{range .Reqs}}<tr><td class="mono">{{if eq (str .Verdict) "fail"}}<a href="#fail-{{.ID}}">{{.ID}}</a>{{else}}{{.ID}}{{end}}</td><td>{{.Level}}</td><td>{{.Text}}{{if .Feature}} <span class="muted">(feature {{.Feature}})</span>{{end}}</td><td><span class="verdict v-{{str .Verdict}}">{{label (str .Verdict)}}</span></td><td class="muted">{{.Reason}}</td></tr>
{{end}}</tbody></table>
{{end}}{{end}}

{{define "matrix"}}{{$vs := .Bundles}}
<h2>Targets</h2>
<table><thead><tr><th>#</th><th>target</th><th>mode</th><th>profile</th><th>verdict</th><th>browser</th><th class="num">pass</th><th class="num">fail</th><th class="num">not claimed</th><th class="num">n/a</th><th class="num">not tested</th><th>harness</th><th>catalog</th><th>run (UTC)</th><th>duration</th></tr></thead><tbody>
{{range $i, $v := $vs}}{{$verdict := verdict $v}}<tr><td>{{add $i 1}}</td><td>{{$v.Target.Name}}</td><td>{{$v.Target.Mode}}</td><td>{{$v.Target.Profile}}</td><td><span class="{{if $verdict.OK}}pass-text{{else}}fail-text{{end}}">{{if $verdict.OK}}certified{{else}}not certified{{end}}</span><br><small>{{$verdict.Why}}</small></td><td>{{browser $v}}</td><td class="num">{{$v.Summary.Pass}}</td><td class="num">{{$v.Summary.Fail}}</td><td class="num">{{$v.Summary.NotClaimed}}</td><td class="num">{{$v.Summary.NotApplicable}}</td><td class="num">{{$v.Summary.NotTested}}</td><td>{{$v.HarnessVersion}}</td><td>{{$v.CatalogVersion}}</td><td>{{$v.RunDate.UTC.Format "2006-01-02 15:04"}}</td><td>{{$v.Duration}}</td></tr>
{{end}}</tbody></table>
<ul>{{range $vs}}<li><b>{{.Target.Name}}</b>{{if .Target.Description}}: {{.Target.Description}}{{end}}; features claimed: {{features .}}.</li>{{end}}</ul>
<h2>Requirements</h2>
{{range .Areas}}<h3>{{.Name}}</h3>
<table class="matrix"><thead><tr><th>ID</th><th>level</th><th>requirement</th>{{range $i, $v := $vs}}<th title="{{$v.Target.Name}}">{{$v.Target.Name}}</th>{{end}}</tr></thead><tbody>
{{range .Reqs}}{{$id := .ID}}<tr><td class="mono">{{.ID}}</td><td>{{.Level}}</td><td>{{.Text}}</td>{{range $i, $v := $vs}}{{$c := cellOf $v $id}}<td class="cell"><span class="verdict v-{{$c}}">{{if eq $c "fail"}}<a href="#f{{$i}}-{{$id}}">FAIL</a>{{with blameOf $v $id}} <small title="broker requirements it needs that failed too">← {{.}}</small>{{end}}{{else}}{{label $c}}{{end}}</span></td>{{end}}</tr>
{{end}}</tbody></table>
{{end}}
{{range $i, $v := $vs}}{{with failed $v}}<h2>Failures: {{$v.Target.Name}}</h2>
<table><thead><tr><th>ID</th><th>blame</th><th>note</th></tr></thead><tbody>
{{range explain $v}}<tr><td class="mono"><a href="#f{{$i}}-{{.ID}}">{{.ID}}</a></td><td>{{.BlameText}}</td><td>{{.Note}}</td></tr>
{{end}}</tbody></table>
{{range .}}<h3 id="f{{$i}}-{{.ID}}">{{.ID}} <span class="verdict v-fail">{{.Level}}</span> {{.Text}}</h3>
{{range .Failures}}{{template "failure" .}}{{end}}
{{end}}{{end}}{{end}}
{{end}}
`))

// HTML writes a self-contained HTML report: one bundle as a certification report, several
// as a compatibility matrix.
func HTML(w io.Writer, vs []*verdict.Verdicts) error {
	if len(vs) == 0 {
		return fmt.Errorf("certification report: no bundles")
	}
	var body bytes.Buffer
	var err error
	subtitle := ""
	if len(vs) == 1 {
		v := vs[0]
		subtitle = fmt.Sprintf("%s · profile %s · catalog %s · %s", v.Target.Mode, v.Target.Profile, v.CatalogVersion, v.RunDate.UTC().Format("2006-01-02 15:04 UTC"))
		err = htmlTmpl.ExecuteTemplate(&body, "single", v)
	} else {
		subtitle = fmt.Sprintf("%d certification bundles, requirements as rows, targets as columns", len(vs))
		// Areas of the union of rows, so a requirement only a later bundle knows still shows.
		err = htmlTmpl.ExecuteTemplate(&body, "matrix", map[string]any{"Bundles": vs, "Areas": areas(Rows(vs))})
	}
	if err != nil {
		return fmt.Errorf("certification report: %w", err)
	}
	return reports.Page{Title: Title(vs), Subtitle: subtitle, Body: template.HTML(body.String())}.Write(w)
}

// Markdown writes the report for a pull request: one bundle as a certification report,
// several as the compatibility matrix (RenderMatrix).
func Markdown(w io.Writer, vs []*verdict.Verdicts) error {
	switch len(vs) {
	case 0:
		return fmt.Errorf("certification report: no bundles")
	case 1:
	default:
		return RenderMatrix(w, "Compatibility matrix", vs)
	}
	v := vs[0]
	b := &strings.Builder{}
	ok, headline, why := Verdict(v)
	mark := "❌"
	if ok {
		mark = "✅"
	}
	fmt.Fprintf(b, "# %s\n\n**%s %s.** %s\n\n", Title(vs), mark, headline, why)
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(b, "| %s | %s |\n", k, cell(val))
		}
	}
	row("target", v.Target.Name)
	row("description", v.Target.Description)
	row("mode", string(v.Target.Mode))
	row("declared profile", string(v.Target.Profile))
	if v.Target.Mode != "connector" {
		row("reference connector topology", v.Target.Topology.String())
	}
	row("features claimed", features(v))
	row("official web client (browser)", Browser(v))
	row("harness version", v.HarnessVersion)
	row("catalog version", v.CatalogVersion)
	row("run date", v.RunDate.UTC().Format("2006-01-02 15:04:05 UTC"))
	row("duration", v.Duration)
	scen := fmt.Sprintf("%d of %d", v.Summary.ScenariosRun, v.Summary.Scenarios)
	if v.Filter != "" {
		scen += " (filter `" + v.Filter + "`)"
	}
	row("scenarios run", scen)
	s := v.Summary
	fmt.Fprintf(b, "\n| pass | fail | not claimed | n/a | not tested | total | failed MUST |\n|---|---|---|---|---|---|---|\n| %d | %d | %d | %d | %d | %d | %d |\n",
		s.Pass, s.Fail, s.NotClaimed, s.NotApplicable, s.NotTested, s.Total, s.MustFailures)
	for _, f := range v.SuiteFailures {
		fmt.Fprintf(b, "\n> suite failure: %s\n", cell(f))
	}
	for _, h := range v.HarnessErrors {
		fmt.Fprintf(b, "\n> harness error: %s\n", cell(h))
	}
	for _, u := range v.Unknown {
		fmt.Fprintf(b, "\n> scenarios name %s, which is not in the catalog (a harness bug)\n", cell(u))
	}
	if failed := failedOf(v); len(failed) > 0 {
		b.WriteString("\n## Failed requirements\n\n| ID | level | blame | note |\n|---|---|---|---|\n")
		for _, e := range explanations(v) {
			r, _ := v.Get(e.ID)
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", e.ID, r.Level, cell(e.BlameText()), cell(e.Note))
		}
		for _, r := range failed {
			fmt.Fprintf(b, "\n### %s (%s) %s\n\n", r.ID, r.Level, cell(r.Text))
			if e := Explain(v, r.ID); e.Explained() {
				fmt.Fprintf(b, "Blame: %s.", cell(e.BlameText()))
				if e.Note != "" {
					fmt.Fprintf(b, " Note: %s", cell(e.Note))
				}
				b.WriteString("\n\n")
			}
			for _, f := range r.Failures {
				fmt.Fprintf(b, "- **%s**", cell(f.Scenario))
				if f.Location != "" {
					fmt.Fprintf(b, " (`%s`)", f.Location)
				}
				b.WriteString("\n\n")
				if f.Expected != "" {
					fmt.Fprintf(b, "  expected:\n\n%s\n", codeBlock(f.Expected, "  "))
				}
				fmt.Fprintf(b, "  actual:\n\n%s\n", codeBlock(f.Actual, "  "))
				if len(f.Trace) > 0 {
					fmt.Fprintf(b, "  <details><summary>message trace (%d messages)</summary>\n\n", len(f.Trace))
					var t strings.Builder
					for i, e := range f.Trace {
						if i == maxMarkdownTrace {
							fmt.Fprintf(&t, "... %d more in the bundle's verdicts.json\n", len(f.Trace)-i)
							break
						}
						t.WriteString(runeShort(e.String(), 400) + "\n")
					}
					fmt.Fprintf(b, "%s\n  </details>\n\n", codeBlock(t.String(), "  "))
				}
			}
		}
	}
	b.WriteString("\n## Requirements by area\n")
	for _, a := range areas(v.Requirements) {
		fmt.Fprintf(b, "\n### %s\n\n| ID | level | requirement | verdict | why |\n|---|---|---|---|---|\n", a.Name)
		for _, r := range a.Reqs {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", r.ID, r.Level, cell(r.Text), verdictCell[r.Verdict], cell(r.Reason))
		}
	}
	b.WriteString("\nJUnit XML for CI: `junit.xml` in the bundle. Verdicts: `verdicts.json` (" + v.Format + ").\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// maxMarkdownTrace bounds the trace lines in Markdown (pull request comments have limits);
// the HTML report and verdicts.json keep the whole trace.
const maxMarkdownTrace = 60

// codeBlock fences text so that no backtick run inside it can close the fence.
func codeBlock(text, indent string) string {
	fence := "```"
	for strings.Contains(text, fence) {
		fence += "`"
	}
	text = strings.TrimRight(runeShort(text, 4000), "\n")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = indent + l
	}
	return indent + fence + "text\n" + strings.Join(lines, "\n") + "\n" + indent + fence
}

// runeShort truncates s to at most n bytes without splitting a UTF-8 character.
func runeShort(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
