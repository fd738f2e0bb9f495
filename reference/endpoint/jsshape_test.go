package endpoint_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// recorder keeps every publish under a path, in arrival order.
type recorder struct {
	mu   sync.Mutex
	msgs []mqttc.Message
}

func (r *recorder) all() []mqttc.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mqttc.Message(nil), r.msgs...)
}

func record(t *testing.T, v *env) *recorder {
	t.Helper()
	r := &recorder{}
	c := v.raw("recorder")
	if err := c.Subscribe(testCtx(t), v.path+"#", 1, func(m mqttc.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, mqttc.Message{Topic: m.Topic, Payload: append([]byte(nil), m.Payload...), Retained: m.Retained})
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRtcommJSShape drives two rtcomm.js-shaped endpoints (one in a presence group) through
// the reference connector and holds what they publish to the client profile and to the
// shapes rtcomm.js sends (Config.Shape docs name the sources).
func TestRtcommJSShape(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	rec := record(t, v)
	js := func(id, group string) endpoint.Config {
		cfg := v.config(id)
		cfg.Shape, cfg.PresenceGroup, cfg.Protocols = endpoint.ShapeRtcommJS, group, []string{"webrtc", "chat"}
		cfg.AddressFromClientID = true
		return cfg
	}
	alice := viaConnector(t, v, c, js("alice", ""))
	bob := viaConnector(t, v, c, js("bob", "agents"))
	carol := viaConnector(t, v, c, js("carol", ""))
	waitRegistrations(t, c, 3)
	expectEqual(t, "bob's presence topic", v.path+"sphere/agents/bob", bob.Presence())

	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	inv := invite(t, ctx, bob)
	<-call.Pranswered()
	if err := call.SendCandidate(ctx, cand(1)); err != nil { // before the answer: carries transID
		t.Fatal(err)
	}
	// A second call to bob while he has one: rtcomm.js answers FAILURE "Busy".
	second, err := carol.Call(ctx, "bob", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Await(ctx)
	var rej *endpoint.Rejected
	if !errors.As(err, &rej) || rej.Reason != "Busy" {
		t.Fatalf("second call to a busy rtcomm.js endpoint: expected rejected \"Busy\", actual %v", err)
	}
	in, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.SendCandidate(ctx, cand(2)); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ctx, call, "bob's candidate")
	if err := call.Stop(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, in, "bob")
	time.Sleep(200 * time.Millisecond)

	var pranswers, bobResponses, transICE, stops int
	for _, m := range rec.all() {
		for _, viol := range (spec.Validator{Topics: spec.NewTopics(v.path), Profile: spec.ProfileClient}).Validate(m.Topic, m.Payload) {
			t.Errorf("client profile rejects %s: %v (%s)", m.Topic, viol, m.Payload)
		}
		d, _ := spec.Decode(m.Payload)
		if d == nil {
			continue
		}
		// What the endpoints published to the connector (not what it relayed).
		toConn := strings.HasPrefix(m.Topic, v.path+"connector/")
		fromBob := toConn && strings.HasSuffix(m.Topic, "/bob")
		switch {
		case d.Method == spec.MethodPranswer && fromBob:
			pranswers++
			if d.ToEndpointID != "alice" || d.TransID != call.TransID() {
				t.Errorf("PRANSWER: expected toEndpointID alice and the START_SESSION's transID, actual %s", m.Payload)
			}
		case d.Method == spec.MethodResponse && fromBob && d.Orig == spec.MethodStartSession:
			bobResponses++
			if !bytes.Contains(m.Payload, []byte(`"fromTopic":null`)) {
				t.Errorf("bob's RESPONSE: expected fromTopic null, actual %s", m.Payload)
			}
		case d.Method == spec.MethodMessage && toConn && strings.HasSuffix(m.Topic, "/alice") && d.TransID == call.TransID():
			transICE++
		case d.Method == spec.MethodStopSession && toConn && strings.HasSuffix(m.Topic, "/alice"):
			stops++
			if d.Reason != "" || !bytes.Contains(m.Payload, []byte(`"payload":null`)) || d.ToEndpointID != "bob" {
				t.Errorf("STOP_SESSION: expected no reason, payload null, toEndpointID bob, actual %s", m.Payload)
			}
		}
	}
	expectEqual(t, "PRANSWERs bob sent to alice's call (null, then pranswer sdp \"\")", 2, pranswers)
	if bobResponses < 2 || transICE < 1 || stops != 1 {
		t.Errorf("expected bob's answer and Busy (fromTopic null), a candidate with the START_SESSION's transID, one STOP_SESSION; "+
			"actual %d responses, %d candidates, %d stops", bobResponses, transICE, stops)
	}
}

// TestRtcommJSReplaced: 500 ms after DOCUMENT_REPLACED an rtcomm.js-shaped endpoint clears
// its presence topic and closes (EndpointProvider.js reset); not before.
func TestRtcommJSReplaced(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	cfg := v.config("alice")
	cfg.Shape = endpoint.ShapeRtcommJS
	old := viaConnector(t, v, c, cfg)
	mon := v.raw("monitor")
	clears := v.sub(mon, v.path+"sphere/alice")
	next(t, ctx, clears, "alice's retained DOCUMENT")
	cfg.ClientID, cfg.AddressFromClientID = mqttc.RandomClientID("new"), true
	newer := viaConnector(t, v, c, cfg)
	_ = newer
	<-old.Replaced()
	at := time.Now()
	next(t, ctx, clears, "the newcomer's DOCUMENT")
	m := next(t, ctx, clears, "the replaced client's clear")
	if len(m.Payload) != 0 || time.Since(at) < 400*time.Millisecond {
		t.Fatalf("expected an empty retained message about 500 ms after DOCUMENT_REPLACED, actual %q after %v", m.Payload, time.Since(at))
	}
	select {
	case <-old.Done():
	case <-ctx.Done():
		t.Fatal("the replaced endpoint did not close")
	}
	if !errors.Is(old.Err(), endpoint.ErrReplaced) {
		t.Errorf("Err: expected ErrReplaced, actual %v", old.Err())
	}
}
