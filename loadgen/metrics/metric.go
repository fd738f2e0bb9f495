// Package metrics records what a load run measures: one pair of latency histograms per
// metric (corrected for coordinated omission and uncorrected) and a tally of call outcomes
// and message counters. It is safe for concurrent use and knows nothing about MQTT.
package metrics

import (
	"fmt"
	"math"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Metric identifies one measured latency.
type Metric uint8

// The measured latencies. Each is recorded from the intended start (corrected) and from the
// actual send (uncorrected).
const (
	Connect       Metric = iota // MQTT connect until CONNACK
	Register                    // DOCUMENT published until a presence monitor sees it on the sphere
	ServiceQuery                // SERVICE_QUERY until its RESPONSE
	PostDialDelay               // START_SESSION until PRANSWER
	Setup                       // START_SESSION until RESPONSE
	ICE                         // one ICE candidate MESSAGE, one way
	Teardown                    // STOP_SESSION until the peer sees it
	// SetupFailed is START_SESSION until the outcome of a call that failed or timed out
	// (RESPONSE FAILURE from the target, a local error, or the caller's timeout): setup
	// holds successful calls only, so without it failures would flatter the latency.
	// Rejected and unanswered calls are the simulated user's choice and are in neither.
	SetupFailed
)

// NumMetrics is the number of metrics; Metric values are 0..NumMetrics-1.
const NumMetrics = int(SetupFailed) + 1

var metricNames = [NumMetrics]string{
	"connect", "register", "service_query", "post_dial_delay", "setup", "ice", "teardown", "setup_failed",
}

// String returns the metric's name as used in files, tags and SLOs.
func (m Metric) String() string {
	if int(m) < NumMetrics {
		return metricNames[m]
	}
	return fmt.Sprintf("metric(%d)", m)
}

// All returns every metric in their fixed order.
func All() []Metric {
	ms := make([]Metric, NumMetrics)
	for i := range ms {
		ms[i] = Metric(i)
	}
	return ms
}

// ParseMetric returns the metric with the given name.
func ParseMetric(name string) (Metric, error) {
	for i, n := range metricNames {
		if n == name {
			return Metric(i), nil
		}
	}
	return 0, fmt.Errorf("unknown metric %q (known: %s)", name, strings.Join(metricNames[:], ", "))
}

// Histogram geometry shared by every recorder, reader and merger: values are microseconds,
// 1 µs to 60 s, 3 significant digits. Histograms only merge exactly with equal geometry.
const (
	HistLowest  int64 = 1
	HistHighest int64 = 60_000_000
	HistSigFigs       = 3
)

// NewHistogram returns an empty histogram with the shared geometry.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistLowest, HistHighest, HistSigFigs)
}

// FormatMicros formats a latency given in microseconds with three significant digits,
// e.g. 850µs, 23.1ms, 1.20s.
func FormatMicros(us int64) string {
	switch d := float64(us); {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return sig3(d/1e3) + "ms"
	default:
		return sig3(d/1e6) + "s"
	}
}

// sig3 formats v with three significant digits, moving to fewer decimals when rounding
// reaches the next decade (9.999 gives "10.0", not "10.00").
func sig3(v float64) string {
	switch {
	case math.Round(v*100) < 1000:
		return fmt.Sprintf("%.2f", v)
	case math.Round(v*10) < 1000:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
