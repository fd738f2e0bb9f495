package results

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// V2 encoding cookies as hdrhistogram-go writes them (hdr_encoding.go: encodingCookie,
// compressedEncodingCookie).
const (
	v2Cookie           = hdrhistogram.V2EncodingCookieBase | 0x10
	v2CompressedCookie = hdrhistogram.V2CompressedEncodingCookieBase | 0x10
)

// intervalEncoder writes interval histograms exactly as hdrhistogram-go's
// HistogramLogWriter.OutputIntervalHistogram does (the same line and the same V2 compressed
// payload, byte for byte: TestIntervalEncoderMatchesHdrHistogram), but reuses its zlib
// writer and buffers. hdrhistogram-go allocates a new BestCompression zlib writer (about
// 600 KB) per histogram: with ~8 histograms a second that was 21 % of the load generator's
// allocated bytes in `make perf`'s profile (issue 16). Not safe for concurrent use.
type intervalEncoder struct {
	zw      *zlib.Writer
	raw     bytes.Buffer // uncompressed V2 payload
	zbuf    bytes.Buffer // its zlib stream
	out     []byte       // compressed V2 payload, then its base64
	scratch []byte
}

// write appends h's interval line to w; baseTimeMs is the log's base time (ms since the epoch).
func (e *intervalEncoder) write(w io.Writer, baseTimeMs int64, h *hdrhistogram.Histogram) error {
	tag := ""
	if t := h.Tag(); t != "" {
		if strings.ContainsAny(t, ", \r\n") {
			return fmt.Errorf("histogram tag %q: cannot contain commas, spaces or line breaks", t)
		}
		tag = "Tag=" + t + ","
	}
	payload, err := e.encode(h)
	if err != nil {
		return err
	}
	start := (float64(h.StartTimeMs()) - float64(baseTimeMs)) / 1000.0
	end := (float64(h.EndTimeMs()) - float64(baseTimeMs)) / 1000.0
	maxV := float64(h.Max()) / hdrhistogram.MsToNsRatio
	_, err = fmt.Fprintf(w, "%s%f,%f,%f,%s\n", tag, start, end-start, maxV, payload)
	return err
}

// encode returns h in the base64 V2 compressed encoding (hdrhistogram-go
// dumpV2CompressedEncoding); the slice is valid until the next call.
func (e *intervalEncoder) encode(h *hdrhistogram.Histogram) ([]byte, error) {
	snap := h.Export()
	ratio := snap.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1.0 // getIntegerToDoubleValueConversionRatio
	}
	// Counts up to the highest non-zero bucket (countsIndexFor(Max())+1), at least one.
	limit := 1
	for i := len(snap.Counts) - 1; i >= 0; i-- {
		if snap.Counts[i] != 0 {
			limit = i + 1
			break
		}
	}
	counts := e.scratch[:0]
	for i := 0; i < limit; {
		c := snap.Counts[i]
		i++
		if c == 0 {
			zeros := int64(1)
			for i < limit && snap.Counts[i] == 0 {
				zeros++
				i++
			}
			if zeros > 1 {
				counts = appendZigZag(counts, -zeros)
				continue
			}
		}
		counts = appendZigZag(counts, c)
	}
	e.scratch = counts

	e.raw.Reset()
	var hdr [40]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(v2Cookie))
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(counts)))
	binary.BigEndian.PutUint32(hdr[8:], 0) // normalizing index offset: always 0 in this port
	binary.BigEndian.PutUint32(hdr[12:], uint32(int32(snap.SignificantFigures)))
	binary.BigEndian.PutUint64(hdr[16:], uint64(snap.LowestTrackableValue))
	binary.BigEndian.PutUint64(hdr[24:], uint64(snap.HighestTrackableValue))
	binary.BigEndian.PutUint64(hdr[32:], math.Float64bits(ratio))
	e.raw.Write(hdr[:])
	e.raw.Write(counts)

	e.zbuf.Reset()
	if e.zw == nil {
		zw, err := zlib.NewWriterLevel(&e.zbuf, zlib.BestCompression)
		if err != nil {
			return nil, err
		}
		e.zw = zw
	} else {
		e.zw.Reset(&e.zbuf)
	}
	if _, err := e.zw.Write(e.raw.Bytes()); err != nil {
		return nil, err
	}
	if err := e.zw.Close(); err != nil {
		return nil, err
	}

	bin := binary.BigEndian.AppendUint32(e.out[:0], uint32(v2CompressedCookie))
	bin = binary.BigEndian.AppendUint32(bin, uint32(e.zbuf.Len()))
	bin = append(bin, e.zbuf.Bytes()...)
	n := base64.StdEncoding.EncodedLen(len(bin))
	buf := make([]byte, len(bin)+n)
	copy(buf, bin)
	base64.StdEncoding.Encode(buf[len(bin):], buf[:len(bin)])
	e.out = buf
	return buf[len(bin):], nil
}

// appendZigZag appends v as a ZigZag LEB128-64b9B varint (hdrhistogram-go zig_zag_encode_i64):
// 7 bits per byte for 8 bytes, then a full ninth byte.
func appendZigZag(b []byte, v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	for range 8 {
		if u>>7 == 0 {
			return append(b, byte(u))
		}
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
