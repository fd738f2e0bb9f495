package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	l := spec.DefaultLimits()
	cases := []struct {
		name, raw, what, field string
	}{
		{"ok", `{"method":"MESSAGE","payload":{"webrtc":{"type":"icecandidate","candidate":{"candidate":"c"}}}}`, "", ""},
		{"deep", `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "depth", ""},
		{"depth at limit", `{"a":` + strings.Repeat("[", spec.DefaultMaxDepth-1) + strings.Repeat("]", spec.DefaultMaxDepth-1) + `}`, "", ""},
		{"long transID", `{"transID":"` + strings.Repeat("t", spec.DefaultMaxIDLen+1) + `"}`, "string", "transID"},
		{"long escaped key", `{"trans\u0049D":"` + strings.Repeat("t", spec.DefaultMaxIDLen+1) + `"}`, "string", "transID"},
		{"long reason", `{"reason":"` + strings.Repeat("r", spec.DefaultMaxReasonLen+1) + `"}`, "string", "reason"},
		{"long fromTopic", `{"fromTopic":"` + strings.Repeat("/", spec.DefaultMaxTopicLen+1) + `"}`, "string", "fromTopic"},
		{"nested transID is no ID", `{"payload":{"transID":"` + strings.Repeat("t", spec.DefaultMaxIDLen+1) + `"}}`, "", ""},
		{"long sdp", `{"payload":{"webrtc":{"sdp":"` + strings.Repeat("a", spec.DefaultMaxStringLen+1) + `"}}}`, "string", ""},
		{"quote in string", `{"transID":"a\"` + strings.Repeat("[", 100) + `"}`, "", ""},
		{"unterminated", `{"transID":"abc`, "", ""},
	}
	for _, c := range cases {
		err := l.Check([]byte(c.raw))
		var le *spec.LimitError
		switch {
		case c.what == "" && err != nil:
			t.Errorf("%s: expected no limit error, actual %v", c.name, err)
		case c.what != "" && (!errors.As(err, &le) || le.What != c.what || le.Field != c.field):
			t.Errorf("%s: expected %s limit on %q, actual %v", c.name, c.what, c.field, err)
		case c.what != "" && (!errors.Is(err, spec.ErrLimit) || le.Code() == "" || err.Error() == ""):
			t.Errorf("%s: expected ErrLimit with a code and text, actual %v", c.name, err)
		}
	}
	if err := l.Check(make([]byte, spec.DefaultMaxPayload+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized payload: expected a size error, actual %v", err)
	}
	if err := (spec.Limits{}).Check([]byte(strings.Repeat("[", 100000))); err != nil {
		t.Errorf("zero Limits: expected no limit, actual %v", err)
	}
}

// TestLimitsRefuseHostileFixtures: every fixture built to exhaust a decoder
// (deep nesting, huge strings, oversize) is caught by the default limits, and
// every real SDP passes them.
func TestLimitsRefuseHostileFixtures(t *testing.T) {
	t.Parallel()
	l := spec.DefaultLimits()
	for _, b := range fixtures.BadInputs() {
		hostile := b.Defect == fixtures.DefectTooDeep || len(b.Payload) > 1<<20
		if err := l.Check(b.Payload); hostile && err == nil {
			t.Errorf("%s (%s, %d bytes): expected a limit error, actual none", b.Name, b.Defect, len(b.Payload))
		}
	}
	for _, s := range fixtures.SDPs() {
		raw := []byte(`{"method":"START_SESSION","payload":` + string(s.Payload()) + `}`)
		if err := l.Check(raw); err != nil {
			t.Errorf("SDP %s: expected within the limits, actual %v", s.Name, err)
		}
	}
}

// BenchmarkLimitsCheck: the per-message cost of the limit pass on an ICE
// candidate MESSAGE (the bulk of relayed traffic) and on an SDP offer.
func BenchmarkLimitsCheck(b *testing.B) {
	ps, _ := fixtures.CandidatePayloads(fixtures.CandidateSets()[0])
	offer, _ := fixtures.OfferPayload("chrome-av-offer")
	for name, raw := range map[string][]byte{
		"candidate": []byte(`{"method":"MESSAGE","fromTopic":"/rtcomm/alice","sigSessID":"5d1e7c3a-9b20-4f6e-8d41-2a7c0b9e3f15","payload":` + string(ps[0]) + `}`),
		"offer":     []byte(`{"method":"START_SESSION","transID":"t","sigSessID":"s","toEndpointID":"bob","payload":` + string(offer) + `}`),
	} {
		b.Run(name, func(b *testing.B) {
			l := spec.DefaultLimits()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := l.Check(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
