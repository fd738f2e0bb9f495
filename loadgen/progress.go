package loadgen

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// ProgressSource is what Progress reads; *metrics.Recorder implements it.
type ProgressSource interface {
	Tally() metrics.Tally
	Histogram(m metrics.Metric, corrected bool) *hdrhistogram.Histogram
}

var _ ProgressSource = (*metrics.Recorder)(nil)

// Progress prints one live status line (elapsed, achieved rate, active calls, setup p99,
// errors, late starts), rewriting it in place. It prints nothing unless the writer is a
// terminal, so piped output and logs stay clean.
type Progress struct {
	w     io.Writer
	tty   bool
	src   ProgressSource
	start time.Time

	violations func() uint64 // CountViolations: the protocol checker's findings so far

	mu       sync.Mutex
	lastAt   time.Time
	lastHits uint64
	printed  bool
}

// NewProgress returns a printer for a run that started at start; isTTY says whether w is
// a terminal (e.g. from golang.org/x/term or a Stat of os.Stdout).
func NewProgress(w io.Writer, isTTY bool, src ProgressSource, start time.Time) *Progress {
	return &Progress{w: w, tty: isTTY, src: src, start: start, lastAt: start}
}

// CountViolations adds the protocol checker's findings so far (load --check) to the line;
// f must be safe to call from the printing goroutine. It returns p.
func (p *Progress) CountViolations(f func() uint64) *Progress {
	p.violations = f
	return p
}

// Update rewrites the status line as of now.
func (p *Progress) Update(now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		return nil
	}
	t := p.src.Tally()
	rate := 0.0
	if dt := now.Sub(p.lastAt); dt > 0 && t.Attempts >= p.lastHits {
		rate = float64(t.Attempts-p.lastHits) / dt.Seconds()
	}
	p.lastAt, p.lastHits = now, t.Attempts

	setup := "-"
	if h := p.src.Histogram(metrics.Setup, true); h.TotalCount() > 0 {
		setup = metrics.FormatMicros(h.ValueAtQuantile(99))
	}
	errs := fmt.Sprintf("%d", t.Errors())
	if r, ok := t.ErrorRatio(); ok {
		errs += fmt.Sprintf(" (%.2f%%)", 100*r)
	}
	line := fmt.Sprintf("%6s  %8.1f/s  active %d  setup p99 %s  errors %s  late %d",
		now.Sub(p.start).Truncate(time.Second), rate, t.Active(), setup, errs, t.LateStarts)
	if t.Lost > 0 {
		line += fmt.Sprintf("  lost %d", t.Lost)
	}
	if bad := t.Duplicated + t.Misrouted + t.Altered + t.Unexpected + t.OutOfOrder; bad > 0 {
		line += fmt.Sprintf("  bad deliveries %d", bad)
	}
	if p.violations != nil {
		line += fmt.Sprintf("  violations %d", p.violations())
	}
	// \r returns to the line start, ESC[K clears what a longer previous line left.
	_, err := fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	p.printed = true
	return err
}

// Done ends the status line so later output starts on a fresh line.
func (p *Progress) Done() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty || !p.printed {
		return nil
	}
	p.printed = false
	_, err := io.WriteString(p.w, "\n")
	return err
}

// Run updates the line every interval until ctx ends, then calls Done.
func (p *Progress) Run(ctx context.Context, every time.Duration) {
	if !p.tty {
		return
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = p.Done()
			return
		case now := <-tk.C:
			// A terminal write error (closed pty) only loses the display.
			_ = p.Update(now)
		}
	}
}
