package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func collect(p Pacer, d time.Duration) []time.Duration { return slices.Collect(Schedule(p, d)) }

// gaps returns the inter-arrival times of a schedule in seconds.
func gaps(sched []time.Duration) []float64 {
	g := make([]float64, 0, len(sched))
	prev := time.Duration(0)
	for _, s := range sched {
		g = append(g, (s - prev).Seconds())
		prev = s
	}
	return g
}

func meanVar(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}

func TestConstantSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate float64
		d    time.Duration
		n    int
	}{
		{100, 10 * time.Second, 1000},
		{3, 10 * time.Second, 30},
		{112.5, 4 * time.Second, 450}, // a quarter of 450/s, as a shard runs it
		{0.5, 5 * time.Second, 3},     // due at 0, 2s, 4s
	} {
		s := collect(ConstantPacer{Rate: tc.rate}, tc.d)
		if len(s) != tc.n {
			t.Errorf("rate %g for %s: %d calls, want %d", tc.rate, tc.d, len(s), tc.n)
			continue
		}
		interval := 1 / tc.rate
		for k, due := range s {
			if want := time.Duration(math.Round(float64(k) * interval * 1e9)); due != want {
				t.Fatalf("rate %g: call %d due at %s, want %s", tc.rate, k, due, want)
			}
		}
		if len(s) > 2 {
			mean, variance := meanVar(gaps(s)[1:])
			if math.Abs(mean-interval) > 1e-9 || variance > 1e-18 {
				t.Errorf("rate %g: gap mean %g variance %g, want %g and 0", tc.rate, mean, variance, interval)
			}
		}
	}
}

func TestConstantPacerWaits(t *testing.T) {
	t.Parallel()
	p := ConstantPacer{Rate: 10}
	if w, stop := p.Pace(250*time.Millisecond, 3); stop || w != 50*time.Millisecond {
		t.Errorf("ahead: wait %s stop %v, want 50ms", w, stop)
	}
	// Behind schedule the wait is negative: call 1 was due at 100ms, 400ms ago.
	if w, _ := p.Pace(500*time.Millisecond, 1); w != -400*time.Millisecond {
		t.Errorf("behind: wait %s, want -400ms", w)
	}
	for _, r := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if _, stop := (ConstantPacer{Rate: r}).Pace(0, 0); !stop {
			t.Errorf("rate %v did not stop", r)
		}
		if _, stop := (&PoissonPacer{Rate: r}).Pace(0, 0); !stop {
			t.Errorf("poisson rate %v did not stop", r)
		}
	}
}

func TestPoissonSchedule(t *testing.T) {
	t.Parallel()
	const rate, seconds = 100.0, 1000
	p := &PoissonPacer{Rate: rate, Rand: rand.New(rand.NewPCG(1, 2))}
	s := collect(p, seconds*time.Second)

	// Count in the window is Poisson(rate*seconds): mean 1e5, sd 316; allow 5 sd.
	want := rate * seconds
	if d := math.Abs(float64(len(s)) - want); d > 5*math.Sqrt(want) {
		t.Errorf("%d calls, want %g ± %g", len(s), want, 5*math.Sqrt(want))
	}
	// Gaps are Exp(rate): mean 1/rate, variance 1/rate². With 1e5 gaps the sample mean's
	// relative sd is 0.3% and the sample variance's about 0.9%.
	mean, variance := meanVar(gaps(s))
	if math.Abs(mean*rate-1) > 0.02 {
		t.Errorf("gap mean %gs, want %gs ± 2%%", mean, 1/rate)
	}
	if math.Abs(variance*rate*rate-1) > 0.05 {
		t.Errorf("gap variance %g, want %g ± 5%%", variance, 1/(rate*rate))
	}
	// Counts per second are Poisson(100): their variance equals their mean (within
	// sampling error of ~4.5% over 1000 windows), unlike a constant pacer's zero.
	counts := make([]float64, seconds)
	for _, due := range s {
		counts[int(due/time.Second)]++
	}
	cm, cv := meanVar(counts)
	if math.Abs(cv/cm-1) > 0.2 {
		t.Errorf("per-second counts: mean %g variance %g, want variance ≈ mean", cm, cv)
	}
	if !slices.IsSorted(s) {
		t.Error("schedule is not in time order")
	}
}

func TestPoissonIsReproducible(t *testing.T) {
	t.Parallel()
	mk := func(seed uint64) []time.Duration {
		return collect(&PoissonPacer{Rate: 50, Rand: rand.New(rand.NewPCG(seed, 7))}, 10*time.Second)
	}
	a, b, c := mk(1), mk(1), mk(2)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different schedules")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same schedule")
	}
	// Asking again for the same call gives the same due time, whatever the elapsed time.
	p := &PoissonPacer{Rate: 50, Rand: rand.New(rand.NewPCG(1, 7))}
	w1, _ := p.Pace(0, 0)
	w2, _ := p.Pace(time.Second, 0)
	if w1-w2 != time.Second || w1 != a[0] {
		t.Errorf("repeat Pace: %s then %s, schedule starts at %s", w1, w2, a[0])
	}
	// Skipping ahead draws the gaps in between.
	if w, _ := p.Pace(0, 5); w != a[5] {
		t.Errorf("Pace(hits=5) = %s, want %s", w, a[5])
	}
}
