package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// A Pacer decides when calls start: given the time elapsed since the start and the number
// of calls started so far (hits), it returns how long to wait until the next one is due.
// A negative wait means the next call was due that long ago; its intended start time is
// still elapsed+wait. stop ends the schedule.
type Pacer interface {
	Pace(elapsed time.Duration, hits uint64) (wait time.Duration, stop bool)
}

// PacerFunc adapts a function to the Pacer interface.
type PacerFunc func(elapsed time.Duration, hits uint64) (time.Duration, bool)

// Pace implements Pacer.
func (f PacerFunc) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	return f(elapsed, hits)
}

// ConstantPacer starts calls at a fixed rate: call k is due at k/Rate seconds.
type ConstantPacer struct {
	Rate float64 // calls per second; not positive and finite stops at once
}

var _ Pacer = ConstantPacer{}

// Pace implements Pacer.
func (p ConstantPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if !validRate(p.Rate) {
		return 0, true
	}
	due := float64(hits) * float64(time.Second) / p.Rate
	if due >= math.MaxInt64 {
		return 0, true
	}
	return time.Duration(math.Round(due)) - elapsed, false
}

// String describes the pacer for logs and run parameters.
func (p ConstantPacer) String() string { return fmt.Sprintf("constant %g/s", p.Rate) }

// PoissonPacer starts calls as a Poisson process: exponentially distributed gaps with mean
// 1/Rate, the arrival pattern of independent users. Use a pointer; it is not safe for
// concurrent use and hits must not decrease between calls.
type PoissonPacer struct {
	Rate float64    // mean calls per second; not positive and finite stops at once
	Rand *rand.Rand // source of the gaps; seed it for a reproducible schedule (nil: unseeded)

	n   uint64        // index of the call whose due time is due
	due time.Duration // due time of call n
	ok  bool          // due holds call n's time
}

var _ Pacer = (*PoissonPacer)(nil)

// Pace implements Pacer.
func (p *PoissonPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if !validRate(p.Rate) {
		return 0, true
	}
	for !p.ok || p.n < hits {
		gap := p.exp() * float64(time.Second) / p.Rate
		next := float64(p.due) + gap
		if next >= math.MaxInt64 {
			return 0, true
		}
		if p.ok {
			p.n++
		}
		p.due, p.ok = time.Duration(next), true
	}
	return p.due - elapsed, false
}

func (p *PoissonPacer) exp() float64 {
	if p.Rand == nil {
		return rand.ExpFloat64()
	}
	return p.Rand.ExpFloat64()
}

// String describes the pacer for logs and run parameters.
func (p *PoissonPacer) String() string { return fmt.Sprintf("poisson %g/s", p.Rate) }

func validRate(r float64) bool { return r > 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }
