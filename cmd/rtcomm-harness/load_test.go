package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func tinyLoad(t *testing.T) loadOptions {
	o := defaultLoadOptions()
	o.endpoints, o.rampRate, o.rate, o.duration = 10, 200, 8, 2*time.Second
	o.ringTimeout, o.holdMean, o.iceGap = 2*time.Second, 300*time.Millisecond, 10*time.Millisecond
	o.topicPath = "/lgc-" + mqttc.RandomClientID("")[:8] + "/"
	o.out = filepath.Join(t.TempDir(), "run")
	return o
}

// runLoadValid runs `load` with o and fails the test unless it exits 0 (or 2 because the
// generator itself was late: a shared CI machine may do that, by design). It returns the output.
func runLoadValid(t *testing.T, o loadOptions) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if err != nil && !(errors.As(err, &ee) && ee.code == exitLoadInvalid && strings.Contains(err.Error(), "late starts")) {
		t.Fatalf("load: %v\n%s", err, out.String())
	}
	return &out
}

// TestLoadCommand runs `load` with tiny flags against the embedded reference.
func TestLoadCommand(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.baseline = true
	out := runLoadValid(t, o)
	sum, lerr := results.Load(o.out)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if sum.Tally.Attempts == 0 || sum.Baseline == nil {
		t.Errorf("attempts %d, baseline %v", sum.Tally.Attempts, sum.Baseline)
	}
	for _, want := range []string{"results:   " + o.out, "setup", "calls", "baseline"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestLoadSLOBreachExits1 holds the run to an SLO nothing can meet.
func TestLoadSLOBreachExits1(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.sloSpec = "setup.p99<1us"
	var out bytes.Buffer
	err := runLoad(context.Background(), o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitSLOBreached {
		t.Fatalf("want exit %d, got %v\n%s", exitSLOBreached, err, out.String())
	}
	if !strings.Contains(out.String(), "FAIL setup.p99<1us") {
		t.Errorf("verdict not printed:\n%s", out.String())
	}
}

// TestLoadBadFlagsExit2 refuses an invalid run before starting anything.
func TestLoadBadFlagsExit2(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.shard = "3/2"
	err := runLoad(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitLoadInvalid {
		t.Fatalf("want exit %d, got %v", exitLoadInvalid, err)
	}
}

// TestLateInvalid is the run's validity rule: the late share against --max-late, and one
// start over lateLagInvalid whatever the share (the CI smoke failure: 2 of 195 late by 12.6 ms).
func TestLateInvalid(t *testing.T) {
	t.Parallel()
	us := func(d time.Duration) int64 { return d.Microseconds() }
	cases := []struct {
		name  string
		tally metrics.Tally
		max   float64
		want  bool
	}{
		{"nothing attempted", metrics.Tally{}, 0.01, false},
		{"no late starts", metrics.Tally{Attempts: 195}, 0.01, false},
		{"2 of 195 over 1%", metrics.Tally{Attempts: 195, LateStarts: 2, MaxLateLagUS: us(12600 * time.Microsecond)}, 0.01, true},
		{"2 of 195 within 5%", metrics.Tally{Attempts: 195, LateStarts: 2, MaxLateLagUS: us(12600 * time.Microsecond)}, 0.05, false},
		{"1 of 195 stalled", metrics.Tally{Attempts: 195, LateStarts: 1, MaxLateLagUS: us(150 * time.Millisecond)}, 0.05, true},
		{"zero tolerance", metrics.Tally{Attempts: 1000, LateStarts: 1, MaxLateLagUS: us(11 * time.Millisecond)}, 0, true},
	}
	for _, c := range cases {
		if got := lateInvalid(c.tally, c.max); got != c.want {
			t.Errorf("%s: lateInvalid(max %g) = %v, want %v", c.name, c.max, got, c.want)
		}
	}
}

// TestLoadMaxLateOutOfRange refuses a tolerance that is not a share.
func TestLoadMaxLateOutOfRange(t *testing.T) {
	t.Parallel()
	for _, v := range []float64{-0.1, 1, 5} {
		o := tinyLoad(t)
		o.maxLate = v
		var out bytes.Buffer
		err := runLoad(context.Background(), o, &out, &out, false, slog.New(slog.DiscardHandler))
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitLoadInvalid || !strings.Contains(err.Error(), "--max-late") {
			t.Errorf("--max-late %g: want exit %d naming the flag, got %v", v, exitLoadInvalid, err)
		}
	}
}
