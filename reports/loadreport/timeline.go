package loadreport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

// maxBins bounds the timeline (a 24 h soak at one bin per second would be 86 400 points):
// longer runs get wider bins.
const maxBins = 1200

// tallyNote is the cumulative tally the writer logs after every interval.
type tallyNote struct {
	At    time.Time     `json:"at"`
	Tally metrics.Tally `json:"tally"`
}

// timeline reads the interval logs of dirs and bins their intervals by start time into
// seconds from start (wider bins for long runs). Each log's cumulative tallies give attempts
// and errors per bin; a merged log gives them from its ShardTally comments (its own Tally
// is only the final one).
func timeline(dirs []string, start time.Time) ([]Interval, error) {
	type bin struct {
		hists          map[metrics.Metric]*hdrhistogram.Histogram
		attempts, errs uint64
		hasCounts      bool
	}
	bins := map[int]*bin{}
	get := func(i int) *bin {
		b, ok := bins[i]
		if !ok {
			b = &bin{hists: map[metrics.Metric]*hdrhistogram.Histogram{}}
			bins[i] = b
		}
		return b
	}
	var lastEnd time.Time
	var logs []logContent
	for _, d := range dirs {
		ld, err := readLog(filepath.Join(d, results.FileIntervals))
		if errors.Is(err, os.ErrNotExist) {
			continue // a directory written by WriteDir alone has no log: no timeline from it
		}
		if err != nil {
			return nil, err
		}
		logs = append(logs, ld)
		for _, h := range ld.hists {
			if e := time.UnixMilli(h.EndTimeMs()); e.After(lastEnd) {
				lastEnd = e
			}
		}
	}
	if len(logs) == 0 || !lastEnd.After(start) {
		return nil, nil
	}
	width := time.Second
	if span := lastEnd.Sub(start); span > maxBins*time.Second {
		width = time.Duration(math.Ceil(span.Seconds()/maxBins)) * time.Second
	}
	index := func(t time.Time) int { return max(0, int(t.Sub(start)/width)) }
	for _, ld := range logs {
		for _, h := range ld.hists {
			m, corrected, ok := parseTag(h.Tag())
			if !ok || !corrected {
				continue
			}
			b := get(index(time.UnixMilli(h.StartTimeMs())))
			dst, ok := b.hists[m]
			if !ok {
				dst = metrics.NewHistogram()
				b.hists[m] = dst
			}
			dst.Merge(h)
		}
		for _, series := range ld.tallies {
			if len(series) < 2 {
				continue // a merged log's own Tally: only the final counters
			}
			// A tally at t covers the interval that ended at t: its bin holds t minus a moment.
			// The final tally repeats the last one at the end of the window: no empty bin for it.
			prev := metrics.Tally{}
			for _, tn := range series {
				a, e := sub(tn.Tally.Attempts, prev.Attempts), sub(tn.Tally.Errors(), prev.Errors())
				prev = tn.Tally
				i := index(tn.At.Add(-time.Millisecond))
				if _, ok := bins[i]; !ok && a == 0 && e == 0 {
					continue
				}
				b := get(i)
				b.hasCounts = true
				b.attempts += a
				b.errs += e
			}
		}
	}
	n := 0
	for i := range bins {
		n = max(n, i+1)
	}
	out := make([]Interval, n)
	for i := range out {
		iv := Interval{T: (time.Duration(i) * width).Seconds(), Metrics: map[string]IntervalStats{}}
		if b, ok := bins[i]; ok {
			for m, h := range b.hists {
				if h.TotalCount() == 0 {
					continue
				}
				iv.Metrics[m.String()] = IntervalStats{Count: h.TotalCount(), P50US: h.ValueAtQuantile(50), P99US: h.ValueAtQuantile(99), MaxUS: h.Max()}
			}
			if b.hasCounts {
				a, e := b.attempts, b.errs
				iv.Attempts, iv.Errors = &a, &e
			}
		}
		out[i] = iv
	}
	return out, nil
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func parseTag(t string) (metrics.Metric, bool, bool) {
	name, variant, ok := strings.Cut(t, ".")
	if !ok || (variant != "corrected" && variant != "uncorrected") {
		return 0, false, false
	}
	m, err := metrics.ParseMetric(name)
	return m, variant == "corrected", err == nil
}

type logContent struct {
	hists []*hdrhistogram.Histogram
	// tallies holds the cumulative tally series of the log: its own Tally comments first,
	// then one series per shard of a merged log (ShardTally comments), each in time order.
	tallies [][]tallyNote
}

// readLog reads the complete lines of an interval log (a crashed run can leave a torn last
// line, which is ignored): its histograms with hdrhistogram-go's reader, and the Tally notes.
func readLog(path string) (logContent, error) {
	var lc logContent
	b, err := os.ReadFile(path)
	if err != nil {
		return lc, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var own []tallyNote
	shards := map[string]int{} // shard label -> index in lc.tallies
	for sc.Scan() {
		line := sc.Text()
		if body, ok := strings.CutPrefix(line, "#[Tally: "); ok {
			var tn tallyNote
			if err := json.Unmarshal([]byte(strings.TrimSuffix(body, "]")), &tn); err != nil {
				return lc, fmt.Errorf("%s: tally note: %w", path, err)
			}
			own = append(own, tn)
			continue
		}
		if body, ok := strings.CutPrefix(line, "#"+results.ShardTallyPrefix); ok {
			var sn results.ShardTallyNote
			if err := json.Unmarshal([]byte(strings.TrimSuffix(body, "]")), &sn); err != nil {
				return lc, fmt.Errorf("%s: shard tally note: %w", path, err)
			}
			i, ok := shards[sn.Shard]
			if !ok {
				i = len(lc.tallies)
				shards[sn.Shard] = i
				lc.tallies = append(lc.tallies, nil)
			}
			lc.tallies[i] = append(lc.tallies[i], tallyNote{At: sn.At, Tally: sn.Tally})
		}
	}
	if err := sc.Err(); err != nil {
		return lc, fmt.Errorf("%s: %w", path, err)
	}
	lc.tallies = append([][]tallyNote{own}, lc.tallies...)
	rd := hdrhistogram.NewHistogramLogReader(bytes.NewReader(b))
	for {
		h, err := rd.NextIntervalHistogram()
		if err != nil {
			return lc, fmt.Errorf("%s: %w", path, err)
		}
		if h == nil {
			return lc, nil
		}
		lc.hists = append(lc.hists, h)
	}
}
