package connector

import (
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// TestPresenceGroups: rtcomm.js configured with a presence group registers at
// <path>sphere/<group>/<id> (EndpointConnection.js getMyPresenceTopic). The connector
// routes to it, ignores an empty retained message on another presence topic of the same
// ID, and unregisters it (ending its sessions) on its own topic's clear. REG-001 REG-008
func TestPresenceGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	group := e.topics.SphereIn("agents", "bob")
	if err := bob.c.Publish(e.ctx, group, 1, true, doc("addressTopic", bob.address, "rtcomm")); err != nil {
		t.Fatal(err)
	}
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)

	// A clear on bob's ungrouped presence topic (a stale will, another tab) is not his.
	if err := bob.c.Publish(e.ctx, e.topics.Sphere("bob"), 1, true, nil); err != nil {
		t.Fatal(err)
	}
	alice.expectNone("bob's session survives a clear of a presence topic he is not registered on")
	if n := c.Stats().Registrations; n != 2 {
		t.Fatalf("registrations after a clear elsewhere: expected 2, actual %d", n)
	}
	// His own group topic's clear unregisters him and ends the session. REG-008
	if err := bob.c.Publish(e.ctx, group, 1, true, nil); err != nil {
		t.Fatal(err)
	}
	g := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	if g.m.SigSessID != sid {
		t.Fatalf("STOP_SESSION: expected %s, actual %s", sid, g.raw)
	}
	waitRegistrations(t, c, 1)
}

// TestRtcommJSSessionShapes relays what rtcomm.js sends in a call: two PRANSWERs (the
// second with an empty pranswer sdp), ICE MESSAGEs carrying the START_SESSION's transID,
// a RESPONSE with fromTopic null (answered to the topic the request came from), and a
// reason-less STOP_SESSION with payload null (SigSession.js pranswer, send, respond, stop).
func TestRtcommJSSessionShapes(t *testing.T) {
	t.Parallel()
	_, c, alice, bob := registeredPair(t)
	start, sid := call(t, c, alice, bob)
	tid := start.m.TransID
	reply := spec.Join(start.m.FromTopic, "bob")
	common := func(method string, extra map[string]any) map[string]any {
		m := map[string]any{"rtcommVer": spec.Version, "method": method, "fromTopic": bob.address,
			"toEndpointID": "alice", "sigSessID": sid, "protocols": []string{"webrtc", "chat"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	bob.pubJSON(reply, common("PRANSWER", map[string]any{"payload": nil, "transID": tid}))
	bob.pubJSON(reply, common("PRANSWER", map[string]any{"transID": tid,
		"payload": map[string]any{"webrtc": map[string]any{"type": "pranswer", "sdp": ""}}}))
	for i := range 2 {
		g := alice.expectMethod(spec.MethodPranswer, spec.Join(alice.address, "bob"))
		if g.m.TransID != tid {
			t.Fatalf("PRANSWER %d: expected transID %s, actual %s", i, tid, g.raw)
		}
	}
	cand := map[string]any{"webrtc": map[string]any{"type": "icecandidate",
		"candidate": map[string]any{"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}}
	// rtcomm.js's queued candidates go through the START_SESSION transaction: its transID
	// and the transaction's topic, the connector's main topic.
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), map[string]any{"rtcommVer": spec.Version, "method": "MESSAGE",
		"fromTopic": alice.address, "payload": cand, "toEndpointID": "bob", "sigSessID": sid, "protocols": []string{"webrtc"}, "transID": tid})
	g := bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
	if g.m.SigSessID != sid {
		t.Fatalf("candidate with the START_SESSION's transID: expected relayed in %s, actual %s", sid, g.raw)
	}
	bob.pubJSON(reply, map[string]any{"rtcommVer": spec.Version, "method": "RESPONSE", "fromTopic": nil, "orig": "START_SESSION",
		"transID": tid, "result": "SUCCESS", "protocols": []string{"webrtc", "chat"}, "sigSessID": sid,
		"payload": map[string]any{"webrtc": map[string]any{"type": "answer", "sdp": "v=0\r\n"}}})
	r := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "bob"))
	if r.m.Result != spec.ResultSuccess || r.m.SigSessID != sid {
		t.Fatalf("RESPONSE with fromTopic null: expected SUCCESS relayed, actual %s", r.raw)
	}
	alice.pubJSON(spec.Join(r.m.FromTopic, "alice"), map[string]any{"rtcommVer": spec.Version, "method": "STOP_SESSION",
		"fromTopic": alice.address, "sigSessID": sid, "payload": nil, "toEndpointID": "bob", "protocols": []string{"webrtc"}})
	bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
}

// registeredPair starts a connector and registers alice and bob with it.
func registeredPair(t *testing.T) (*env, *Connector, *ep, *ep) {
	t.Helper()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	for _, p := range []*ep{alice, bob} {
		p.register("rtcomm")
	}
	waitRegistrations(t, c, 2)
	return e, c, alice, bob
}
