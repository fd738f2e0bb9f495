package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reports"
	"github.com/rtcomm-harness/rtcomm-harness/reports/plan"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestReportPlanCommand(t *testing.T) {
	t.Parallel()
	out, err := runRoot(t, "report", "plan", "--users", "100000", "--bhca", "1", "--hold", "2m", "--registered-share", "60",
		"--headroom", "1.5", "--connector-rate", "50", "--broker-connections", "20000", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r plan.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Inputs.RegisteredShare != 0.6 || r.ConnectorInstances != 1 || r.BrokerInstancesByConns != 5 || r.Connections != 60000 {
		t.Errorf("plan: %+v", r)
	}
	if _, err := runRoot(t, "report", "plan", "--users", "0"); err == nil || !strings.Contains(err.Error(), "users") {
		t.Errorf("--users 0: expected an error naming users, actual %v", err)
	}
}

func TestReportCertCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "reports", "certreport", "testdata", "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "verdicts.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runRoot(t, "report", "cert", bundle)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(bundle, "report.html"))
	if err != nil || !strings.Contains(out, "report: "+filepath.Join(bundle, "report.html")) {
		t.Fatalf("report.html: %v; output %q", err, out)
	}
	if refs := reports.ExternalRefs(html); len(refs) > 0 {
		t.Errorf("external references: %q", refs)
	}
	if _, err := os.Stat(filepath.Join(bundle, "report.md")); err != nil {
		t.Error(err)
	}
	if _, err := runRoot(t, "report", "cert", bundle, bundle); err == nil {
		t.Error("several bundles without --html/--markdown: expected an error")
	}
	md := filepath.Join(dir, "compat.md")
	if _, err := runRoot(t, "report", "cert", "--markdown", md, bundle, bundle); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(md); !strings.Contains(string(b), "## Requirements") {
		t.Errorf("matrix Markdown lacks the requirements table:\n%s", b)
	}
}

// shard writes a small finalized results directory for one shard.
func shard(t *testing.T, dir, label string, start time.Time) {
	t.Helper()
	now := start
	rec := metrics.NewRecorder()
	w, err := results.Create(dir, results.Params{Rate: 5, Duration: results.Duration(2 * time.Second), Shard: label, SLO: "setup.p99<1s"},
		rec, results.WithClock(func() time.Time { return now }), results.WithFlushEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	for s := range 2 {
		for i := range 5 {
			a := rec.Begin()
			rec.RecordDurations(metrics.Setup, time.Duration(i+s+1)*time.Millisecond, time.Millisecond)
			a.End(metrics.Success, "")
		}
		now = now.Add(time.Second)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finalize(now, false); err != nil {
		t.Fatal(err)
	}
}

func TestReportMergeAndLoadCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := filepath.Join(dir, "s0"), filepath.Join(dir, "s1")
	shard(t, a, "0/2", start)
	shard(t, b, "1/2", start.Add(100*time.Millisecond))
	out, err := runRoot(t, "report", "merge", filepath.Join(dir, "all"), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "20 call attempts") || !strings.Contains(out, "report: "+filepath.Join(dir, "all", "report.html")) {
		t.Errorf("merge output:\n%s", out)
	}
	var rep struct {
		Kind  string `json:"kind"`
		Tally struct {
			Attempts int `json:"attempts"`
		} `json:"tally"`
	}
	jb, err := os.ReadFile(filepath.Join(dir, "all", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &rep); err != nil || rep.Kind != "merge" || rep.Tally.Attempts != 20 {
		t.Errorf("merged report.json: %+v %v", rep, err)
	}
	// Merging the same shard twice double counts: refused.
	if _, err := runRoot(t, "report", "merge", filepath.Join(dir, "twice"), a, a); err == nil {
		t.Error("the same shard twice: expected an error")
	}
	out, err = runRoot(t, "report", "load", "--html", "-", a)
	if err != nil || !strings.Contains(out, "<!DOCTYPE html>") {
		t.Errorf("report load --html -: %v", err)
	}
}

// TestReportMergeShardsAndPattern: report merge expands a pattern itself (the image has no
// shell), prints a row per shard, and --shards N refuses a merge that lacks a shard.
func TestReportMergeShardsAndPattern(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		shard(t, filepath.Join(dir, "run", fmt.Sprintf("shard-%d", i)), fmt.Sprintf("%d/3", i), start)
	}
	pattern := filepath.Join(dir, "run", "shard-*")
	// Shard 2/3 missing: refused with --shards 3, and nothing is written.
	if _, err := runRoot(t, "report", "merge", "--shards", "3", filepath.Join(dir, "part"), pattern[:len(pattern)-1]+"[01]"); err == nil ||
		!strings.Contains(err.Error(), "missing [2/3]") {
		t.Errorf("merge of 2 of 3 shards with --shards 3: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "part")); err == nil {
		t.Error("a refused merge wrote its output directory")
	}
	if _, err := runRoot(t, "report", "merge", filepath.Join(dir, "none"), filepath.Join(dir, "nothing-*")); err == nil ||
		!strings.Contains(err.Error(), "no results directories match") {
		t.Errorf("pattern matching nothing: %v", err)
	}
	out, err := runRoot(t, "report", "merge", "--shards", "3", filepath.Join(dir, "merged"), pattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"merged 3 results directories", "30 call attempts", "shard 0/3", "shard 2/3"} {
		if !strings.Contains(out, want) {
			t.Errorf("merge output lacks %q:\n%s", want, out)
		}
	}
}
