package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the checkout's root, seen from this package's directory.
const repoRoot = "../.."

var (
	fencedCode = regexp.MustCompile("(?s)```.*?```")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	// [text](target) and ![alt](target), with an optional "title"; and href="target".
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)|href="([^"]+)"`)
	mdHeading  = regexp.MustCompile(`(?m)^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	urlScheme  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	htmlTag    = regexp.MustCompile(`<[^>]+>`)
)

// TestDocLinksResolve: every relative link in README.md and docs/ names a file of the
// checkout and, into a Markdown file, one of its headings or <a id> anchors (as GitHub
// renders them), so a moved file or a renamed section cannot leave a dead link behind.
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	docs := []string{filepath.Join(repoRoot, "README.md")}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			docs = append(docs, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	anchorsOf := map[string]map[string]bool{}
	links := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := inlineCode.ReplaceAllString(fencedCode.ReplaceAllString(string(b), ""), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1] + m[2]
			if urlScheme.MatchString(link) {
				continue // http:, https:, mailto: are not ours to check offline
			}
			links++
			name, frag, _ := strings.Cut(link, "#")
			target := doc
			if name != "" {
				target = filepath.Join(filepath.Dir(doc), filepath.FromSlash(name))
			}
			rel, _ := filepath.Rel(repoRoot, doc)
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s: no such file", rel, link)
				continue
			}
			if frag == "" || !strings.HasSuffix(target, ".md") {
				continue
			}
			if anchorsOf[target] == nil {
				anchorsOf[target] = markdownAnchors(t, target)
			}
			if !anchorsOf[target][frag] {
				t.Errorf("%s: link %s: no heading or anchor #%s there", rel, link, frag)
			}
		}
	}
	if links < 50 {
		t.Fatalf("found only %d relative links in %d files: the scan is broken", links, len(docs))
	}
}

// markdownAnchors lists the fragment IDs of a Markdown file: GitHub's heading slugs
// (lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats) and <a id>s.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range htmlAnchor.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = true
	}
	seen := map[string]int{}
	for _, m := range mdHeading.FindAllStringSubmatch(fencedCode.ReplaceAllString(string(b), ""), -1) {
		s := headingSlug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// headingSlug is the anchor GitHub gives a heading.
func headingSlug(h string) string {
	h = strings.ToLower(htmlTag.ReplaceAllString(h, ""))
	var b strings.Builder
	for _, r := range strings.TrimSpace(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
