package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// offline is a connector that was never started: every publish goes to out,
// handlers are called directly (no recover guard, so a panic fails the test).
type offline struct {
	c   *Connector
	out []pub
}

func newOffline(t testing.TB, mod func(*Config)) *offline {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath, cfg.ClientID = "tcp://127.0.0.1:1", "/rtcomm/", "conn1"
	cfg.Queues = []string{"support"}
	cfg.Schemes = []SchemeRoute{{Scheme: "sip", Topic: "/rtcomm/gw"}}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := &offline{c: c}
	c.sink = func(topic string, qos byte, retained bool, payload []byte) {
		o.out = append(o.out, pub{topic: topic, qos: qos, retained: retained, raw: append([]byte(nil), payload...)})
	}
	c.register("alice", "rtcomm", "/rtcomm/alice", "/rtcomm/sphere/alice", doc("addressTopic", "/rtcomm/alice", "rtcomm"))
	c.register("bob", "rtcomm", "/rtcomm/bob", "/rtcomm/sphere/bob", doc("addressTopic", "/rtcomm/bob", "rtcomm"))
	// One session in progress, so in-session input has something to hit.
	o.deliver(0, "alice", mustJSON(startMsgTo("/rtcomm/alice", "bob", "s1", "t1")))
	o.out = nil
	return o
}

func startMsgTo(from, to, sid, tid string) map[string]any {
	return map[string]any{"method": "START_SESSION", "rtcommVer": spec.Version, "fromTopic": from,
		"toEndpointID": to, "sigSessID": sid, "transID": tid, "protocols": []string{"webrtc"},
		"payload": map[string]any{"webrtc": map[string]any{"type": "offer", "sdp": "v=0\r\n"}}}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// deliver hands one inbound publish to the handler its topic reaches: sel
// picks connector, session, management, call-control or sphere topic.
func (o *offline) deliver(sel byte, sender string, payload []byte) {
	c := o.c
	var topic string
	var h func(mqttc.Message)
	switch sel % 6 {
	case 0:
		topic, h = c.connPrefix+sender, c.onConnectorAll
	case 1:
		topic, h = c.inPathPrefix+sender, c.onConnectorAll
	case 2:
		topic, h = c.mgmtPrefix+sender, c.onManagement
	case 3:
		topic, h = c.ccTopic, c.onCallControl
	case 4:
		topic, h = c.ccTopic+"/"+sender, c.onCallControl
	default:
		topic, h = c.spherePrefix+sender, c.onSphere
	}
	h(mqttc.Message{Topic: topic, Payload: payload, QoS: sel >> 7, Retained: sel%6 == 5})
}

// check holds what the connector published to the rules that keep it alive
// and its peers sane: publishable topics, bounded payloads, JSON only.
func (o *offline) check(t testing.TB, input []byte) {
	t.Helper()
	for _, p := range o.out {
		if err := checkTopicName(p.topic); err != nil {
			t.Fatalf("input %q: published to an unusable topic: %v", short(string(input)), err)
		}
		if len(p.raw) > o.c.cfg.MaxPayload {
			t.Fatalf("input %q: published %d bytes over MaxPayload", short(string(input)), len(p.raw))
		}
		if p.retained && len(p.raw) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(p.raw, &obj); err != nil {
			t.Fatalf("input %q: published a non-object at %s: %v: %s", short(string(input)), p.topic, err, short(string(p.raw)))
		}
	}
	if o.c.panics.Load() != 0 {
		t.Fatalf("input %q: panics counted", short(string(input)))
	}
}

// fuzzSeeds: fixture bad inputs (small ones), SDP and ICE fixtures in real
// messages, and the replies/in-session messages of the session s1.
func fuzzSeeds() [][]byte {
	var out [][]byte
	for _, b := range fixtures.BadInputs() {
		if len(b.Payload) <= 64<<10 {
			out = append(out, b.Retarget("/rtcomm/alice", "bob"))
		}
	}
	for _, s := range fixtures.SDPs() {
		out = append(out, []byte(`{"method":"START_SESSION","rtcommVer":"v1.0.0","transID":"t2","sigSessID":"s2",`+
			`"toEndpointID":"bob","fromTopic":"/rtcomm/alice","protocols":["webrtc"],"payload":`+string(s.Payload())+`}`))
		out = append(out, []byte(`{"method":"MESSAGE","sigSessID":"s1","fromTopic":"/rtcomm/bob","payload":`+string(s.Payload())+`}`))
	}
	for _, set := range fixtures.CandidateSets() {
		ps, _ := fixtures.CandidatePayloads(set)
		for _, p := range ps {
			out = append(out, []byte(`{"method":"MESSAGE","fromTopic":"/rtcomm/alice","sigSessID":"s1","payload":`+string(p)+`}`))
		}
	}
	out = append(out,
		[]byte(`{"method":"PRANSWER","sigSessID":"s1","fromTopic":"/rtcomm/bob","holdTimeout":99999999}`),
		[]byte(`{"method":"RESPONSE","orig":"START_SESSION","result":"SUCCESS","sigSessID":"s1","transID":"t1","fromTopic":"/rtcomm/bob"}`),
		[]byte(`{"method":"RESPONSE","result":"FAILURE","reason":"busy","sigSessID":"s1","transID":"t1"}`),
		[]byte(`{"method":"STOP_SESSION","sigSessID":"s1","reason":"bye"}`),
		[]byte(`{"method":"SERVICE_QUERY","transID":"q","fromTopic":"/rtcomm/alice"}`),
		[]byte(`{"method":"3PCC_PLACE_CALL","transID":"p","callerEndpoint":"alice","calleeEndpoint":"bob","fromTopic":"ctl"}`),
		[]byte(`{"method":"RESPONSE","orig":"REFER","result":"SUCCESS","transID":"p"}`),
		[]byte(`{"method":"START_SESSION","transID":"t3","sigSessID":"s3","toEndpointID":"support","fromTopic":"/rtcomm/alice"}`),
		[]byte(`{"method":"START_SESSION","transID":"t4","sigSessID":"s4","toEndpointID":"sip:x@y","fromTopic":"/rtcomm/alice"}`),
		[]byte(`{"method":"DOCUMENT","addressTopic":"/rtcomm/bob2","appContext":"rtcomm"}`),
		[]byte(``),
	)
	return out
}

// FuzzInbound feeds one inbound publish (any topic kind, any sender level,
// any bytes) to a connector holding two registrations and a session in
// progress, then a follow-up, and checks it never panics and publishes only
// what a broker and a peer can take.
func FuzzInbound(f *testing.F) {
	senders := []string{"alice", "bob", "carol", "", "a+b", "x/y", "sip:z@q", "conn1"}
	for i, p := range fuzzSeeds() {
		f.Add(byte(i), senders[i%len(senders)], p, byte(i/3))
	}
	f.Fuzz(func(t *testing.T, sel byte, sender string, payload []byte, sel2 byte) {
		o := newOffline(t, nil)
		o.deliver(sel, sender, payload)
		o.check(t, payload)
		// A follow-up on the same session from the other side exercises the state the first left.
		o.deliver(sel2, []string{"alice", "bob"}[sel2%2], []byte(`{"method":"STOP_SESSION","sigSessID":"s1","reason":"bye"}`))
		o.check(t, payload)
		o.c.mu.Lock()
		n := len(o.c.sess.byID)
		o.c.mu.Unlock()
		if n > 2 {
			t.Fatalf("input %q: %d sessions after one START_SESSION and a stop", short(string(payload)), n)
		}
	})
}

// TestInboundNeverPanics feeds every fixture bad input, in full (the huge
// generated ones too), to every handler without the recover guard.
func TestInboundNeverPanics(t *testing.T) {
	t.Parallel()
	o := newOffline(t, func(c *Config) { c.RatePerClient = -1 })
	for _, b := range fixtures.BadInputs() {
		for sel := range byte(6) {
			o.out = nil
			o.deliver(sel, "alice", b.Retarget("/rtcomm/alice", "bob"))
			o.check(t, b.Payload)
		}
	}
	if st := o.c.Stats(); st.Panics != 0 || st.ActiveSessions > 1 {
		t.Fatalf("after the corpus: expected no panics and at most the one session (the empty input on the sphere unregisters alice), actual %+v", st)
	}
}

// TestGuardRecovers: a panicking handler is logged, counted and the message dropped.
func TestGuardRecovers(t *testing.T) {
	t.Parallel()
	o := newOffline(t, nil)
	h := o.c.guard(func(mqttc.Message) { panic(errors.New("boom")) })
	h(mqttc.Message{Topic: "/rtcomm/connector/x", Payload: []byte(`{}`)})
	st := o.c.Stats()
	if st.Panics != 1 || st.Failures["internal_error"] != 1 {
		t.Fatalf("expected 1 panic counted as internal_error, actual %d / %v", st.Panics, st.Failures)
	}
}

// TestLimitsRefused: each limit answers FAILURE with its reason where the
// message has a transID, and is counted by code.
func TestLimitsRefused(t *testing.T) {
	t.Parallel()
	o := newOffline(t, func(c *Config) { c.RatePerClient, c.RateBurst = 1, 3 })
	deep := `{"method":"START_SESSION","transID":"td","fromTopic":"/rtcomm/alice","payload":` +
		strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
	longID := `{"method":"START_SESSION","transID":"tl","fromTopic":"/rtcomm/alice","toEndpointID":"` +
		strings.Repeat("b", spec.DefaultMaxIDLen+1) + `"}`
	huge := `{"method":"START_SESSION","transID":"th","fromTopic":"/rtcomm/alice","payload":{"x":"` +
		strings.Repeat("a", spec.DefaultMaxPayload) + `"}}`
	for _, c := range []struct{ raw, code, want string }{
		{deep, "too_deep", "deeper than 32"}, {longID, "string_too_long", "toEndpointID of 1025 bytes"},
		{huge, "too_large", "exceeds the 1048576-byte limit"},
	} {
		o.out = nil
		o.deliver(0, "carol", []byte(c.raw))
		if len(o.out) != 1 {
			t.Fatalf("%s: expected one answer, actual %d", c.code, len(o.out))
		}
		m, _ := spec.Decode(o.out[0].raw)
		if m == nil || m.Result != spec.ResultFailure || !strings.Contains(m.Reason, c.want) || o.out[0].topic != "/rtcomm/alice/conn1" {
			t.Fatalf("%s: expected FAILURE %q at /rtcomm/alice/conn1, actual %s at %s", c.code, c.want, o.out[0].raw, o.out[0].topic)
		}
		if o.c.Stats().Failures[c.code] != 1 {
			t.Fatalf("%s: not counted: %v", c.code, o.c.Stats().Failures)
		}
	}
	// carol has spent her burst of 3: the next query is answered once, the rest only counted.
	o.out = nil
	for i := range 5 {
		o.deliver(2, "carol", []byte(fmt.Sprintf(`{"method":"SERVICE_QUERY","transID":"q%d","fromTopic":"/rtcomm/carol"}`, i)))
	}
	if len(o.out) != 1 || !strings.Contains(string(o.out[0].raw), "rate limit") {
		t.Fatalf("over rate: expected one rate-limit FAILURE, actual %d: %v", len(o.out), o.out)
	}
	if got := o.c.Stats().Failures["rate_limited"]; got != 5 {
		t.Fatalf("over rate: expected 5 rate_limited counted, actual %d", got)
	}
	// alice is another client: her bucket is untouched.
	o.out = nil
	o.deliver(2, "alice", []byte(`{"method":"SERVICE_QUERY","transID":"qa","fromTopic":"/rtcomm/alice"}`))
	if len(o.out) != 1 || !strings.Contains(string(o.out[0].raw), "SUCCESS") {
		t.Fatalf("other client: expected a SUCCESS answer, actual %v", o.out)
	}
	// Registrations per endpoint.
	o2 := newOffline(t, func(c *Config) { c.MaxRegistrationsPerEndpoint = 2 })
	for _, ctx := range []string{"a", "b", "c"} {
		o2.deliver(5, "dave", doc("addressTopic", "/rtcomm/dave", ctx))
	}
	if st := o2.c.Stats(); st.Registrations != 4 || st.Failures["registration_limit"] != 1 {
		t.Fatalf("registrations per endpoint: expected 4 entries and 1 refused, actual %d / %v", st.Registrations, st.Failures)
	}
}
