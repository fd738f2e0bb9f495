package results

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// Merge combines the results of shards of one run (each directory loaded with Load) exactly:
// histograms are merged value for value and counters added, never averaged. The window is
// from the earliest start to the latest end, and the intended rate is the sum of the shards'.
// Shard labels must agree on N and not repeat; missing shards are a warning.
func Merge(dirs ...string) (*Summary, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no results directories")
	}
	sums := make([]*Summary, len(dirs))
	for i, d := range dirs {
		s, err := Load(d)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		sums[i] = s
	}
	labels, warnings, err := checkShards(dirs, sums)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	first := sums[0]
	r := run{params: first.Params, shards: labels, start: first.Start, end: first.End, warnings: warnings}
	r.params.Shard, r.params.Rate = "", 0
	for _, m := range metrics.All() {
		r.corrected[m], r.uncorrected[m] = metrics.NewHistogram(), metrics.NewHistogram()
	}
	for i, s := range sums {
		for _, m := range metrics.All() {
			for _, corrected := range []bool{true, false} {
				h, err := s.Histogram(m, corrected)
				if err != nil {
					return nil, fmt.Errorf("merge %s: %w", dirs[i], err)
				}
				dst := r.uncorrected[m]
				if corrected {
					dst = r.corrected[m]
				}
				if dropped := dst.Merge(h); dropped > 0 {
					return nil, fmt.Errorf("merge %s: %s: %d values outside the histogram range", dirs[i], m, dropped)
				}
			}
		}
		if i == 0 {
			r.tally = s.Tally
		} else {
			r.tally = r.tally.Add(s.Tally)
		}
		r.params.Rate += s.Params.Rate
		r.params.Duration = max(r.params.Duration, s.Params.Duration)
		if s.Params.Seed != first.Params.Seed {
			r.params.Seed = 0 // per-shard seeds; each shard's params.json keeps its own
		}
		if s.Start.Before(r.start) {
			r.start = s.Start
		}
		if s.End.After(r.end) {
			r.end = s.End
		}
		r.interrupted = r.interrupted || s.Interrupted
		r.rebuilt = r.rebuilt || s.Rebuilt
		if s.Params.SLO != first.Params.SLO {
			r.warnings = append(r.warnings, fmt.Sprintf("%s: SLO %q differs from %q; the merge judges the latter",
				labels[i], s.Params.SLO, first.Params.SLO))
		}
		for _, w := range s.Warnings {
			r.warnings = append(r.warnings, labels[i]+": "+w)
		}
		// A shard that was not a valid measurement makes the merge invalid too.
		for _, x := range s.Invalid {
			r.invalid = append(r.invalid, labels[i]+": "+x)
		}
	}
	r.shardRuns = shardRuns(labels, sums, r.start)
	if skew := startSkew(r.shardRuns); len(sums) > 1 && skew > maxMergeSkew {
		r.warnings = append(r.warnings, fmt.Sprintf("the shards' load windows started up to %s apart: "+
			"the merged rates are averaged over the union of the windows (start the shards together with load --start-at)",
			skew.Round(time.Millisecond)))
	}
	return summarize(r)
}

// maxMergeSkew is the start skew above which a merge warns that the shards' windows do not
// line up (each --start-at shard starts within milliseconds of the others).
const maxMergeSkew = time.Second

// shardRuns is the per-shard table of a merge.
func shardRuns(labels []string, sums []*Summary, first time.Time) []ShardRun {
	rows := make([]ShardRun, len(sums))
	for i, s := range sums {
		t := s.Tally
		row := ShardRun{Shard: labels[i], Start: s.Start, End: s.End,
			StartOffsetMS: float64(s.Start.Sub(first).Microseconds()) / 1000,
			IntendedRate:  s.Params.Rate, AchievedRate: s.AchievedRate,
			Attempts: t.Attempts, Errors: t.Errors(), Lost: t.Lost, LateStarts: t.LateStarts, MaxLateLagUS: t.MaxLateLagUS,
			SetupP99US: s.Metrics[metrics.Setup.String()].Corrected.P99US,
			Invalid:    s.Invalid}
		if n, ok := s.Params.Extra["endpoints_failed"].(float64); ok {
			row.EndpointsFailed = int(n)
		}
		rows[i] = row
	}
	return rows
}

// startSkew is the spread of the shards' window starts.
func startSkew(rows []ShardRun) time.Duration {
	if len(rows) == 0 {
		return 0
	}
	lo, hi := rows[0].Start, rows[0].Start
	for _, r := range rows[1:] {
		if r.Start.Before(lo) {
			lo = r.Start
		}
		if r.Start.After(hi) {
			hi = r.Start
		}
	}
	return hi.Sub(lo)
}

// checkShards labels each summary and refuses merges that would double count.
func checkShards(dirs []string, sums []*Summary) (labels, warnings []string, err error) {
	labels = make([]string, len(sums))
	seen := map[string]string{}
	count, labelled := -1, 0
	for i, s := range sums {
		if len(s.Shards) > 0 {
			return nil, nil, fmt.Errorf("%s is already a merge of %v", dirs[i], s.Shards)
		}
		labels[i] = s.Params.Shard
		if labels[i] == "" {
			labels[i] = filepath.Base(filepath.Clean(dirs[i]))
			continue
		}
		labelled++
		n, err := shardCount(labels[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", dirs[i], err)
		}
		if count >= 0 && n != count {
			return nil, nil, fmt.Errorf("%s is shard %s but another is of %d shards", dirs[i], labels[i], count)
		}
		count = n
		if prev, dup := seen[labels[i]]; dup {
			return nil, nil, fmt.Errorf("shard %s appears twice (%s and %s)", labels[i], prev, dirs[i])
		}
		seen[labels[i]] = dirs[i]
	}
	switch {
	case labelled > 0 && labelled < len(sums):
		return nil, nil, errors.New("some results are shards and some are not")
	case labelled == 0 && len(sums) > 1:
		warnings = append(warnings, "merged runs carry no shard labels: make sure they ran at the same time against the same target")
	case labelled > 0 && len(seen) < count:
		warnings = append(warnings, fmt.Sprintf("only %d of %d shards merged: the totals cover part of the run", len(seen), count))
	}
	return labels, warnings, nil
}

func shardCount(label string) (int, error) {
	is, ns, ok := strings.Cut(label, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, fmt.Errorf("bad shard label %q (want i/N)", label)
	}
	return n, nil
}

// MergeDir merges shard directories into out (which must not hold results yet): the merged
// summary and .hgrm files, params.json, and an interval log with every shard's intervals in
// time order, so per-second series still add up across shards.
func MergeDir(out string, dirs ...string) (*Summary, error) {
	sum, err := Merge(dirs...)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if _, err := os.Stat(filepath.Join(out, FileSummary)); err == nil {
		return nil, fmt.Errorf("merge: %s already holds results", out)
	}
	logPath := filepath.Join(out, FileIntervals)
	if err := mergeLogs(logPath, sum, dirs); err != nil {
		if !errors.Is(err, os.ErrExist) {
			os.Remove(logPath) // a partial merged log would pass for a complete one
		}
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := sum.WriteDir(out); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return sum, nil
}

// mergeLogs interleaves the shards' interval logs by interval start, one histogram per shard
// in memory at a time, then writes every shard's tallies as ShardTally comments (one per
// shard and second: small next to the histograms) and the merged final tally.
func mergeLogs(path string, sum *Summary, dirs []string) (err error) {
	var readers []*intervalReader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	var shardTallies []ShardTallyNote
	for i, d := range dirs {
		p := filepath.Join(d, FileIntervals)
		notes, err := scanLogTallies(p, func(t tallyNote) {
			shardTallies = append(shardTallies, ShardTallyNote{Shard: sum.Shards[i], At: t.At, Tally: t.Tally})
		})
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		ir, err := openIntervals(p, notes.validLen)
		if err != nil {
			return err
		}
		readers = append(readers, ir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	lw, err := writeLogHeader(bw, paramsDoc{Format: FormatParams, Start: sum.Start, Params: sum.Params})
	if err != nil {
		return err
	}

	heads := make([]*hdrhistogram.Histogram, len(readers))
	advance := func(i int) error {
		h, _, _, err := readers[i].next()
		if err != nil {
			return fmt.Errorf("%s: %w", dirs[i], err)
		}
		heads[i] = h
		return nil
	}
	for i := range readers {
		if err := advance(i); err != nil {
			return err
		}
	}
	for {
		pick := -1
		for i, h := range heads {
			if h != nil && (pick < 0 || h.StartTimeMs() < heads[pick].StartTimeMs()) {
				pick = i
			}
		}
		if pick < 0 {
			break
		}
		if err := lw.OutputIntervalHistogram(heads[pick]); err != nil {
			return err
		}
		if err := advance(pick); err != nil {
			return err
		}
	}
	slices.SortStableFunc(shardTallies, func(a, b ShardTallyNote) int { return a.At.Compare(b.At) })
	for _, n := range shardTallies {
		if err := writeShardTally(lw, n); err != nil {
			return err
		}
	}
	if err := writeTally(lw, sum.End, sum.Tally); err != nil {
		return err
	}
	if err := writeEnd(lw, sum.End, sum.Interrupted); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}
