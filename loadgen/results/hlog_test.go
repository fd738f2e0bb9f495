package results

import (
	"bytes"
	"math/rand/v2"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
)

// TestIntervalEncoderMatchesHdrHistogram checks that the reusing encoder writes exactly what
// hdrhistogram-go's log writer writes, for empty, sparse, dense and extreme histograms, one
// encoder reused over all of them (a stale buffer or zlib state would show).
func TestIntervalEncoderMatchesHdrHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const base = int64(1_764_000_000_000)
	var enc intervalEncoder
	for i := range 200 {
		h := metrics.NewHistogram()
		switch {
		case i == 0: // empty
		case i == 1:
			_ = h.RecordValue(metrics.HistHighest) // the last bucket
		case i == 2:
			_ = h.RecordValue(0)
		case i%3 == 0: // dense, large counts (multi-byte varints)
			for range 2000 {
				_ = h.RecordValues(rng.Int64N(200_000), rng.Int64N(1<<40)+1)
			}
		default: // sparse, long zero runs
			for range rng.IntN(20) + 1 {
				_ = h.RecordValue(rng.Int64N(metrics.HistHighest))
			}
		}
		h.SetTag([]string{"setup.corrected", "ice.uncorrected", ""}[i%3])
		h.SetStartTimeMs(base + int64(i)*1000 + 7)
		h.SetEndTimeMs(base + int64(i+1)*1000 + 11)

		var want, got bytes.Buffer
		lw := hdrhistogram.NewHistogramLogWriter(&want)
		lw.SetBaseTime(base - 3000)
		if err := lw.OutputIntervalHistogram(h); err != nil {
			t.Fatal(err)
		}
		if err := enc.write(&got, base-3000, h); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("histogram %d (%d values): encoder line differs from hdrhistogram-go's\nExpected: %q\nActual:   %q",
				i, h.TotalCount(), want.String(), got.String())
		}
	}
}

func TestIntervalEncoderRefusesBadTag(t *testing.T) {
	h := metrics.NewHistogram()
	h.SetTag("a,b")
	var enc intervalEncoder
	if err := enc.write(&bytes.Buffer{}, 0, h); err == nil {
		t.Fatal("Expected: an error for a tag with a comma; Actual: none")
	}
}

func BenchmarkIntervalEncoder(b *testing.B) {
	h := metrics.NewHistogram()
	for i := range 300 {
		_ = h.RecordValue(int64(1000 + i*37))
	}
	h.SetTag("setup.corrected")
	b.Run("hdrhistogram", func(b *testing.B) {
		b.ReportAllocs()
		lw := hdrhistogram.NewHistogramLogWriter(&bytes.Buffer{})
		for b.Loop() {
			_ = lw.OutputIntervalHistogram(h)
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		var enc intervalEncoder
		out := &bytes.Buffer{}
		for b.Loop() {
			out.Reset()
			_ = enc.write(out, 0, h)
		}
	})
}
