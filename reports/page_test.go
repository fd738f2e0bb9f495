package reports

import (
	"bytes"
	"html/template"
	"strings"
	"testing"
)

func TestExternalRefs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		html string
		want int
	}{
		{`<a href="#fail-X">x</a><img src="data:image/png;base64,AA">`, 0},
		{`<p>payload &lt;script src=//evil.example/a.js&gt; url(https://x.example)</p>`, 0}, // escaped text
		{`<script src="https://cdn.example/x.js"></script>`, 1},
		{`<link rel=stylesheet href=style.css>`, 1}, // a companion file is not self-contained either
		{`<img SRC='//evil.example/p.png'>`, 1},
		{`<style>body { background: url("https://x.example/b.png") }</style>`, 1},
		{`<div style="background:url(x.png)">`, 1},
		{`<style>@import "x.css";</style>`, 1},
		{`<svg><image xlink:href="https://x.example/i.png"/></svg>`, 1},
	} {
		if got := ExternalRefs([]byte(c.html)); len(got) != c.want {
			t.Errorf("%s: expected %d references, actual %q", c.html, c.want, got)
		}
	}
}

func TestPageIsSelfContained(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	err := Page{Title: "T <x>", Subtitle: "s", Body: template.HTML("<p>body</p>"), Script: "var a = 1 < 2;"}.Write(&b)
	if err != nil {
		t.Fatal(err)
	}
	if refs := ExternalRefs(b.Bytes()); len(refs) > 0 {
		t.Errorf("page references %q", refs)
	}
	for _, want := range []string{"<title>T &lt;x&gt;</title>", "<style>", "<script>var a = 1 < 2;</script>", "<p>body</p>"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
