package spec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestDecodeRoundTripsUnknownFields(t *testing.T) {
	t.Parallel()
	in := `{"method":"START_SESSION","rtcommVer":"v1.0.0","transID":"t1","sigSessID":"s1",` +
		`"toEndpointID":"bob","fromTopic":"/rtcomm/alice","protocols":["webrtc"],` +
		`"payload":{"webrtc":{"type":"offer","sdp":"v=0\r\n"}},"x-vendor":{"a":[1,2]},"zeta":7}`
	m, err := spec.Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if m.Method != spec.MethodStartSession || m.ToEndpointID != "bob" || len(m.Protocols) != 1 {
		t.Fatalf("typed fields: actual %+v", m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	_ = json.Unmarshal([]byte(in), &a)
	_ = json.Unmarshal(out, &b)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		t.Fatalf("round trip:\nexpected %s\nactual   %s", aj, bj)
	}
	if !strings.Contains(string(out), `"payload":{"webrtc":{"type":"offer","sdp":"v=0\r\n"}}`) {
		t.Errorf("payload not byte-for-byte: %s", out)
	}
}

func TestDecodeIsLenientAboutFieldTypes(t *testing.T) {
	t.Parallel()
	m, err := spec.Decode([]byte(`{"method":"START_SESSION","transID":"t9","fromTopic":"/rtcomm/a","protocols":"webrtc","payload":"x"}`))
	if m == nil {
		t.Fatal("expected a partly decoded message, actual nil")
	}
	if m.TransID != "t9" || m.FromTopic != "/rtcomm/a" {
		t.Errorf("expected transID and fromTopic decoded despite other errors, actual %+v", m)
	}
	var fe *spec.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("expected a *FieldError, actual %v", err)
	}
	for _, f := range []string{`"payload"`, `"protocols"`} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("expected error to name %s, actual %v", f, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]error{
		"":          spec.ErrEmpty,
		"  ":        spec.ErrEmpty,
		"[1,2]":     spec.ErrNotObject,
		"null":      spec.ErrNotObject,
		`"str"`:     spec.ErrNotObject,
		"{":         nil, // malformed: any error
		`{"a":1}xx`: nil,
	}
	for in, want := range cases {
		m, err := spec.Decode([]byte(in))
		if err == nil || m != nil {
			t.Errorf("Decode(%q): expected an error and no message, actual %v, %v", in, m, err)
			continue
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("Decode(%q): expected %v, actual %v", in, want, err)
		}
	}
}

func TestNullIsAbsent(t *testing.T) {
	t.Parallel()
	// rtcomm.js DOCUMENTs carry fromTopic: null.
	m, err := spec.Decode([]byte(`{"method":"DOCUMENT","fromTopic":null,"addressTopic":"/rtcomm/a","appContext":"rtcomm"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.FromTopic != "" || m.Address() != "/rtcomm/a" {
		t.Errorf("expected empty fromTopic and address /rtcomm/a, actual %q %q", m.FromTopic, m.Address())
	}
	m2, _ := spec.Decode([]byte(`{"method":"DOCUMENT","topic":"/rtcomm/b"}`))
	if m2.Address() != "/rtcomm/b" {
		t.Errorf("expected the spec's topic field as address, actual %q", m2.Address())
	}
}

func TestPayloadAccessors(t *testing.T) {
	t.Parallel()
	idx := 0
	p := spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.ICECandType, Candidate: &spec.ICECandidate{
		Candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host", SDPMid: "0", SDPMLineIndex: &idx}})
	m := &spec.Message{Method: spec.MethodMessage, Payload: p}
	w, ok, err := m.WebRTC()
	if err != nil || !ok || w.Candidate == nil || w.Candidate.SDPMid != "0" {
		t.Fatalf("WebRTC(): expected a candidate, actual %+v %v %v", w, ok, err)
	}
	if _, ok, _ := m.Chat(); ok {
		t.Error("expected no chat entry")
	}
	keys, _ := spec.PayloadProtocols(p)
	if len(keys) != 1 || keys[0] != "webrtc" {
		t.Errorf("PayloadProtocols: expected [webrtc], actual %v", keys)
	}
	if got := spec.CommonProtocols([]string{"chat", "webrtc"}, []string{"webrtc"}); len(got) != 1 || got[0] != "webrtc" {
		t.Errorf("CommonProtocols: expected [webrtc], actual %v", got)
	}
}

func TestEncodeFillsVersion(t *testing.T) {
	t.Parallel()
	b, err := spec.Encode(&spec.Message{Method: spec.MethodStopSession, SigSessID: "s", Reason: "bye"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"rtcommVer":"v1.0.0"`) {
		t.Errorf("expected rtcommVer v1.0.0, actual %s", b)
	}
	if strings.Contains(string(b), "transID") {
		t.Errorf("expected no transID on STOP_SESSION, actual %s", b)
	}
}

// TestEnvelope: the envelope keeps every typed field and drops the raw ones (the views of
// Decode's copy of the payload), leaving the decoded message as it was.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	in := `{"method":"RESPONSE","orig":"START_SESSION","transID":"t1","sigSessID":"s1","result":"SUCCESS",` +
		`"fromTopic":"/rtcomm/bob","protocols":["webrtc"],"holdTimeout":5,"payload":{"webrtc":{"type":"answer","sdp":"v=0"}},` +
		`"userDefines":[1],"details":{"a":1},"x-vendor":true}`
	m, err := spec.Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	e := m.Envelope()
	if e.Payload != nil || e.UserDefines != nil || e.Details != nil || e.Extra != nil {
		t.Errorf("envelope: expected no raw fields, actual payload %s, userDefines %s, details %s, extra %v",
			e.Payload, e.UserDefines, e.Details, e.Extra)
	}
	if e.Method != m.Method || e.Orig != m.Orig || e.TransID != "t1" || e.SigSessID != "s1" || e.Result != spec.ResultSuccess ||
		e.FromTopic != m.FromTopic || len(e.Protocols) != 1 || e.HoldTimeout == nil || *e.HoldTimeout != 5 {
		t.Errorf("envelope: expected the typed fields of %+v, actual %+v", m, e)
	}
	if m.Payload == nil || m.UserDefines == nil || m.Details == nil || m.Extra == nil {
		t.Errorf("Envelope changed the message it copied: %+v", m)
	}
}

// TestDecodeOwnedKeepsNoCopy: DecodeOwned's raw fields are views of the payload handed
// over; Decode's are views of its own copy, so a caller reusing its buffer changes nothing.
func TestDecodeOwnedKeepsNoCopy(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"method":"MESSAGE","sigSessID":"s","payload":{"chat":{"message":"hi"}}}`)
	owned, err := spec.DecodeOwned(raw)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := spec.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(raw, []byte(`{"chat"`))
	if &owned.Payload[0] != &raw[at] {
		t.Error("DecodeOwned: expected the payload as a view of the buffer handed over, actual a copy")
	}
	if &copied.Payload[0] == &raw[at] {
		t.Error("Decode: expected a payload of its own copy, actual a view of the caller's buffer")
	}
	raw[at+2] = 'X' // the caller reuses its buffer
	if string(copied.Payload) != `{"chat":{"message":"hi"}}` {
		t.Errorf("Decode: the caller's later write reached the message: %s", copied.Payload)
	}
}
