package metrics

import (
	"testing"
	"time"
)

// BenchmarkRecordParallel: every goroutine records setup latencies, the worst case for the
// per-metric mutex.
func BenchmarkRecordParallel(b *testing.B) {
	r := NewRecorder()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Millisecond
		for pb.Next() {
			r.RecordDurations(Setup, d, d/2)
			d += time.Microsecond
		}
	})
}

// BenchmarkCallAccounting: one attempt with two message counts, as a call records it.
func BenchmarkCallAccounting(b *testing.B) {
	r := NewRecorder()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a := r.Begin()
			r.Add(Sent, 1)
			r.Add(Delivered, 1)
			a.End(Success, "")
		}
	})
}

// BenchmarkInterval: the writer's once-a-second cost with every metric recorded.
func BenchmarkInterval(b *testing.B) {
	r := NewRecorder()
	for b.Loop() {
		for _, m := range All() {
			r.RecordDurations(m, 5*time.Millisecond, time.Millisecond)
		}
		r.Interval()
	}
}
