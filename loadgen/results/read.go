package results

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// logNotes is what an interval log says besides its histograms.
type logNotes struct {
	format   bool       // carries the FormatIntervals marker
	params   *paramsDoc // from the Params comment
	tally    *tallyNote // the last Tally comment
	end      *endNote   // the End comment, written only by Finalize
	validLen int64      // bytes up to the last complete line; a crash can tear the one after
}

// scanLog reads an interval log's comments and finds where its complete lines end.
func scanLog(path string) (logNotes, error) { return scanLogTallies(path, nil) }

// scanLogTallies is scanLog that also hands every Tally comment, in order, to eachTally.
func scanLogTallies(path string, eachTally func(tallyNote)) (logNotes, error) {
	var n logNotes
	f, err := os.Open(path)
	if err != nil {
		return n, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a line without its newline is torn: ignore it
		}
		if err != nil {
			return n, err
		}
		off += int64(len(line))
		n.validLen = off
		body, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "#")
		if !ok {
			continue
		}
		if note, ok := strings.CutPrefix(body, "["); ok && strings.HasPrefix(note, FormatIntervals+"]") {
			n.format = true
			continue
		}
		switch {
		case strings.HasPrefix(body, paramsPrefix):
			doc, err := decodeParamsDoc(noteJSON(body, paramsPrefix))
			if err != nil {
				return n, fmt.Errorf("params comment: %w", err)
			}
			n.params = &doc
		case strings.HasPrefix(body, tallyPrefix):
			var t tallyNote
			if err := json.Unmarshal(noteJSON(body, tallyPrefix), &t); err != nil {
				return n, fmt.Errorf("tally comment at byte %d: %w", off-int64(len(line)), err)
			}
			n.tally = &t
			if eachTally != nil {
				eachTally(t)
			}
		case strings.HasPrefix(body, endPrefix):
			var e endNote
			if err := json.Unmarshal(noteJSON(body, endPrefix), &e); err != nil {
				return n, fmt.Errorf("end comment: %w", err)
			}
			n.end = &e
		}
	}
	return n, nil
}

func noteJSON(body, prefix string) []byte {
	return []byte(strings.TrimSuffix(strings.TrimPrefix(body, prefix), "]"))
}

// intervalReader reads the complete lines of an interval log with hdrhistogram-go's reader.
type intervalReader struct {
	f       *os.File
	r       *hdrhistogram.HistogramLogReader
	unknown int // histograms whose tag is not ours
}

func openIntervals(path string, validLen int64) (*intervalReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &intervalReader{f: f, r: hdrhistogram.NewHistogramLogReader(io.LimitReader(f, validLen))}, nil
}

// next returns the next interval histogram with one of our tags, or nil at the end.
func (ir *intervalReader) next() (h *hdrhistogram.Histogram, m metrics.Metric, corrected bool, err error) {
	for {
		h, err = ir.r.NextIntervalHistogram()
		if err != nil || h == nil {
			return nil, 0, false, err
		}
		m, corrected, err = parseTag(h.Tag())
		if err != nil {
			ir.unknown++
			continue
		}
		return h, m, corrected, nil
	}
}

// Close closes the log file.
func (ir *intervalReader) Close() error { return ir.f.Close() }

func parseTag(t string) (metrics.Metric, bool, error) {
	name, variant, ok := strings.Cut(t, ".")
	if !ok || (variant != "corrected" && variant != "uncorrected") {
		return 0, false, fmt.Errorf("unknown tag %q", t)
	}
	m, err := metrics.ParseMetric(name)
	return m, variant == "corrected", err
}

// Rebuild summarizes a results directory from intervals.hlog alone, for a run that never
// wrote summary.json. Histograms are exact up to the last complete interval; the tally is the
// last one logged, with calls then in progress counted as aborted. Unless the log has the end
// marker Finalize writes, the summary is marked interrupted.
func Rebuild(dir string) (*Summary, error) {
	path := filepath.Join(dir, FileIntervals)
	s, err := rebuild(path)
	if err != nil {
		return nil, fmt.Errorf("rebuild %s: %w", path, err)
	}
	return s, nil
}

func rebuild(path string) (*Summary, error) {
	notes, err := scanLog(path)
	if err != nil {
		return nil, err
	}
	if !notes.format || notes.params == nil {
		return nil, errors.New("not an rtcomm-harness interval log (no format marker or params)")
	}
	r := run{params: notes.params.Params, start: notes.params.Start, interrupted: true, rebuilt: true}
	for _, m := range metrics.All() {
		r.corrected[m], r.uncorrected[m] = metrics.NewHistogram(), metrics.NewHistogram()
	}
	ir, err := openIntervals(path, notes.validLen)
	if err != nil {
		return nil, err
	}
	defer ir.Close()
	var lastEnd int64
	for {
		h, m, corrected, err := ir.next()
		if err != nil {
			return nil, err
		}
		if h == nil {
			break
		}
		dst := r.uncorrected[m]
		if corrected {
			dst = r.corrected[m]
		}
		if dropped := dst.Merge(h); dropped > 0 {
			return nil, fmt.Errorf("%s: %d values outside the histogram range", h.Tag(), dropped)
		}
		lastEnd = max(lastEnd, h.EndTimeMs())
	}
	r.end = r.start
	if lastEnd > 0 {
		r.end = time.UnixMilli(lastEnd).UTC()
	}
	switch {
	case notes.tally != nil:
		r.tally = notes.tally.Tally.Settled()
		if notes.tally.At.After(r.end) {
			r.end = notes.tally.At
		}
		r.warnings = append(r.warnings, fmt.Sprintf("summary.json was missing: rebuilt from %s with counters as of %s",
			FileIntervals, notes.tally.At.Format(time.RFC3339)))
	default:
		r.warnings = append(r.warnings, fmt.Sprintf("summary.json was missing and %s has no counters: outcomes are unknown", FileIntervals))
	}
	if notes.end != nil {
		r.end, r.interrupted = notes.end.End, notes.end.Interrupted
	}
	if ir.unknown > 0 {
		r.warnings = append(r.warnings, fmt.Sprintf("%d interval histograms with unknown tags were ignored", ir.unknown))
	}
	return summarize(r)
}
