package soak

import (
	"context"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRegress(t *testing.T) {
	t.Parallel()
	s, b := Regress([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7})
	if s != 2 || b != 1 {
		t.Fatalf("slope %v intercept %v, want 2 and 1", s, b)
	}
	if s, b := Regress([]float64{1, 1}, []float64{4, 6}); s != 0 || b != 5 {
		t.Fatalf("vertical: slope %v intercept %v", s, b)
	}
}

func series(n int, every time.Duration, f func(i int) []float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Elapsed: time.Duration(i) * every, Values: f(i)}
	}
	return out
}

func TestAnalyzeFlatGrowingAndWarmup(t *testing.T) {
	t.Parallel()
	probes := []Probe{{Name: "flat", Floor: 1}, {Name: "leak"}, {Name: "warm"}, {Name: "shrink"}}
	// 60 samples a minute apart: flat with noise, +1 per sample (60 over the hour on a mean of
	// ~130), a ramp that ends at the 10-minute warm-up and is flat afterwards, a decline.
	sm := series(61, time.Minute, func(i int) []float64 {
		warm := 1000.0
		if i < 10 {
			warm = float64(i) * 100
		}
		return []float64{100 + float64(i%3), 100 + float64(i), warm, 500 - float64(i)}
	})
	tr := Analyze(sm, probes, 10*time.Minute, 0, 0.1)
	if !tr[0].Pass || tr[1].Pass || !tr[2].Pass || !tr[3].Pass {
		t.Fatalf("verdicts %+v", tr)
	}
	if got := tr[1].SlopePerHour; math.Abs(got-60) > 1e-9 {
		t.Errorf("leak slope %v per hour, want 60", got)
	}
	if tr[1].Samples != 51 || math.Abs(tr[1].WindowS-3000) > 1e-6 {
		t.Errorf("fit over %d samples, %v s", tr[1].Samples, tr[1].WindowS)
	}
	// Without skipping the warm-up the ramp reads as growth.
	if tr := Analyze(sm, probes, 0, 0, 0.1); tr[2].Pass {
		t.Errorf("warm-up ramp not excluded yet passed: %+v", tr[2])
	}
	// Samples after the load (a drop while draining) are not fitted.
	drop := append(series(61, time.Minute, func(i int) []float64 { return []float64{100, 100 + float64(i), 0, 0} }),
		Sample{Elapsed: 61 * time.Minute, Values: []float64{0, 0, 0, 0}})
	if tr := Analyze(drop, probes, 0, 60*time.Minute, 0.1); tr[1].Pass || tr[1].Samples != 61 {
		t.Errorf("drain sample fitted: %+v", tr[1])
	}
	if tr := Analyze(sm[:2], probes, 0, 0, 0.1); tr[0].Pass || tr[0].Note == "" {
		t.Errorf("two samples judged: %+v", tr[0])
	}
}

func TestSamplerWritesCSVAsItGoes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "samples.csv")
	n := 0.0
	start := time.Now()
	s, err := NewSampler(path, []Probe{{Name: "n", Read: func() float64 { n++; return n }}}, start)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Take(start.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// Readable before Close: a killed soak keeps its samples.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0][2] != "n" || rows[3][2] != "3" || rows[3][1] != "2.000" {
		t.Fatalf("rows %v", rows)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx, 5*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := s.Samples()
	if len(got) < 4 || got[len(got)-1].Values[0] != float64(len(got)) {
		t.Fatalf("%d samples, last %v", len(got), got[len(got)-1].Values)
	}
	if _, err := NewSampler(path, []Probe{{Name: "n", Read: func() float64 { return 0 }}}, start); err == nil {
		t.Error("existing samples file overwritten")
	}
}
