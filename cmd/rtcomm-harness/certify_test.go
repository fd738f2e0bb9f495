package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reports/certreport"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// TestCertifyWritesABundle runs certify on a narrow area of the embedded reference (Ginkgo
// runs one suite per process: this is the package's only suite run) and renders the matrix.
func TestCertifyWritesABundle(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := runCertify(ctx, certifyOptions{out: dir, areas: []string{"format", "service-query"}, timeout: time.Minute},
		&out, slog.New(slog.DiscardHandler))
	var ee *exitError
	if err != nil && (!errors.As(err, &ee) || ee.code != exitNotCertified) {
		t.Fatalf("expected success or exit %d, actual %v\n%s", exitNotCertified, err, out.String())
	}
	for _, f := range []string{scenarios.BundleVerdicts, scenarios.BundleJUnit, scenarios.BundleJSON, scenarios.BundleTarget} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("bundle: expected a non-empty %s, actual %v", f, err)
		}
	}
	v, err := scenarios.ReadVerdicts(filepath.Join(dir, scenarios.BundleVerdicts))
	if err != nil {
		t.Fatal(err)
	}
	if v.Complete || v.Certified || v.Filter == "" {
		t.Errorf("expected a partial, uncertified run with its filter recorded, actual complete=%v certified=%v filter=%q", v.Complete, v.Certified, v.Filter)
	}
	if r, _ := v.Get("SQ-002"); r.Verdict != scenarios.VerdictPass {
		t.Errorf("expected SQ-002 to pass on the reference, actual %s (%s)", r.Verdict, r.Reason)
	}
	if !strings.Contains(out.String(), "partial run") {
		t.Errorf("expected the summary to say the run was partial, actual:\n%s", out.String())
	}

	var md bytes.Buffer
	if err := certreport.RenderMatrix(&md, "Compat", []*scenarios.Verdicts{v, v}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| SQ-002 | MUST |") || !strings.Contains(md.String(), "# Compat") {
		t.Errorf("matrix lacks the SQ-002 row or the title:\n%s", md.String())
	}
}

func TestCertifyNeedsOut(t *testing.T) {
	err := runCertify(context.Background(), certifyOptions{}, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitHarness {
		t.Errorf("expected exit %d without --out, actual %v", exitHarness, err)
	}
}

// certify matrix --require-explained exits 1 while a failure has neither blame nor note, and
// accepts the same bundle once its declaration explains the failure.
func TestMatrixRequireExplained(t *testing.T) {
	b, err := os.ReadFile("../../reports/certreport/testdata/a.json") // SESS-004 fails, nothing else does
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, scenarios.BundleVerdicts), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() error {
		cmd := newMatrixCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs([]string{"--require-explained", dir})
		return cmd.Execute()
	}
	var ee *exitError
	if err := run(); !errors.As(err, &ee) || ee.code != exitNotCertified || !strings.Contains(err.Error(), "SESS-004") {
		t.Fatalf("unexplained SESS-004: expected exit %d naming it, actual %v", exitNotCertified, err)
	}
	v, err := scenarios.ReadVerdicts(filepath.Join(dir, scenarios.BundleVerdicts))
	if err != nil {
		t.Fatal(err)
	}
	v.Target.Notes = map[string]string{"SESS-004": "vendor issue 1"}
	if err := v.WriteFile(filepath.Join(dir, scenarios.BundleVerdicts)); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatalf("explained by a note: expected success, actual %v", err)
	}
}
