package spec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// seedPayloads is the fuzz seed corpus: every fixture bad input small enough
// for a fuzz engine, and real messages carrying every SDP and ICE fixture.
func seedPayloads() [][]byte {
	var out [][]byte
	for _, b := range fixtures.BadInputs() {
		if len(b.Payload) <= 64<<10 {
			out = append(out, b.Payload)
		}
	}
	for _, s := range fixtures.SDPs() {
		out = append(out, []byte(`{"method":"START_SESSION","rtcommVer":"v1.0.0","transID":"t","sigSessID":"s",`+
			`"toEndpointID":"bob","fromTopic":"/rtcomm/alice","protocols":["webrtc"],"payload":`+string(s.Payload())+`}`))
	}
	for _, set := range fixtures.CandidateSets() {
		ps, _ := fixtures.CandidatePayloads(set)
		for _, p := range ps {
			out = append(out, []byte(`{"method":"MESSAGE","fromTopic":"/rtcomm/a","sigSessID":"s","payload":`+string(p)+`}`))
		}
	}
	out = append(out, []byte(`{"method":"DOCUMENT","addressTopic":"/rtcomm/a","fromTopic":null,"userDefines":[]}`),
		[]byte(`{"method":"RESPONSE","orig":"SERVICE_QUERY","services":{"RTCOMM_CONNECTOR_SERVICE":{"topic":"/rtcomm/connector"}}}`),
		[]byte(`{"method":"PRANSWER","holdTimeout":30,"queuePosition":0,"timestamp":123}`),
		[]byte(`{"from\u0054opic":"`+strings.Repeat("x", 300)+`","reason":"`+strings.Repeat("r", 2000)+`"}`))
	return out
}

// FuzzDecode: spec.Decode never panics, a nil message always comes with an
// error, and whatever it decodes re-encodes to a fixed point.
func FuzzDecode(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := spec.Decode(raw)
		if m == nil {
			if err == nil {
				t.Fatal("nil message without an error")
			}
			return
		}
		if err != nil {
			var fe *spec.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decoded message with a non-field error %v", err)
			}
		}
		b1, err := spec.Encode(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := spec.Decode(b1)
		if err != nil || m2 == nil {
			t.Fatalf("decode of own encoding %s: %v", b1, err)
		}
		b2, err := spec.Encode(m2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("not a fixed point:\n%s\n%s (%v)", b1, b2, err)
		}
		// The validator never panics on anything Decode saw either.
		_ = (spec.Validator{}).Validate("/rtcomm/connector/x", raw)
	})
}

// FuzzTopics: the identity rule survives Join/Sender/Parent for every valid
// ID, and topic-layout helpers keep their shape for any path.
func FuzzTopics(f *testing.F) {
	for _, s := range [][2]string{{"/rtcomm/", "alice"}, {"", "sip:alice@example.com"}, {"rtcomm", "John Smith"},
		{"/a/b/", "x+y"}, {"/", "a/b"}, {"//", ""}, {"/r/", "\x00"}, {"/r/", "\xff"}, {"/r/", "é😀"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, id string) {
		tp := spec.NewTopics(path)
		if !strings.HasSuffix(tp.Path, "/") || (path != "" && !strings.HasPrefix(tp.Path, path)) {
			t.Fatalf("NewTopics(%q).Path = %q", path, tp.Path)
		}
		if rest, ok := tp.Under(tp.Inbox(id)); !ok || rest != id {
			t.Fatalf("Under(Inbox(%q)) = %q, %v", id, rest, ok)
		}
		for _, x := range []string{id, path, tp.Inbox(id), "/" + id} {
			if r := tp.Resolve(x); tp.Resolve(r) != r || (x != "" && !strings.HasPrefix(r, tp.Path)) {
				t.Fatalf("Resolve(%q) = %q is not absolute and idempotent", x, r)
			}
		}
		err := spec.ValidateEndpointID(id)
		if err != nil {
			if id != "" && utf8.ValidString(id) && len(id) <= spec.MaxEndpointIDLen &&
				!strings.ContainsAny(id, "/+#\x00\uFFFD") {
				t.Fatalf("valid-looking ID %q refused: %v", id, err)
			}
			return
		}
		if strings.ContainsAny(id, "/+#") || !utf8.ValidString(id) {
			t.Fatalf("ID %q accepted despite '/', a wildcard or bad UTF-8", id)
		}
		for _, topic := range []string{tp.Inbox("peer"), tp.Connector(), tp.Path, tp.SessionEvent("started", "a", "b")} {
			j := spec.Join(topic, id)
			if spec.Sender(j) != id || spec.Parent(j) != strings.TrimSuffix(topic, "/") {
				t.Fatalf("Join(%q, %q) = %q: Sender %q, Parent %q", topic, id, j, spec.Sender(j), spec.Parent(j))
			}
		}
		if spec.Sender(tp.Sphere(id)) != id || spec.Sender(tp.SessionEvent("failed", "x", id)) != id {
			t.Fatalf("sphere/event topic of %q does not end in the ID", id)
		}
	})
}

// FuzzLimits: Limits.Check never panics, and on valid JSON it agrees with the
// real nesting depth and never lets an over-long string through.
func FuzzLimits(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p, 8, 64)
	}
	f.Add([]byte(`[[[[]]]]`), 3, 10)
	f.Add([]byte(`{"a":"\"}}}}"}`), 1, 10)
	f.Fuzz(func(t *testing.T, raw []byte, depth, strLen int) {
		depth, strLen = 1+abs(depth)%40, 1+abs(strLen)%5000
		l := spec.Limits{MaxDepth: depth, MaxStringLen: strLen, MaxIDLen: strLen / 2, MaxTopicLen: strLen, MaxReasonLen: strLen / 3}
		err := l.Check(raw)
		if err != nil && !errors.Is(err, spec.ErrLimit) {
			t.Fatalf("Check error does not wrap ErrLimit: %v", err)
		}
		if !json.Valid(raw) {
			return
		}
		realDepth, longest := measure(t, raw)
		var le *spec.LimitError
		switch {
		case realDepth > depth && !(errors.As(err, &le) && le.What == "depth"):
			if err == nil {
				t.Fatalf("depth %d > limit %d passed", realDepth, depth)
			}
		case realDepth <= depth && errors.As(err, &le) && le.What == "depth":
			t.Fatalf("depth %d <= limit %d refused: %v", realDepth, depth, err)
		}
		// A decoded string is at most 3x its raw bytes (an invalid byte becomes U+FFFD).
		if err == nil && longest > 3*strLen {
			t.Fatalf("a %d-byte string passed the %d-byte limit", longest, strLen)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // math.MinInt
			return 0
		}
		return -n
	}
	return n
}

// measure returns the nesting depth and the longest decoded string (keys included) of valid JSON.
func measure(t *testing.T, raw []byte) (depth, longest int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	d := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if depth == 0 && d == 0 && len(bytes.TrimSpace(raw)) > 0 && !strings.Contains(err.Error(), "EOF") {
				t.Logf("token: %v", err)
			}
			return depth, longest
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				d++
				depth = max(depth, d)
			} else {
				d--
			}
		case string:
			longest = max(longest, len(v))
		}
	}
}
