package loadgen

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

type fakeSource struct {
	tally metrics.Tally
	setup *hdrhistogram.Histogram
}

func (f *fakeSource) Tally() metrics.Tally { return f.tally }

func (f *fakeSource) Histogram(m metrics.Metric, _ bool) *hdrhistogram.Histogram {
	if m == metrics.Setup && f.setup != nil {
		return f.setup
	}
	return metrics.NewHistogram()
}

func TestProgressSilentWithoutTTY(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := NewProgress(&out, false, &fakeSource{tally: metrics.Tally{Attempts: 5}}, epoch)
	for i := range 3 {
		if err := p.Update(epoch.Add(time.Duration(i+1) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Done(); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q to a non-terminal", out.String())
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	src := &fakeSource{setup: metrics.NewHistogram()}
	p := NewProgress(&out, true, src, epoch)

	if err := p.Update(epoch.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "setup p99 -") {
		t.Errorf("no-data line = %q", out.String())
	}

	for i := range 100 {
		_ = src.setup.RecordValue(int64(1000 * (i + 1))) // 1ms..100ms
	}
	src.tally = metrics.Tally{
		Attempts:   900,
		Outcomes:   metrics.Outcomes{metrics.Success: 495, metrics.Timeout: 5},
		LateStarts: 2,
	}
	out.Reset()
	if err := p.Update(epoch.Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	for _, want := range []string{
		"\r", "3s", "450.0/s", // 900 attempts over the 2s since the last update
		"active 400", "setup p99 99.", "errors 5 (1.00%)", "late 2", "\x1b[K",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "\n") {
		t.Errorf("live line has a newline: %q", line)
	}
	if strings.Contains(line, "violations") {
		t.Errorf("line %q counts violations without a checker", line)
	}
	out.Reset()
	if err := p.Done(); err != nil || out.String() != "\n" {
		t.Errorf("Done wrote %q, %v", out.String(), err)
	}
	// With a checker (load --check) the line counts its findings, 0 included.
	n := uint64(0)
	p.CountViolations(func() uint64 { return n })
	for _, want := range []uint64{0, 3} {
		n = want
		out.Reset()
		_ = p.Update(epoch.Add(4 * time.Second))
		if w := fmt.Sprintf("violations %d", want); !strings.Contains(out.String(), w) {
			t.Errorf("line %q lacks %q", out.String(), w)
		}
	}
}
