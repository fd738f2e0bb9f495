package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A soak of a few seconds: the gauges are sampled, fitted and written, and after the pool
// closes the connector's session table and registry are empty.
func TestSoakShortRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "soak")
	o := soakOptions{duration: 3 * time.Second, rate: 5, endpoints: 10, hold: 300 * time.Millisecond,
		every: 200 * time.Millisecond, warmup: 500 * time.Millisecond, tolerance: 0.1, out: dir,
		topicPath: "/soakt/", settleAfter: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := runSoak(ctx, o, &out, slog.New(slog.DiscardHandler))
	if ee, ok := err.(*exitError); ok && ee.code == 2 {
		t.Fatalf("harness failed: %v\n%s", err, out.String())
	}
	b, rerr := os.ReadFile(filepath.Join(dir, "soak.json"))
	if rerr != nil {
		t.Fatalf("soak.json: %v (run: %v)", rerr, err)
	}
	var rep soakReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Trends) != 8 || rep.Trends[0].Samples < 5 {
		t.Fatalf("trends %+v", rep.Trends)
	}
	if !rep.DrainedOK || rep.Drained["sessions"] != 0 || rep.Drained["registrations"] != 0 {
		t.Errorf("not drained: %v", rep.Drained)
	}
	for _, tr := range rep.Trends {
		if tr.Metric == "registrations" && (tr.First != 10 || !tr.Pass) {
			t.Errorf("registry trend %+v, want a flat 10", tr)
		}
	}
	f, err := os.Open(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 10 || len(rows[0]) != 10 {
		t.Fatalf("samples.csv: %d rows, err %v", len(rows), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "load", "summary.json")); err != nil {
		t.Errorf("load results: %v", err)
	}
}
