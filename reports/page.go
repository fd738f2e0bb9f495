// Package reports holds what every rendered report shares: the self-contained HTML page
// (inline CSS, inline SVG charts, at most a small inline script, nothing fetched from the
// network) and the check that a page references nothing outside itself. The renderers are
// in the sub-packages: certreport (certification bundles), loadreport (load and capacity
// results), plan (the planning calculator) and chart (SVG charts with gonum/plot).
package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"regexp"
	"strings"
)

// Page is one self-contained HTML document.
type Page struct {
	Title    string
	Subtitle string        // one line under the title (target, date)
	Body     template.HTML // the report, already escaped by its renderer's templates
	Script   string        // inline JavaScript, "" for none
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rtcomm-harness report">
<title>{{.Title}}</title>
<style>{{.CSS}}</style>
</head>
<body>
<header><h1>{{.Title}}</h1>{{if .Subtitle}}<p class="subtitle">{{.Subtitle}}</p>{{end}}</header>
<main>
{{.Body}}
</main>
{{if .Script}}<script>{{.Script}}</script>{{end}}
</body>
</html>
`))

// css is the whole style sheet: readable tables, verdict colours, charts that scale.
const css = `
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --pass: #1a7f37; --pass-bg: #dafbe1;
  --fail: #cf222e; --fail-bg: #ffebe9; --warn: #9a6700; --warn-bg: #fff8c5; --na-bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; color: var(--fg); margin: 0 auto;
  max-width: 1180px; padding: 16px 24px 48px; line-height: 1.4; font-size: 15px; }
h1 { font-size: 26px; margin: 8px 0 2px; } h2 { font-size: 20px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 14px; width: 100%; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv { width: auto; } table.kv th { width: 220px; }
code, pre, .mono { font-family: "Liberation Mono", Consolas, Menlo, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; white-space: nowrap; }
.v-pass { background: var(--pass-bg); color: var(--pass); } .v-fail { background: var(--fail-bg); color: var(--fail); font-weight: 700; }
.v-not-claimed, .v-not-applicable, .v-not-tested, .v-missing { background: var(--na-bg); color: var(--muted); }
.banner { padding: 12px 16px; border-radius: 6px; font-size: 18px; font-weight: 700; margin: 12px 0; }
.banner.ok { background: var(--pass-bg); color: var(--pass); border: 1px solid var(--pass); }
.banner.bad { background: var(--fail-bg); color: var(--fail); border: 1px solid var(--fail); }
.banner.warn { background: var(--warn-bg); color: var(--warn); border: 1px solid var(--warn); }
.banner small { display: block; font-size: 14px; font-weight: 400; color: var(--fg); }
.warnings { background: var(--warn-bg); border: 1px solid var(--warn); border-radius: 6px; padding: 8px 12px 8px 28px; }
.warnings li { margin: 2px 0; }
.muted, small { color: var(--muted); }
details { margin: 4px 0 10px; } summary { cursor: pointer; }
.failure { border-left: 4px solid var(--fail); padding: 4px 0 4px 12px; margin: 8px 0 14px; }
.trace td { font-family: "Liberation Mono", Consolas, Menlo, monospace; font-size: 12px; }
.trace td.payload { word-break: break-all; }
svg.chart { width: 100%; height: auto; display: block; margin: 8px 0 4px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 4px 24px; }
.charts figure { margin: 0; }
td.mono { white-space: nowrap; }
.plan-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.plan fieldset { border: 1px solid var(--line); border-radius: 6px; display: grid; grid-template-columns: 190px 120px 1fr; gap: 6px 10px; align-items: center; }
.plan input { font: inherit; padding: 2px 4px; width: 120px; text-align: right; }
.plan output { font-weight: 700; }
.error { color: var(--fail); min-height: 1em; }
.matrix td.cell { text-align: center; white-space: nowrap; }
.matrix td.cell a { color: inherit; }
.pass-text { color: var(--pass); } .fail-text { color: var(--fail); font-weight: 700; }
@media print { body { max-width: none; } details { display: block; } }
`

// Write renders the page.
func (p Page) Write(w io.Writer) error {
	data := struct {
		Page
		CSS    template.CSS
		Script template.JS
	}{Page: p, CSS: template.CSS(css), Script: template.JS(p.Script)}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("render page %q: %w", p.Title, err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

var (
	tagRE   = regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	styleRE = regexp.MustCompile(`(?is)<style[^>]*>(.*?)</style>`)
	attrRef = regexp.MustCompile(`(?i)\s(src|href|xlink:href|action|formaction|poster|data|srcset|background|ping|manifest)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))`)
	cssURL  = regexp.MustCompile(`(?i)url\(\s*['"]?([^'")\s]*)`)
)

// ExternalRefs lists every reference in an HTML document to something outside it: an
// attribute such as src or href in a tag, or a CSS url() in a style sheet or style
// attribute, whose target is not a fragment (#id) or inline data (data:), plus any @import.
// Escaped text (a message payload quoting a URL) is not a reference. An empty list means
// the page opens without a network and without companion files.
func ExternalRefs(html []byte) []string {
	var out []string
	var css [][]byte
	for _, tag := range tagRE.FindAll(html, -1) {
		for _, m := range attrRef.FindAllSubmatch(tag, -1) {
			if v := string(m[3]) + string(m[4]) + string(m[5]); !local(v) {
				out = append(out, string(m[0]))
			}
		}
		css = append(css, tag)
	}
	for _, m := range styleRE.FindAllSubmatch(html, -1) {
		css = append(css, m[1])
	}
	for _, c := range css {
		for _, m := range cssURL.FindAllSubmatch(c, -1) {
			if !local(string(m[1])) {
				out = append(out, string(m[0]))
			}
		}
		if bytes.Contains(bytes.ToLower(c), []byte("@import")) {
			out = append(out, "@import")
		}
	}
	return out
}

// local reports whether a reference stays inside the document. A relative path is not
// local: it needs a file next to the page.
func local(ref string) bool {
	ref = strings.TrimSpace(ref)
	return strings.HasPrefix(ref, "#") || strings.HasPrefix(strings.ToLower(ref), "data:")
}
