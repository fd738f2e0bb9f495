package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Counter names a message counter that callers add to.
type Counter uint8

// Message counters. Sent, Delivered and Lost must balance with the in-flight count of the
// trackers (TrackInFlight): each sent message is later counted once as delivered or lost,
// or is in flight when the run ends.
const (
	Sent       Counter = iota // a message the harness expects to see arrive was published
	Delivered                 // such a message arrived intact at its receiver
	Lost                      // such a message was given up on
	Unexpected                // a message nothing of ours caused arrived
	OutOfOrder                // an ICE candidate arrived after a later one on the same path
	Malformed                 // a payload was not valid rtcomm JSON
	Duplicated                // another copy of a delivered message arrived
	Misrouted                 // a message arrived at the wrong inbox or with the wrong sender level
	Altered                   // a message arrived with its content or transID changed
	numCounters
)

// maxReasons bounds the distinct failure reasons kept, so a target that puts IDs in its
// reasons cannot grow memory without limit; further reasons are counted as "(other)".
const maxReasons = 64

// maxReasonLen bounds one reason's length; reasons come from the target.
const maxReasonLen = 200

// Recorder records latencies and accounting for one run. All methods are safe for
// concurrent use. Recording takes one per-metric mutex, so metrics do not contend.
type Recorder struct {
	series [NumMetrics]series

	// attempts: begin/end hold mu for reading, Close for writing, so an attempt that ends
	// concurrently with Close is counted exactly once (as its outcome or as aborted).
	mu       sync.RWMutex
	attempts atomic.Uint64
	outcomes [NumOutcomes]atomic.Uint64
	reasonMu sync.Mutex
	reasons  map[string]uint64

	counters [numCounters]atomic.Uint64
	late     atomic.Uint64
	lateMax  atomic.Int64 // µs
	clamped  atomic.Uint64

	trackMu  sync.Mutex
	trackers map[any]func() uint64 // TrackInFlight: who counts open messages

	closed atomic.Bool
	final  Tally // set by Close

	// spare holds emptied interval histograms handed back by Recycle: each is 139 KB, and a
	// new one for every metric and interval was a tenth of a load generator's allocations.
	spareMu sync.Mutex
	spare   []*hdrhistogram.Histogram
}

// TrackInFlight registers f as a count of the checked messages its owner holds that are
// neither delivered nor lost; the tally's InFlight is the sum over all trackers, read from
// the messages' own states, so Tally.Check compares independently kept counts. key
// identifies the owner (registering it again replaces f). A recorder without trackers
// derives InFlight as Sent - Delivered - Lost, which balances by construction: every
// recorder the load generator uses for messages has a tracker.
func (r *Recorder) TrackInFlight(key any, f func() uint64) {
	r.trackMu.Lock()
	if r.trackers == nil {
		r.trackers = make(map[any]func() uint64)
	}
	r.trackers[key] = f
	r.trackMu.Unlock()
}

// inFlight returns the trackers' count, and false without trackers.
func (r *Recorder) inFlight() (uint64, bool) {
	r.trackMu.Lock()
	defer r.trackMu.Unlock()
	if len(r.trackers) == 0 {
		return 0, false
	}
	var n uint64
	for _, f := range r.trackers {
		n += f()
	}
	return n, true
}

// series is one metric: the current interval and the total of earlier intervals, each
// corrected (index 0) and uncorrected (index 1). Lock order: totMu, then mu.
type series struct {
	mu    sync.Mutex
	cur   [2]*hdrhistogram.Histogram
	totMu sync.Mutex
	tot   [2]*hdrhistogram.Histogram
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{reasons: make(map[string]uint64)}
	for i := range r.series {
		s := &r.series[i]
		for v := range 2 {
			s.cur[v] = NewHistogram()
			s.tot[v] = NewHistogram()
		}
	}
	return r
}

// Record records one latency of m: done-intended into the corrected histogram and done-sent
// into the uncorrected one. For steps that are not scheduled (e.g. ICE), pass intended=sent.
// Values outside 0..60 s are clamped and counted. After Close it does nothing.
func (r *Recorder) Record(m Metric, intended, sent, done time.Time) {
	r.RecordDurations(m, done.Sub(intended), done.Sub(sent))
}

// RecordDurations records already computed corrected and uncorrected latencies of m.
func (r *Recorder) RecordDurations(m Metric, corrected, uncorrected time.Duration) {
	if int(m) >= NumMetrics {
		return
	}
	c, cc := toMicros(corrected)
	u, uc := toMicros(uncorrected)
	s := &r.series[m]
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under mu: Close passes every mu after setting closed, so no value lands after
	// Close returns and the final interval holds everything.
	if r.closed.Load() {
		return
	}
	// Cannot fail: toMicros keeps values within the histogram's range.
	_ = s.cur[0].RecordValue(c)
	_ = s.cur[1].RecordValue(u)
	if cc || uc {
		r.clamped.Add(1)
	}
}

func toMicros(d time.Duration) (v int64, clamped bool) {
	v = d.Microseconds()
	switch {
	case v < 0:
		return 0, true
	case v > HistHighest:
		return HistHighest, true
	}
	return v, false
}

// Interval returns the histograms recorded since the previous call (corrected and
// uncorrected per metric; nil pairs where nothing was recorded) and folds them into the
// run's totals. It has one consumer, the results writer, which calls it once per log
// interval; the returned histograms belong to the caller.
func (r *Recorder) Interval() [NumMetrics][2]*hdrhistogram.Histogram {
	var out [NumMetrics][2]*hdrhistogram.Histogram
	for i := range r.series {
		s := &r.series[i]
		s.totMu.Lock()
		s.mu.Lock()
		if s.cur[0].TotalCount() == 0 && s.cur[1].TotalCount() == 0 {
			s.mu.Unlock()
			s.totMu.Unlock()
			continue
		}
		out[i] = s.cur
		s.cur = [2]*hdrhistogram.Histogram{r.emptyHistogram(), r.emptyHistogram()}
		s.mu.Unlock()
		// Merging outside mu keeps recorders unblocked; holding totMu keeps Snapshot from
		// seeing the interval in neither place.
		s.tot[0].Merge(out[i][0])
		s.tot[1].Merge(out[i][1])
		s.totMu.Unlock()
	}
	return out
}

// Recycle hands back the histograms of an Interval the caller has finished with (written
// out): they are emptied and reused for later intervals. Nothing may use them afterwards.
func (r *Recorder) Recycle(iv [NumMetrics][2]*hdrhistogram.Histogram) {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	for _, pair := range iv {
		for _, h := range pair {
			if h != nil && len(r.spare) < 2*NumMetrics {
				h.Reset()
				r.spare = append(r.spare, h)
			}
		}
	}
}

// emptyHistogram returns a recycled histogram, or a new one.
func (r *Recorder) emptyHistogram() *hdrhistogram.Histogram {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	if n := len(r.spare); n > 0 {
		h := r.spare[n-1]
		r.spare[n-1] = nil
		r.spare = r.spare[:n-1]
		return h
	}
	return NewHistogram()
}

// Histogram returns a copy of everything recorded so far for m (empty for an unknown m).
func (r *Recorder) Histogram(m Metric, corrected bool) *hdrhistogram.Histogram {
	if int(m) >= NumMetrics {
		return NewHistogram()
	}
	v := 1
	if corrected {
		v = 0
	}
	s := &r.series[m]
	s.totMu.Lock()
	defer s.totMu.Unlock()
	h := s.tot[v].Clone()
	s.mu.Lock()
	cur := s.cur[v].Clone()
	s.mu.Unlock()
	h.Merge(cur)
	return h
}

// Snapshot is a copy of a recorder's state: cumulative histograms and the tally.
type Snapshot struct {
	Corrected   [NumMetrics]*hdrhistogram.Histogram // from the intended start time
	Uncorrected [NumMetrics]*hdrhistogram.Histogram // from the actual send time
	Tally       Tally
}

// Snapshot returns a copy of everything recorded so far.
func (r *Recorder) Snapshot() Snapshot {
	var s Snapshot
	for _, m := range All() {
		s.Corrected[m] = r.Histogram(m, true)
		s.Uncorrected[m] = r.Histogram(m, false)
	}
	s.Tally = r.Tally()
	return s
}

// Attempt is one call attempt; End it exactly once.
type Attempt struct {
	r    *Recorder
	done atomic.Bool
}

// Begin counts a new call attempt. After Close it returns an attempt that counts nothing.
func (r *Recorder) Begin() *Attempt {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := &Attempt{r: r}
	if r.closed.Load() {
		a.done.Store(true)
		return a
	}
	r.attempts.Add(1)
	return a
}

// End records the attempt's outcome and, for anything but success, its reason. It reports
// whether it counted: false if the attempt already ended or the run was closed (and the
// attempt counted as aborted).
func (a *Attempt) End(o Outcome, reason string) bool {
	r := a.r
	r.mu.RLock()
	defer r.mu.RUnlock()
	if int(o) >= NumOutcomes || r.closed.Load() || !a.done.CompareAndSwap(false, true) {
		return false
	}
	if o != Success {
		key := o.String()
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen] + "..."
		}
		if reason != "" {
			key += ": " + reason
		}
		r.reasonMu.Lock()
		if _, ok := r.reasons[key]; !ok && len(r.reasons) >= maxReasons {
			key = o.String() + ": (other)"
		}
		r.reasons[key]++
		r.reasonMu.Unlock()
	}
	r.outcomes[o].Add(1)
	return true
}

// Add adds n to a message counter. After Close it does nothing.
func (r *Recorder) Add(c Counter, n uint64) {
	if c < numCounters && !r.closed.Load() {
		r.counters[c].Add(n)
	}
}

// LateStart counts a call the generator started lag later than intended.
func (r *Recorder) LateStart(lag time.Duration) {
	if r.closed.Load() {
		return
	}
	r.late.Add(1)
	us := lag.Microseconds()
	for {
		cur := r.lateMax.Load()
		if us <= cur || r.lateMax.CompareAndSwap(cur, us) {
			return
		}
	}
}

// Tally returns the accounting so far. Before Close, calls in progress are Active and
// messages not yet delivered or lost are InFlight; after Close it returns the final tally.
func (r *Recorder) Tally() Tally {
	if r.closed.Load() {
		r.mu.RLock() // Close may still be writing final
		defer r.mu.RUnlock()
		return r.final.clone()
	}
	return r.tally()
}

// tally reads outcomes before attempts and delivered/lost before sent: every end follows its
// begin, so the copy never shows more ends than attempts or more arrivals than sends.
func (r *Recorder) tally() Tally {
	var t Tally
	for i := range t.Outcomes {
		t.Outcomes[i] = r.outcomes[i].Load()
	}
	r.reasonMu.Lock()
	t.Reasons = maps.Clone(r.reasons)
	r.reasonMu.Unlock()
	t.Attempts = r.attempts.Load()
	t.Delivered = r.counters[Delivered].Load()
	t.Lost = r.counters[Lost].Load()
	t.Sent = r.counters[Sent].Load()
	if n, ok := r.inFlight(); ok {
		t.InFlight = n
	} else if done := t.Delivered + t.Lost; t.Sent > done {
		t.InFlight = t.Sent - done
	} // else: more arrivals than sends, a caller bug that Check reports.
	t.Duplicated = r.counters[Duplicated].Load()
	t.Misrouted = r.counters[Misrouted].Load()
	t.Altered = r.counters[Altered].Load()
	t.Unexpected = r.counters[Unexpected].Load()
	t.OutOfOrder = r.counters[OutOfOrder].Load()
	t.Malformed = r.counters[Malformed].Load()
	t.LateStarts = r.late.Load()
	t.MaxLateLagUS = r.lateMax.Load()
	t.Clamped = r.clamped.Load()
	return t
}

// Close ends the run: attempts still active are counted as aborted, messages not yet
// delivered or lost stay in flight, and later recording is ignored. It is idempotent.
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return
	}
	r.closed.Store(true)
	for i := range r.series {
		r.series[i].mu.Lock()
		r.series[i].mu.Unlock() //nolint:staticcheck // barrier: see RecordDurations
	}
	r.final = r.tally().Settled()
}
