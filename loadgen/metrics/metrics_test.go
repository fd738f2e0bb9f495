package metrics

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	want := []string{"connect", "register", "service_query", "post_dial_delay", "setup", "ice", "teardown", "setup_failed"}
	if len(All()) != len(want) {
		t.Fatalf("All() has %d metrics, want %d", len(All()), len(want))
	}
	for i, m := range All() {
		if m.String() != want[i] {
			t.Errorf("metric %d = %q, want %q", i, m, want[i])
		}
		got, err := ParseMetric(want[i])
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", want[i], got, err)
		}
	}
	if _, err := ParseMetric("setp"); err == nil || !strings.Contains(err.Error(), "unknown metric") {
		t.Errorf("ParseMetric(setp) error = %v", err)
	}
}

func TestRecordCorrectedAndUncorrected(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	// Intended at t0, sent 300ms late, answered 2ms after sending.
	r.Record(Setup, t0, t0.Add(300*time.Millisecond), t0.Add(302*time.Millisecond))
	s := r.Snapshot()
	if got := s.Corrected[Setup].Max(); !s.Corrected[Setup].ValuesAreEquivalent(got, 302_000) {
		t.Errorf("corrected max = %dµs, want ~302000", got)
	}
	if got := s.Uncorrected[Setup].Max(); !s.Uncorrected[Setup].ValuesAreEquivalent(got, 2_000) {
		t.Errorf("uncorrected max = %dµs, want ~2000", got)
	}
	if n := s.Corrected[Connect].TotalCount(); n != 0 {
		t.Errorf("connect has %d values, want 0", n)
	}
}

func TestRecordClampsOutOfRange(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	r.RecordDurations(ICE, -time.Millisecond, time.Millisecond)
	r.RecordDurations(ICE, 2*time.Minute, time.Millisecond)
	h := r.Histogram(ICE, true)
	if h.TotalCount() != 2 || h.Min() != 0 || !h.ValuesAreEquivalent(h.Max(), HistHighest) {
		t.Errorf("clamped histogram: count %d min %d max %d", h.TotalCount(), h.Min(), h.Max())
	}
	if c := r.Tally().Clamped; c != 2 {
		t.Errorf("clamped = %d, want 2", c)
	}
}

func TestIntervalSplitsAndSnapshotKeepsTotal(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	r.RecordDurations(Setup, 10*time.Millisecond, time.Millisecond)
	r.RecordDurations(Setup, 20*time.Millisecond, time.Millisecond)
	iv := r.Interval()
	if iv[Setup][0] == nil || iv[Setup][0].TotalCount() != 2 || iv[Setup][1].TotalCount() != 2 {
		t.Fatalf("first interval: %v", iv[Setup])
	}
	if iv[Connect][0] != nil {
		t.Errorf("interval has connect values though none were recorded")
	}
	r.RecordDurations(Setup, 30*time.Millisecond, time.Millisecond)
	if got := r.Histogram(Setup, true).TotalCount(); got != 3 {
		t.Errorf("snapshot before second interval has %d values, want 3", got)
	}
	iv = r.Interval()
	if iv[Setup][0].TotalCount() != 1 {
		t.Errorf("second interval has %d values, want 1", iv[Setup][0].TotalCount())
	}
	if iv := r.Interval(); iv[Setup][0] != nil {
		t.Errorf("empty interval returned a histogram")
	}
	if got := r.Histogram(Setup, true).TotalCount(); got != 3 {
		t.Errorf("snapshot after intervals has %d values, want 3", got)
	}
}

// TestRecycledIntervalsStartEmpty: histograms handed back with Recycle come back into use
// empty (no count, no tag, no max of the interval they held), and the totals are untouched.
func TestRecycledIntervalsStartEmpty(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	returned := map[*hdrhistogram.Histogram]bool{}
	for round := range 4 {
		for range round + 1 {
			r.RecordDurations(Setup, time.Duration(10*(round+1))*time.Millisecond, time.Millisecond)
		}
		iv := r.Interval()
		h := iv[Setup][0]
		if h == nil {
			t.Fatalf("round %d: expected an interval histogram, actual none", round)
		}
		if h.TotalCount() != int64(round+1) {
			t.Fatalf("round %d: expected %d values in the interval, actual %d", round, round+1, h.TotalCount())
		}
		if want := int64(10 * (round + 1) * 1000); h.Max() < want*99/100 || h.Max() > want*101/100 {
			t.Errorf("round %d: expected the interval's max near %d µs, actual %d", round, want, h.Max())
		}
		if h.Tag() != "" {
			t.Errorf("round %d: a recycled histogram kept the tag %q", round, h.Tag())
		}
		h.SetTag("written")
		// Interval k hands out what Interval k-1 put in place, from the spares of Recycle k-2.
		if round >= 2 && !returned[h] {
			t.Errorf("round %d: expected a recycled histogram, actual a new one", round)
		}
		returned[iv[Setup][0]], returned[iv[Setup][1]] = true, true
		r.Recycle(iv)
	}
	if got := r.Histogram(Setup, true).TotalCount(); got != 1+2+3+4 {
		t.Errorf("total after recycled intervals: expected 10 values, actual %d", got)
	}
}

func TestConcurrentRecordingWithIntervals(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	const workers, each = 8, 500
	var wg sync.WaitGroup
	var intervalled int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a writer taking intervals while recording goes on
		defer close(done)
		for {
			iv := r.Interval()
			if iv[Setup][0] != nil {
				intervalled += iv[Setup][0].TotalCount()
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.RecordDurations(Metric(i%NumMetrics), time.Duration(w*each+i)*time.Microsecond, time.Microsecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	if iv := r.Interval(); iv[Setup][0] != nil {
		intervalled += iv[Setup][0].TotalCount()
	}
	var total int64
	for _, m := range All() {
		total += r.Histogram(m, true).TotalCount()
	}
	if total != workers*each {
		t.Errorf("recorded %d values, want %d", total, workers*each)
	}
	if got := r.Histogram(Setup, false).TotalCount(); got != intervalled {
		t.Errorf("setup total %d != sum of its intervals %d", got, intervalled)
	}
}

func TestAttemptsEndExactlyOnce(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	a := r.Begin()
	if !a.End(Success, "") {
		t.Fatal("first End did not count")
	}
	if a.End(Failure, "again") {
		t.Error("second End counted")
	}
	b := r.Begin()
	b.End(Rejected, "busy")
	active := r.Begin()
	r.Add(Sent, 5)
	r.Add(Delivered, 3)
	r.Add(Lost, 1)
	live := r.Tally()
	if live.Active() != 1 || live.InFlight != 1 {
		t.Errorf("live tally: active %d in-flight %d, want 1 and 1", live.Active(), live.InFlight)
	}
	if err := live.Check(); err == nil {
		t.Error("Check passed with a call still active")
	}
	r.Close()
	if active.End(Success, "") {
		t.Error("End after Close counted")
	}
	if r.Begin().End(Success, "") {
		t.Error("attempt begun after Close counted")
	}
	r.Add(Sent, 100) // ignored after Close
	final := r.Tally()
	if err := final.Check(); err != nil {
		t.Fatalf("final tally: %v", err)
	}
	want := Outcomes{Success: 1, Rejected: 1, Aborted: 1}
	if final.Attempts != 3 || final.Outcomes != want {
		t.Errorf("final attempts %d outcomes %v, want 3 %v", final.Attempts, final.Outcomes, want)
	}
	if final.Sent != 5 || final.InFlight != 1 {
		t.Errorf("final sent %d in-flight %d, want 5 and 1", final.Sent, final.InFlight)
	}
	if final.Reasons["rejected: busy"] != 1 {
		t.Errorf("reasons = %v", final.Reasons)
	}
}

// TestCloseRacingWithCalls checks the invariants hold however ends and Close interleave.
func TestCloseRacingWithCalls(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		r := NewRecorder()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					a := r.Begin()
					r.Add(Sent, 1)
					if i%3 == 0 {
						r.Add(Delivered, 1)
					}
					a.End(Outcome((w+i)%int(Aborted)), "")
				}
			}()
		}
		if round%2 == 0 {
			r.Close() // while calls run
		}
		wg.Wait()
		r.Close()
		if err := r.Tally().Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestReasonsAreBounded(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	for i := range maxReasons + 10 {
		r.Begin().End(Failure, fmt.Sprintf("no route to user-%d", i))
	}
	r.Begin().End(Failure, strings.Repeat("x", 10_000))
	r.Close()
	tl := r.Tally()
	if len(tl.Reasons) > maxReasons+NumOutcomes {
		t.Errorf("%d distinct reasons kept", len(tl.Reasons))
	}
	if tl.Reasons["failure: (other)"] != 11 {
		t.Errorf("other = %d, want 11", tl.Reasons["failure: (other)"])
	}
	if err := tl.Check(); err != nil {
		t.Error(err)
	}
}

func TestLateStarts(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	for range 3 {
		r.Begin().End(Success, "")
	}
	r.LateStart(15 * time.Millisecond)
	r.LateStart(400 * time.Millisecond)
	r.LateStart(20 * time.Millisecond)
	tl := r.Tally()
	if tl.LateStarts != 3 || tl.MaxLateLag() != 400*time.Millisecond {
		t.Errorf("late %d max %s", tl.LateStarts, tl.MaxLateLag())
	}
	if ratio, ok := tl.LateRatio(); !ok || ratio != 1 {
		t.Errorf("late ratio %v %v", ratio, ok)
	}
}

func TestTallyCheckFindsBrokenInvariants(t *testing.T) {
	t.Parallel()
	good := Tally{Attempts: 3, Outcomes: Outcomes{Success: 2, Timeout: 1}, Sent: 10, Delivered: 7, Lost: 2, InFlight: 1}
	if err := good.Check(); err != nil {
		t.Fatalf("good tally: %v", err)
	}
	cases := map[string]func(*Tally){
		"attempts":  func(t *Tally) { t.Attempts++ },
		"outcomes":  func(t *Tally) { t.Outcomes[Failure]++ },
		"messages":  func(t *Tally) { t.Delivered++ },
		"in-flight": func(t *Tally) { t.InFlight = 0 },
		"reasons":   func(t *Tally) { t.Reasons = map[string]uint64{"timeout": 2} },
		"late":      func(t *Tally) { t.LateStarts = 4 },
	}
	for name, breakIt := range cases {
		bad := good.Add(Tally{})
		breakIt(&bad)
		if err := bad.Check(); err == nil {
			t.Errorf("%s: Check passed on %+v", name, bad)
		}
	}
}

func TestTallyRatiosAndAdd(t *testing.T) {
	t.Parallel()
	a := Tally{Attempts: 10, Outcomes: Outcomes{Success: 7, Failure: 1, Timeout: 1, Aborted: 1}, Sent: 4, Lost: 1, Delivered: 3, MaxLateLagUS: 5}
	b := Tally{Attempts: 5, Outcomes: Outcomes{Success: 5}, Reasons: map[string]uint64{"x": 0}, MaxLateLagUS: 9}
	if r, _ := a.ErrorRatio(); r != 2.0/9 {
		t.Errorf("error ratio %v, want 2/9 (aborted excluded)", r)
	}
	if r, _ := a.TimeoutRatio(); r != 1.0/9 {
		t.Errorf("timeout ratio %v", r)
	}
	if _, ok := (Tally{}).ErrorRatio(); ok {
		t.Error("error ratio of an empty tally is ok")
	}
	s := a.Add(b)
	if s.Attempts != 15 || s.Outcomes[Success] != 12 || s.MaxLateLagUS != 9 || s.Sent != 4 {
		t.Errorf("sum = %+v", s)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
	if a.Reasons != nil {
		t.Error("Add changed its receiver")
	}
}

func TestOutcomesJSON(t *testing.T) {
	t.Parallel()
	o := Outcomes{Success: 3, NoAnswer: 2}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"no_answer":2`) || !strings.Contains(string(b), `"aborted":0`) {
		t.Errorf("json = %s", b)
	}
	var back Outcomes
	if err := json.Unmarshal(b, &back); err != nil || back != o {
		t.Errorf("round trip = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"sucess":1}`), &back); err == nil {
		t.Error("unknown outcome accepted")
	}
}

func TestFormatMicros(t *testing.T) {
	t.Parallel()
	for us, want := range map[int64]string{0: "0µs", 850: "850µs", 1000: "1.00ms", 23_100: "23.1ms", 999_000: "999ms", 1_200_000: "1.20s", 61_000_000: "61.0s", 9_999: "10.0ms", 99_999: "100ms"} {
		if got := FormatMicros(us); got != want {
			t.Errorf("FormatMicros(%d) = %q, want %q", us, got, want)
		}
	}
}

// TestTrackedInFlightCanFail: with a tracker, in flight is what the tracker counts, not the
// difference of the other counters, so a receiver that counts one delivery twice (or a
// sender that misses a send) breaks the balance that Check verifies.
func TestTrackedInFlightCanFail(t *testing.T) {
	t.Parallel()
	var open atomic.Uint64
	r := NewRecorder()
	r.TrackInFlight("ledger", open.Load)
	r.Add(Sent, 3)
	open.Store(3)
	r.Add(Delivered, 1)
	open.Store(2)
	if tl := r.Tally(); tl.InFlight != 2 || tl.Check() != nil {
		t.Fatalf("consistent counts: expected in flight 2 and a balance, actual %d, %v", tl.InFlight, tl.Check())
	}
	r.Add(Delivered, 1) // counted, but the tracker still holds the message: a double count
	r.Close()
	final := r.Tally()
	if final.InFlight != 2 {
		t.Errorf("final in flight: expected the tracker's 2, actual %d", final.InFlight)
	}
	if err := final.Check(); err == nil || !strings.Contains(err.Error(), "sent 3 != delivered 2 + lost 0 + in-flight 2") {
		t.Errorf("double-counted delivery: expected Check to fail with the balance, actual %v", err)
	}
	// Without a tracker the recorder derives in flight (and balances by construction).
	r2 := NewRecorder()
	r2.Add(Sent, 2)
	if tl := r2.Tally(); tl.InFlight != 2 {
		t.Errorf("untracked: expected derived in flight 2, actual %d", tl.InFlight)
	}
}
