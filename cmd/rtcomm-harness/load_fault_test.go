package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reports/loadreport"
)

// checkKept asserts that what a cut-short run measured is on disk: the interval log can be
// rebuilt into a summary with calls in it, and `report` renders it.
func checkKept(t *testing.T, dir string) {
	t.Helper()
	sum, err := results.Load(dir)
	if err != nil {
		if sum, err = results.Rebuild(dir); err != nil {
			t.Fatalf("results of the cut-short run: expected readable (summary or interval log), actual %v", err)
		}
	}
	if sum.Tally.Attempts == 0 {
		t.Errorf("results of the cut-short run: expected the calls measured before the cut, actual 0 attempts")
	}
	if _, err := loadreport.Build([]string{dir}, loadreport.Options{}); err != nil {
		t.Errorf("report of the cut-short run: expected it to render, actual %v", err)
	}
}

// TestLoadTargetVanishes: the broker goes away mid-run. The run ends with exit 2 and says
// so, and everything measured until then is on disk and readable by report.
func TestLoadTargetVanishes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{TCPAddr: "127.0.0.1:0", WSAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := tinyLoad(t)
	o.brokerURL = b.TCPURL()
	o.duration = 20 * time.Second // cut long before this
	// Stop the broker once calls are flowing (the ramp of 10 endpoints takes well under 2 s).
	stop := time.AfterFunc(4*time.Second, func() { _ = b.Close() })
	defer stop.Stop()

	var out bytes.Buffer
	t0 := time.Now()
	err = runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitLoadInvalid {
		t.Fatalf("broker gone mid-run: expected exit %d, actual %v\n%s", exitLoadInvalid, err, out.String())
	}
	if time.Since(t0) > 18*time.Second {
		t.Errorf("broker gone mid-run: expected the run to end early, actual it took %s", time.Since(t0))
	}
	if !strings.Contains(out.String(), "results:   "+o.out) {
		t.Errorf("output: expected the results path, actual:\n%s", out.String())
	}
	checkKept(t, o.out)
}

// TestLoadInterrupted: Ctrl-C (the command's context is cancelled by SIGINT/SIGTERM) mid-run
// keeps everything measured so far.
func TestLoadInterrupted(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.duration = 20 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(4*time.Second, cancel)
	defer stop.Stop()

	var out bytes.Buffer
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitLoadInvalid {
		t.Fatalf("interrupted run: expected exit %d, actual %v\n%s", exitLoadInvalid, err, out.String())
	}
	checkKept(t, o.out)
	sum, err := results.Load(o.out)
	if err != nil {
		t.Fatalf("interrupted run: expected a finalized summary.json, actual %v", err)
	}
	if !sum.Interrupted {
		t.Errorf("interrupted run: expected summary.interrupted = true")
	}
	if len(sum.Invalid) == 0 || !strings.Contains(sum.Invalid[0], "interrupted") {
		t.Errorf("interrupted run: expected summary.invalid to say it was interrupted, actual %q", sum.Invalid)
	}
	if !strings.Contains(out.String(), "INVALID run") {
		t.Errorf("interrupted run: expected the console to say the run is invalid, actual:\n%s", out.String())
	}
}
