package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/slo"
)

// Summary is the content of summary.json: everything a report needs about one run or a
// merge of shards. Histograms are included in full so summaries merge exactly.
type Summary struct {
	Format       string                   `json:"format"`           // FormatSummary
	Params       Params                   `json:"params"`           // merged: Rate is the sum over shards
	Shards       []string                 `json:"shards,omitempty"` // merged: the "i/N" of each shard
	Start        time.Time                `json:"start"`
	End          time.Time                `json:"end"`           // end of the load window (not of draining)
	DurationS    float64                  `json:"duration_s"`    // End-Start in seconds
	Interrupted  bool                     `json:"interrupted"`   // the run stopped before its duration
	Rebuilt      bool                     `json:"rebuilt"`       // rebuilt from intervals.hlog, not finalized
	AchievedRate float64                  `json:"achieved_rate"` // call attempts per second over Start..End
	Goodput      float64                  `json:"goodput"`       // successful calls per second over Start..End
	Metrics      map[string]MetricSummary `json:"metrics"`       // every metric, by name
	Tally        metrics.Tally            `json:"tally"`         // outcomes and counters, closed
	SLO          slo.Verdicts             `json:"slo"`           // judgement of Params.SLO, in spec order
	SLOPassed    bool                     `json:"slo_passed"`    // no verdict failed (true without SLOs)
	Warnings     []string                 `json:"warnings"`      // reasons to distrust or qualify the numbers
	// Invalid lists why the run is not a valid measurement (interrupted, messages left in
	// flight by a finished run, accounting that does not balance); empty when valid. An
	// invalid run's SLO verdicts are no verdict on the target.
	Invalid []string `json:"invalid,omitempty"`
	// ShardRuns (merged runs) has one row per shard, in merge order: a weak or late node
	// shows here even when the totals look fine.
	ShardRuns []ShardRun `json:"shard_runs,omitempty"`
	// Baseline is present when the run also relayed its messages as raw MQTT (--baseline).
	Baseline *Baseline `json:"baseline,omitempty"`
	// Check is present when the passive protocol checker judged the run's traffic (--check).
	Check *Check `json:"check,omitempty"`
}

// Check is what the passive protocol checker found in a run's traffic (load --check).
type Check struct {
	// Mode is where the checker sat: "hook" (inside the embedded broker: every inbound
	// publish, with the client that sent it) or "subscription" (subscribed to <topic path>#).
	Mode     string `json:"mode"`
	Observed uint64 `json:"observed"` // publishes judged
	Findings uint64 `json:"findings"` // requirements broken, one per finding
	// ByRequirement groups the findings per requirement and blamed participant, most first.
	ByRequirement []CheckGroup `json:"by_requirement"`
	Bundle        string       `json:"bundle"` // the verdict bundle and findings, relative to the results directory
}

// CheckGroup counts one requirement's findings against one participant.
type CheckGroup struct {
	Requirement string    `json:"requirement"`
	Participant string    `json:"participant"` // endpoint ID, MQTT client ID, or "connector"
	Findings    uint64    `json:"findings"`
	Evidence    uint64    `json:"evidence"` // messages cited as evidence by these findings
	First       time.Time `json:"first"`    // when the first of them was found
	Example     string    `json:"example"`  // the first one, "expected ..., actual ..."
}

// Baseline compares the rtcomm traffic of a run with the same message count and sizes relayed
// as raw MQTT (publisher -> subscriber on the same broker, no rtcomm logic) in the same run.
type Baseline struct {
	Kind      string  `json:"kind"`       // "raw_mqtt_relay"
	Messages  uint64  `json:"messages"`   // raw messages published
	Bytes     uint64  `json:"bytes"`      // their payload bytes
	Delivered uint64  `json:"delivered"`  // raw messages that arrived
	Lost      uint64  `json:"lost"`       // raw messages that did not arrive in time
	DurationS float64 `json:"duration_s"` // first publish .. last arrival
	Rate      float64 `json:"rate"`       // raw messages delivered per second: the broker's relay limit as measured
	Latency   Stats   `json:"latency"`    // raw one-way latency (µs)
	// The run's rtcomm messages as received by the simulated endpoints (through the connector).
	RtcommMessages uint64  `json:"rtcomm_messages"`
	RtcommBytes    uint64  `json:"rtcomm_bytes"`
	RtcommRate     float64 `json:"rtcomm_rate"` // rtcomm messages delivered per second over the load window
	// Ratio is RtcommRate / Rate. It says how close the connector got to the broker's own
	// limit only when the run offered more than the target sustains (a saturating run).
	Ratio float64 `json:"ratio"`
	Note  string  `json:"note,omitempty"`
}

// ShardRun is one shard's part of a merged run.
type ShardRun struct {
	Shard string    `json:"shard"` // "i/N", or the directory name of an unlabelled run
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// StartOffsetMS is how long after the earliest shard this one started its window: the
	// skew of a synchronized start (--start-at).
	StartOffsetMS float64 `json:"start_offset_ms"`
	IntendedRate  float64 `json:"intended_rate"` // this shard's share of the offered rate
	AchievedRate  float64 `json:"achieved_rate"` // its attempts per second over its own window
	Attempts      uint64  `json:"attempts"`
	Errors        uint64  `json:"errors"`          // completed calls that did not succeed
	Lost          uint64  `json:"lost"`            // checked messages lost
	LateStarts    uint64  `json:"late_starts"`     // calls it started over the late threshold behind schedule
	MaxLateLagUS  int64   `json:"max_late_lag_us"` // its worst late start
	SetupP99US    int64   `json:"setup_p99_us"`    // corrected setup p99 of its calls
	// EndpointsFailed are the shard's endpoints that did not come up (params extra).
	EndpointsFailed int      `json:"endpoints_failed"`
	Invalid         []string `json:"invalid,omitempty"`
}

// NewLatencyStats summarizes a latency histogram (µs) the way metrics are summarized.
func NewLatencyStats(h *hdrhistogram.Histogram) (Stats, error) { return newStats(h) }

// MetricSummary is one metric measured both ways.
type MetricSummary struct {
	Corrected   Stats `json:"corrected"`   // from the intended start: what users would see
	Uncorrected Stats `json:"uncorrected"` // from the actual send: hides generator stalls
}

// Stats are one histogram's headline numbers (microseconds) and the histogram itself.
type Stats struct {
	Count     int64   `json:"count"`
	MinUS     int64   `json:"min_us"`
	MeanUS    float64 `json:"mean_us"`
	P50US     int64   `json:"p50_us"`
	P90US     int64   `json:"p90_us"`
	P99US     int64   `json:"p99_us"`
	P999US    int64   `json:"p99_9_us"`
	MaxUS     int64   `json:"max_us"`
	Histogram string  `json:"histogram"` // HdrHistogram V2 compressed encoding, base64 ("HISTF...")
}

func newStats(h *hdrhistogram.Histogram) (Stats, error) {
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{Count: h.TotalCount(), Histogram: string(enc)}
	if s.Count > 0 {
		s.MinUS, s.MeanUS, s.MaxUS = h.Min(), math.Round(h.Mean()*10)/10, h.Max()
		s.P50US, s.P90US = h.ValueAtQuantile(50), h.ValueAtQuantile(90)
		s.P99US, s.P999US = h.ValueAtQuantile(99), h.ValueAtQuantile(99.9)
	}
	return s, nil
}

// decode returns the stored histogram, checked against the stored count.
func (s Stats) decode() (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(s.Histogram))
	if err != nil {
		return nil, err
	}
	if h.TotalCount() != s.Count {
		return nil, fmt.Errorf("histogram holds %d values, count says %d", h.TotalCount(), s.Count)
	}
	return h, nil
}

// Histogram returns the full histogram of m (corrected or not), decoded from the summary.
func (s *Summary) Histogram(m metrics.Metric, corrected bool) (*hdrhistogram.Histogram, error) {
	ms, ok := s.Metrics[m.String()]
	if !ok {
		return nil, fmt.Errorf("summary has no metric %s", m)
	}
	st := ms.Uncorrected
	if corrected {
		st = ms.Corrected
	}
	h, err := st.decode()
	if err != nil {
		return nil, fmt.Errorf("metric %s: %w", m, err)
	}
	return h, nil
}

// Latency implements slo.Source with the corrected histogram.
func (s *Summary) Latency(m metrics.Metric, percentile float64) (int64, bool) {
	h, err := s.Histogram(m, true)
	if err != nil || h.TotalCount() == 0 {
		return 0, false
	}
	if percentile >= 100 {
		return h.Max(), true
	}
	return h.ValueAtQuantile(percentile), true
}

// Counts implements slo.Source.
func (s *Summary) Counts() metrics.Tally { return s.Tally }

// Violations implements slo.Source: the checker's findings, if a checker ran.
func (s *Summary) Violations() (uint64, bool) {
	if s.Check == nil {
		return 0, false
	}
	return s.Check.Findings, true
}

// CallRate implements slo.Source.
func (s *Summary) CallRate() float64 { return s.AchievedRate }

var _ slo.Source = (*Summary)(nil)

// Passed reports whether every SLO was met (true without SLOs).
func (s *Summary) Passed() bool { return !s.SLO.AnyFailed() }

// run is what a summary is computed from.
type run struct {
	params      Params
	shards      []string
	start, end  time.Time
	corrected   [metrics.NumMetrics]*hdrhistogram.Histogram
	uncorrected [metrics.NumMetrics]*hdrhistogram.Histogram
	tally       metrics.Tally // closed
	interrupted bool
	rebuilt     bool
	warnings    []string // from the source (rebuild notes, shard warnings)
	invalid     []string // from the source (Writer.AddInvalid, shards' Invalid)
	shardRuns   []ShardRun
	check       *Check // from the source (Writer.SetCheck); judged by a violations SLO
}

// summarize computes a summary, judges the SLOs and adds validity warnings.
func summarize(r run) (*Summary, error) {
	s := &Summary{
		Format:      FormatSummary,
		Params:      r.params,
		Shards:      r.shards,
		Start:       r.start.Round(0).UTC(),
		End:         r.end.Round(0).UTC(),
		Interrupted: r.interrupted,
		Rebuilt:     r.rebuilt,
		Metrics:     make(map[string]MetricSummary, metrics.NumMetrics),
		Tally:       r.tally,
		Warnings:    append([]string{}, r.warnings...),
		Check:       r.check,
	}
	window := r.end.Sub(r.start)
	s.DurationS = window.Seconds()
	if window > 0 {
		s.AchievedRate = float64(r.tally.Attempts) / window.Seconds()
		s.Goodput = float64(r.tally.Outcomes[metrics.Success]) / window.Seconds()
	}
	for _, m := range metrics.All() {
		c, u := r.corrected[m], r.uncorrected[m]
		if c == nil {
			c = metrics.NewHistogram()
		}
		if u == nil {
			u = metrics.NewHistogram()
		}
		cs, err := newStats(c)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", m, err)
		}
		us, err := newStats(u)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", m, err)
		}
		s.Metrics[m.String()] = MetricSummary{Corrected: cs, Uncorrected: us}
	}
	s.SLO = slo.Verdicts{}
	if ths, err := slo.Parse(r.params.SLO); err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("SLO spec not judged: %v", err))
	} else {
		s.SLO = slo.Evaluate(ths, s)
	}
	s.SLOPassed = s.Passed()
	s.Warnings = append(s.Warnings, validityWarnings(s)...)
	s.Invalid = append(append([]string(nil), r.invalid...), invalidity(s)...)
	s.ShardRuns = r.shardRuns
	return s, nil
}

// invalidity says why a run is not a valid measurement.
func invalidity(s *Summary) []string {
	var why []string
	t := s.Tally
	if s.Interrupted {
		why = append(why, fmt.Sprintf("the run was interrupted after %.1fs of %s", s.DurationS, time.Duration(s.Params.Duration)))
	}
	if t.InFlight > 0 && !s.Interrupted {
		why = append(why, fmt.Sprintf("%d checked messages were still in flight at the end of a finished run: the drain did not settle them", t.InFlight))
	}
	if err := t.Check(); err != nil {
		why = append(why, fmt.Sprintf("accounting does not balance: %v", err))
	}
	return why
}

// validityWarnings says what makes the numbers less than a clean measurement.
func validityWarnings(s *Summary) []string {
	var w []string
	t := s.Tally
	if s.Interrupted {
		w = append(w, fmt.Sprintf("run interrupted after %.1fs of %s: results cover only that window",
			s.DurationS, time.Duration(s.Params.Duration)))
	}
	if t.LateStarts > 0 {
		r, _ := t.LateRatio()
		w = append(w, fmt.Sprintf("%d of %d calls (%.2f%%) started late by more than %s (worst %s): "+
			"the generator fell behind its schedule; corrected latencies include the delay but the offered load was bunched",
			t.LateStarts, t.Attempts, 100*r, time.Duration(s.Params.LateThreshold), t.MaxLateLag()))
	}
	if want := s.Params.Rate * s.DurationS; want > 0 && float64(t.Attempts) < want-3*math.Sqrt(want)-1 {
		w = append(w, fmt.Sprintf("achieved rate %.1f/s is below the intended %g/s (%d of %.0f calls started)",
			s.AchievedRate, s.Params.Rate, t.Attempts, want))
	}
	if n := t.Outcomes[metrics.Aborted]; n > 0 {
		w = append(w, fmt.Sprintf("%d calls were still in progress when the run ended and count as aborted", n))
	}
	if t.InFlight > 0 {
		w = append(w, fmt.Sprintf("%d checked messages were neither delivered nor lost when the run ended", t.InFlight))
	}
	if t.Clamped > 0 {
		w = append(w, fmt.Sprintf("%d latencies fell outside 0..%s and were clamped",
			t.Clamped, time.Duration(metrics.HistHighest)*time.Microsecond))
	}
	if err := t.Check(); err != nil {
		w = append(w, fmt.Sprintf("accounting does not balance: %v", err))
	}
	return w
}

// Load reads a results directory's summary.json, or rebuilds the summary from
// intervals.hlog when summary.json is missing (a run that crashed or was killed).
func Load(dir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileSummary))
	if errors.Is(err, os.ErrNotExist) {
		return Rebuild(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	s, err := DecodeSummary(b)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, FileSummary), err)
	}
	return s, nil
}

// DecodeSummary parses summary.json content and checks its format and histograms.
func DecodeSummary(b []byte) (*Summary, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, err
	}
	if probe.Format != FormatSummary {
		return nil, fmt.Errorf("unsupported summary format %q (want %q)", probe.Format, FormatSummary)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	for _, m := range metrics.All() {
		if _, ok := s.Metrics[m.String()]; !ok && m == metrics.SetupFailed {
			// Summaries written before setup_failed existed: no such values were recorded.
			empty, err := newStats(metrics.NewHistogram())
			if err != nil {
				return nil, err
			}
			s.Metrics[m.String()] = MetricSummary{Corrected: empty, Uncorrected: empty}
		}
		for _, corrected := range []bool{true, false} {
			if _, err := s.Histogram(m, corrected); err != nil {
				return nil, err
			}
		}
	}
	return &s, nil
}

// Encode returns the summary as indented JSON.
func (s *Summary) Encode() ([]byte, error) { return marshalJSON(s, true) }

// WriteDir writes params.json, the .hgrm files and summary.json (last) into dir. It does not
// write an interval log; MergeDir and the Writer do.
func (s *Summary) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pb, err := marshalJSON(paramsDoc{Format: FormatParams, Start: s.Start, Params: s.Params}, true)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, FileParams), pb); err != nil {
		return err
	}
	return s.writeOutputs(dir)
}

// writeOutputs writes the .hgrm files, then summary.json, whose presence marks the
// directory complete.
func (s *Summary) writeOutputs(dir string) error {
	for _, m := range metrics.All() {
		for _, corrected := range []bool{true, false} {
			h, err := s.Histogram(m, corrected)
			if err != nil {
				return err
			}
			if h.TotalCount() == 0 {
				continue
			}
			var buf bytes.Buffer
			if err := writePercentiles(&buf, h); err != nil {
				return fmt.Errorf("%s percentiles: %w", m, err)
			}
			if err := writeFileAtomic(filepath.Join(dir, HgrmName(m, corrected)), buf.Bytes()); err != nil {
				return err
			}
		}
	}
	b, err := s.Encode()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, FileSummary), b)
}

// HgrmName returns the percentile file name of a metric: "<metric>.hgrm" for corrected
// values, "<metric>.uncorrected.hgrm" for uncorrected ones.
func HgrmName(m metrics.Metric, corrected bool) string {
	if corrected {
		return m.String() + ".hgrm"
	}
	return m.String() + ".uncorrected.hgrm"
}

// writePercentiles writes HdrHistogram's percentile distribution text (as wrk2 and
// outputPercentileDistribution print it), values in milliseconds.
func writePercentiles(buf *bytes.Buffer, h *hdrhistogram.Histogram) error {
	_, err := h.PercentilesPrint(buf, 5, 1000.0)
	return err
}
