// Package soak samples resource gauges (goroutines, live heap, a connector's session table
// and registry, ...) during a long load run, writes them as CSV as they are taken, and
// judges whether each stays flat: a least-squares line through the samples after warm-up,
// whose growth over the window must stay within a tolerance.
package soak

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// Format of soak.json.
const Format = "rtcomm-harness/soak/v1"

// Probe is one gauge to sample.
type Probe struct {
	Name string         // column name, e.g. "goroutines"
	Unit string         // e.g. "count", "bytes"
	Read func() float64 // current value; called from the sampling goroutine
	// Floor is the absolute growth always allowed over the window (noise of a flat gauge,
	// e.g. 8 MiB of heap, 50 goroutines); the relative tolerance applies above it.
	Floor float64
}

// Sample is one reading of every probe.
type Sample struct {
	At      time.Time
	Elapsed time.Duration // since the sampler started
	Values  []float64     // in probe order
}

// Sampler reads its probes and appends each sample to a CSV file (flushed per sample, so a
// killed run keeps its samples).
type Sampler struct {
	probes []Probe
	start  time.Time
	f      *os.File
	w      *csv.Writer

	mu      sync.Mutex
	samples []Sample
}

// NewSampler creates path and writes the CSV header: at (RFC 3339), elapsed_s, one column
// per probe.
func NewSampler(path string, probes []Probe, start time.Time) (*Sampler, error) {
	if len(probes) == 0 {
		return nil, errors.New("soak: no probes")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("soak: samples: %w", err)
	}
	s := &Sampler{probes: probes, start: start, f: f, w: csv.NewWriter(f)}
	head := []string{"at", "elapsed_s"}
	for _, p := range probes {
		head = append(head, p.Name)
	}
	if err := s.write(head); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sampler) write(rec []string) error {
	if err := s.w.Write(rec); err != nil {
		return fmt.Errorf("soak: samples: %w", err)
	}
	s.w.Flush()
	if err := s.w.Error(); err != nil {
		return fmt.Errorf("soak: samples: %w", err)
	}
	return nil
}

// Take reads every probe now and records the sample.
func (s *Sampler) Take(now time.Time) (Sample, error) {
	sm := Sample{At: now, Elapsed: now.Sub(s.start), Values: make([]float64, len(s.probes))}
	row := []string{now.UTC().Format(time.RFC3339Nano), strconv.FormatFloat(sm.Elapsed.Seconds(), 'f', 3, 64)}
	for i, p := range s.probes {
		sm.Values[i] = p.Read()
		row = append(row, strconv.FormatFloat(sm.Values[i], 'f', -1, 64))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, sm)
	return sm, s.write(row)
}

// Run takes a sample every interval until ctx ends; onSample (optional) sees each one.
// The first write error ends it and is returned.
func (s *Sampler) Run(ctx context.Context, every time.Duration, onSample func(Sample)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			sm, err := s.Take(now)
			if err != nil {
				return err
			}
			if onSample != nil {
				onSample(sm)
			}
		}
	}
}

// Samples returns a copy of the samples taken so far.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// Close flushes and closes the CSV file.
func (s *Sampler) Close() error {
	s.w.Flush()
	return errors.Join(s.w.Error(), s.f.Sync(), s.f.Close())
}

// Trend is one probe's verdict.
type Trend struct {
	Metric       string  `json:"metric"`
	Unit         string  `json:"unit"`
	Samples      int     `json:"samples"`        // samples in the fit (after warm-up)
	WindowS      float64 `json:"window_s"`       // time the fit spans
	First        float64 `json:"first"`          // first fitted sample
	Last         float64 `json:"last"`           // last fitted sample
	Min          float64 `json:"min"`            // over the fit
	Max          float64 `json:"max"`            // over the fit
	Mean         float64 `json:"mean"`           // over the fit
	SlopePerHour float64 `json:"slope_per_hour"` // least-squares slope, unit per hour
	// Growth is the fitted line's rise over the window (slope x window); Allowed is
	// max(Floor, tolerance x |Mean|). Pass: Growth <= Allowed (shrinking always passes).
	Growth  float64 `json:"growth"`
	Allowed float64 `json:"allowed"`
	Pass    bool    `json:"pass"`
	Note    string  `json:"note,omitempty"`
}

// Analyze fits each probe over the samples taken from skip (warm-up) to until (the end of
// the load; 0 = no end) and judges it with the relative tolerance (0.1 = the line may rise
// 10% of the mean over the window). Samples after the load (draining) would pull the line
// down and hide a leak, so they are left out.
func Analyze(samples []Sample, probes []Probe, skip, until time.Duration, tolerance float64) []Trend {
	var fit []Sample
	for _, s := range samples {
		if s.Elapsed >= skip && (until <= 0 || s.Elapsed <= until) {
			fit = append(fit, s)
		}
	}
	out := make([]Trend, len(probes))
	for i, p := range probes {
		t := Trend{Metric: p.Name, Unit: p.Unit, Samples: len(fit)}
		if len(fit) < 3 {
			t.Note = fmt.Sprintf("only %d samples after the %s warm-up: no trend", len(fit), skip)
			out[i] = t
			continue
		}
		xs, ys := make([]float64, len(fit)), make([]float64, len(fit))
		t.Min, t.Max = math.Inf(1), math.Inf(-1)
		for j, s := range fit {
			xs[j], ys[j] = s.Elapsed.Hours(), s.Values[i]
			t.Min, t.Max = math.Min(t.Min, ys[j]), math.Max(t.Max, ys[j])
			t.Mean += ys[j]
		}
		t.Mean /= float64(len(ys))
		t.First, t.Last = ys[0], ys[len(ys)-1]
		window := xs[len(xs)-1] - xs[0]
		t.WindowS = window * 3600
		t.SlopePerHour, _ = Regress(xs, ys)
		t.Growth = t.SlopePerHour * window
		t.Allowed = math.Max(p.Floor, tolerance*math.Abs(t.Mean))
		t.Pass = t.Growth <= t.Allowed
		out[i] = t
	}
	return out
}

// Regress returns the least-squares line y = slope*x + intercept (slope 0 when x does not vary).
func Regress(xs, ys []float64) (slope, intercept float64) {
	n := float64(len(xs))
	if n == 0 {
		return 0, 0
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i := range xs {
		dx := xs[i] - mx
		sxy += dx * (ys[i] - my)
		sxx += dx * dx
	}
	if sxx == 0 {
		return 0, my
	}
	slope = sxy / sxx
	return slope, my - slope*mx
}
