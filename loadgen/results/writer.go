package results

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
)

// DefaultFlushEvery is how often the Writer appends an interval to the log.
const DefaultFlushEvery = time.Second

// Option configures a Writer.
type Option func(*Writer)

// WithClock makes the Writer stamp intervals and the start with now instead of time.Now
// (nil keeps time.Now).
func WithClock(now func() time.Time) Option {
	return func(w *Writer) {
		if now != nil {
			w.now = now
		}
	}
}

// WithFlushEvery sets the log interval (default DefaultFlushEvery); d <= 0 disables the
// background flush, leaving Flush to the caller (tests).
func WithFlushEvery(d time.Duration) Option { return func(w *Writer) { w.every = d } }

// WithLogger logs background flush errors to l (nil discards).
func WithLogger(l *slog.Logger) Option { return func(w *Writer) { w.log = l } }

// Writer writes one run's results directory as the run goes: params.json at Create, an
// interval of every metric to intervals.hlog each second, and the summary at Finalize.
type Writer struct {
	dir    string
	params Params
	rec    *metrics.Recorder
	now    func() time.Time
	every  time.Duration
	log    *slog.Logger
	start  time.Time

	mu       sync.Mutex // guards the log file and the fields below
	f        *os.File
	bw       *bufio.Writer
	lw       *hdrhistogram.HistogramLogWriter
	enc      intervalEncoder // writes lw's interval lines with a reused zlib writer
	last     time.Time       // end of the previous interval
	flushErr error           // first background flush error, reported by Finalize
	closing  bool            // Finalize has begun
	done     bool            // the log is closed
	baseline *Baseline       // SetBaseline: goes into the summary
	warnings []string        // AddWarning: go into the summary
	invalid  []string        // AddInvalid: go into the summary's Invalid
	window   time.Time       // SetWindowStart: the load window's start when later than start
	check    func() *Check   // SetCheck: asked for the checker's findings at Finalize

	stop    chan struct{}
	stopped chan struct{}
}

// Create makes dir (which must not already hold a run), writes params.json and the log
// header, and starts flushing rec's intervals to the log. The run's start is now.
func Create(dir string, p Params, rec *metrics.Recorder, opts ...Option) (*Writer, error) {
	w := &Writer{dir: dir, params: p, rec: rec, now: time.Now, every: DefaultFlushEvery}
	for _, o := range opts {
		o(w)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if rec == nil {
		return nil, fmt.Errorf("results %s: nil recorder", dir)
	}
	if _, err := slo.Parse(p.SLO); err != nil {
		return nil, fmt.Errorf("results %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileSummary)); err == nil {
		return nil, fmt.Errorf("results %s: already holds a finished run (%s)", dir, FileSummary)
	}
	// O_EXCL: never append to, or truncate, another run's log.
	logPath := filepath.Join(dir, FileIntervals)
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("results %s: %w", dir, err)
	}
	fail := func(err error) (*Writer, error) {
		f.Close()
		os.Remove(logPath) // ours and empty of data: let a retry use the directory
		return nil, fmt.Errorf("results %s: %w", dir, err)
	}
	w.start = w.now()
	w.last = w.start
	doc := paramsDoc{Format: FormatParams, Start: w.start.Round(0).UTC(), Params: p}
	pb, err := marshalJSON(doc, true)
	if err != nil {
		return fail(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, FileParams), pb); err != nil {
		return fail(err)
	}
	w.f = f
	w.bw = bufio.NewWriterSize(f, 64<<10)
	if w.lw, err = writeLogHeader(w.bw, doc); err != nil {
		return fail(err)
	}
	if err := w.sync(); err != nil {
		return fail(err)
	}
	w.stop, w.stopped = make(chan struct{}), make(chan struct{})
	go w.loop()
	return w, nil
}

// writeLogHeader writes the interval log's header and returns a log writer whose
// timestamps are relative to the whole second at or before the run's start.
func writeLogHeader(out io.Writer, doc paramsDoc) (*hdrhistogram.HistogramLogWriter, error) {
	pj, err := commentJSON(doc)
	if err != nil {
		return nil, err
	}
	lw := hdrhistogram.NewHistogramLogWriter(out)
	base := doc.Start.Unix() * 1000
	lw.SetBaseTime(base)
	// Writes go to a bufio.Writer, which keeps its first error for the flush to report.
	_ = lw.OutputLogFormatVersion()
	_ = lw.OutputStartTime(doc.Start.UnixMilli())
	_ = lw.OutputBaseTime(base)
	_ = lw.OutputComment("[" + FormatIntervals + "]")
	_ = lw.OutputComment("[Values in microseconds; Interval_Max in seconds; tags <metric>.corrected and <metric>.uncorrected]")
	_ = lw.OutputComment(paramsPrefix + string(pj) + "]")
	_ = lw.OutputLegend()
	return lw, nil
}

// Start returns the run's start time.
func (w *Writer) Start() time.Time { return w.start }

func (w *Writer) loop() {
	defer close(w.stopped)
	if w.every <= 0 {
		<-w.stop
		return
	}
	tk := time.NewTicker(w.every)
	defer tk.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tk.C:
			if err := w.Flush(); err != nil {
				w.log.Error("results: flush interval log", "dir", w.dir, "err", err)
				w.mu.Lock()
				if w.flushErr == nil {
					w.flushErr = err
				}
				w.mu.Unlock()
			}
		}
	}
}

// Flush appends the interval since the previous flush (one line per metric and variant that
// has values) and the tally so far to the log, and syncs it to disk.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.New("results: writer finalized")
	}
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	now := w.now()
	iv := w.rec.Interval()
	err := writeIntervals(w.bw, w.lw.BaseTime(), &w.enc, iv, w.last, now)
	w.rec.Recycle(iv) // written (or failed to be): reused for later intervals
	if err != nil {
		return err
	}
	if err := writeTally(w.lw, now, w.rec.Tally()); err != nil {
		return err
	}
	w.last = now
	return w.sync()
}

// writeIntervals appends the interval's histograms to out, as the log writer (base time
// baseMs) would.
func writeIntervals(out io.Writer, baseMs int64, enc *intervalEncoder, iv [metrics.NumMetrics][2]*hdrhistogram.Histogram, from, to time.Time) error {
	for _, m := range metrics.All() {
		for v, h := range iv[m] {
			if h == nil {
				continue
			}
			h.SetTag(tag(m, v == 0))
			h.SetStartTimeMs(from.UnixMilli())
			h.SetEndTimeMs(to.UnixMilli())
			if err := enc.write(out, baseMs, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) sync() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.f.Sync()
}

// SetBaseline attaches a raw-relay baseline to the summary Finalize writes.
func (w *Writer) SetBaseline(b *Baseline) {
	w.mu.Lock()
	w.baseline = b
	w.mu.Unlock()
}

// AddWarning adds a reason to qualify the numbers (something the caller saw that the
// recorder cannot, e.g. deliveries a broker dropped) to the summary Finalize writes, ahead of
// the warnings Finalize computes itself. Empty warnings and warnings added once Finalize has
// begun are ignored.
func (w *Writer) AddWarning(msg string) { w.addNote(&w.warnings, msg) }

// AddInvalid records a reason the run is not a valid measurement that only the caller knows
// (e.g. a shard that was not ready at the common start of a synchronized run): Finalize puts
// it in the summary's Invalid. Empty reasons and reasons added once Finalize has begun are
// ignored.
func (w *Writer) AddInvalid(why string) { w.addNote(&w.invalid, why) }

// addNote appends a non-empty note to *to unless Finalize has begun.
func (w *Writer) addNote(to *[]string, note string) {
	if note == "" {
		return
	}
	w.mu.Lock()
	if !w.closing {
		*to = append(*to, note)
	}
	w.mu.Unlock()
}

// SetCheck makes Finalize ask f for the protocol checker's findings (once, before the
// summary is computed, so a violations SLO judges them); f is the checker's last word on
// the run. A nil result leaves the summary without a check section.
func (w *Writer) SetCheck(f func() *Check) {
	w.mu.Lock()
	if !w.closing {
		w.check = f
	}
	w.mu.Unlock()
}

// SetWindowStart says the load window began at t, later than Create (a run that created its
// results directory, then waited for a synchronized start): the summary's start, and so its
// window and rates, begin at t. The interval log keeps Create's start (intervals before t hold
// the ramp's measurements); a summary rebuilt from the log starts there.
func (w *Writer) SetWindowStart(t time.Time) {
	w.mu.Lock()
	if !w.closing && t.After(w.start) {
		w.window = t
	}
	w.mu.Unlock()
}

// Finalize ends the run: it closes the recorder (calls in progress become aborted), writes the
// last interval and an end marker to the log, then the .hgrm files and summary.json. end is
// the end of the load window (zero: now); interrupted marks a run stopped early (Ctrl-C, error).
// The summary is returned even when some write failed.
func (w *Writer) Finalize(end time.Time, interrupted bool) (*Summary, error) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return nil, errors.New("results: writer already finalized")
	}
	w.closing = true
	w.mu.Unlock()
	close(w.stop)
	<-w.stopped
	var check *Check
	if w.check != nil {
		check = w.check() // outside the lock: it may take a while and is the caller's code
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.rec.Close()
	errs := []error{w.flushErr}
	if end.IsZero() {
		end = w.now()
	}
	errs = append(errs, w.flushLocked())
	errs = append(errs, writeEnd(w.lw, end, interrupted), w.sync(), w.f.Close())

	snap := w.rec.Snapshot()
	start := w.start
	if !w.window.IsZero() {
		start = w.window
	}
	sum, err := summarize(run{
		params: w.params, start: start, end: end,
		corrected: snap.Corrected, uncorrected: snap.Uncorrected,
		tally: snap.Tally, interrupted: interrupted, warnings: w.warnings, invalid: w.invalid, check: check,
	})
	if err != nil {
		return nil, fmt.Errorf("results %s: %w", w.dir, errors.Join(append(errs, err)...))
	}
	sum.Baseline = w.baseline
	errs = append(errs, sum.writeOutputs(w.dir))
	if err := errors.Join(errs...); err != nil {
		return sum, fmt.Errorf("results %s: %w", w.dir, err)
	}
	return sum, nil
}

// Log comment prefixes this package writes and reads; readers of the standard format skip
// comments.
const (
	paramsPrefix = "[Params: "
	tallyPrefix  = "[Tally: "
	endPrefix    = "[End: "
	// ShardTallyPrefix starts the comments of a merged interval log that carry each shard's
	// cumulative tally as that shard logged it, so per-second counts survive a merge.
	ShardTallyPrefix = "[ShardTally: "
)

type tallyNote struct {
	At    time.Time     `json:"at"`
	Tally metrics.Tally `json:"tally"`
}

// ShardTallyNote is the body of a ShardTally comment.
type ShardTallyNote struct {
	Shard string        `json:"shard"`
	At    time.Time     `json:"at"`
	Tally metrics.Tally `json:"tally"`
}

type endNote struct {
	End         time.Time `json:"end"`
	Interrupted bool      `json:"interrupted"`
}

func writeTally(lw *hdrhistogram.HistogramLogWriter, at time.Time, t metrics.Tally) error {
	b, err := commentJSON(tallyNote{At: at.Round(0).UTC(), Tally: t})
	if err != nil {
		return err
	}
	return lw.OutputComment(tallyPrefix + string(b) + "]")
}

func writeShardTally(lw *hdrhistogram.HistogramLogWriter, n ShardTallyNote) error {
	b, err := commentJSON(n)
	if err != nil {
		return err
	}
	return lw.OutputComment(ShardTallyPrefix + string(b) + "]")
}

func writeEnd(lw *hdrhistogram.HistogramLogWriter, end time.Time, interrupted bool) error {
	b, err := commentJSON(endNote{End: end.Round(0).UTC(), Interrupted: interrupted})
	if err != nil {
		return err
	}
	return lw.OutputComment(endPrefix + string(b) + "]")
}

// commentJSON encodes v for a log comment. '#' is escaped (valid JSON, same value) because
// hdrhistogram-go's reader looks for "#[StartTime:" and "#[BaseTime:" anywhere in a line, and
// strings such as failure reasons come from the target.
func commentJSON(v any) ([]byte, error) {
	b, err := marshalJSON(v, false)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.ReplaceAll(b, []byte("#"), []byte(`\u0023`)), nil
}

// tag names a metric's histogram in the log: "<metric>.corrected" or "<metric>.uncorrected".
func tag(m metrics.Metric, corrected bool) string {
	if corrected {
		return m.String() + ".corrected"
	}
	return m.String() + ".uncorrected"
}
