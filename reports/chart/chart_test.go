package chart

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func dist() []Distribution {
	var d Distribution
	d.Name = "setup <corrected>"
	for k := 0; k <= 30; k++ {
		x := math.Pow(10, float64(k)/10)
		d.Points = append(d.Points, PercentilePoint{Percentile: 100 * (1 - 1/x), Value: 5 + 3*math.Log10(x)})
	}
	d.Points = append(d.Points, PercentilePoint{Percentile: 100, Value: 99}) // infinite x: dropped
	return []Distribution{d}
}

func TestPercentilesDeterministicAndInline(t *testing.T) {
	t.Parallel()
	a, err := Percentiles("setup latency", "ms", dist())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Percentiles("setup latency", "ms", dist())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the same input drew two different SVGs")
	}
	s := string(a)
	if !strings.HasPrefix(s, `<svg class="chart" role="img"`) || strings.Contains(s, "<?xml") || strings.Contains(s, "http") {
		t.Errorf("not ready to inline: %.200s", s)
	}
	// The log percentile axis is labelled in nines, up to the decade holding the last point.
	for _, want := range []string{">0%<", ">50%<", ">90%<", ">99%<", ">99.9%<", "setup &lt;corrected&gt;", "'Liberation Sans',Arial"} {
		if !strings.Contains(s, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	if strings.Contains(s, ">99.99%<") {
		t.Error("axis runs a decade past the data")
	}
}

func TestLinesWithKneeMark(t *testing.T) {
	t.Parallel()
	s, err := Lines("capacity", "offered (calls/s)", "ms", []Series{
		{Name: "p50", X: []float64{10, 20, 40}, Y: []float64{3, 4, 30}, Points: true},
		{Name: "p99", X: []float64{10, 20, 40}, Y: []float64{5, math.NaN(), 90}, Dashed: true},
	}, []Mark{{X: 20, Label: "knee 20"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(s, []byte("knee 20")) || !bytes.Contains(s, []byte("stroke-dasharray")) {
		t.Error("the knee mark or the dashed series is missing")
	}
}

func TestNoDataIsAnError(t *testing.T) {
	t.Parallel()
	if _, err := Percentiles("x", "ms", nil); err == nil {
		t.Error("percentiles without data: expected an error")
	}
	if _, err := Lines("x", "a", "b", []Series{{Name: "empty"}}, nil); err == nil {
		t.Error("lines without data: expected an error")
	}
	if _, err := Lines("x", "a", "b", []Series{{Name: "bad", X: []float64{1, 2}, Y: []float64{1}}}, nil); err == nil {
		t.Error("x and y of different lengths: expected an error")
	}
	if _, err := Lines("x", "a", "b", []Series{{Name: "nan", X: []float64{1}, Y: []float64{math.NaN()}}}, nil); err == nil {
		t.Error("no finite point: expected an error")
	}
}
