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

// TestLoadCommand runs `load` with tiny flags against the embedded reference.
func TestLoadCommand(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.baseline = true
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	// A shared CI machine may make the generator itself late: that is exit 2 by design.
	if err != nil && !(errors.As(err, &ee) && ee.code == exitLoadInvalid && strings.Contains(err.Error(), "late starts")) {
		t.Fatalf("load: %v\n%s", err, out.String())
	}
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
