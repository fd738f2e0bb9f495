package connector

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// These tests run the connector's secure-mode rules on an open broker: what is checked
// is what the connector itself publishes, whatever the broker would refuse.

// ID-013: a DOCUMENT whose address is not the registrant's own inbox is not registered
// (calls to mallory would land in alice's inbox, and a re-registration would send alice
// DOCUMENT_REPLACED). The registrant's own inbox, with or without a presence group, is.
func TestSecureDocumentAddressMustBeOwnInbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Secure = true })
	alice, bob, mallory := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("mallory")
	alice.register("rtcomm")
	waitRegistrations(t, c, 1)
	for _, addr := range []string{alice.address, alice.address + "/x", e.topics.Path + "Alice", e.topics.Path + "mallory2"} {
		mallory.registerAt(addr, "addressTopic", "rtcomm")
		mallory.registerAt(addr, "topic", "other")
	}
	bob.pubJSON(spec.Join(c.Topics().Connector(), "bob"), startMsg(bob, "mallory", uuid.NewString(), "tx1"))
	r := bob.expectMethod(spec.MethodResponse, spec.Join(bob.address, c.ID()))
	if r.m.Result != spec.ResultFailure {
		t.Fatalf("call to mallory with a foreign address: Expected FAILURE (not registered), Actual %s", r.raw)
	}
	alice.expectNone("nothing for mallory lands in alice's inbox, no DOCUMENT_REPLACED")
	if n := c.Stats().Registrations; n != 1 {
		t.Fatalf("Expected only alice registered, Actual %d registrations", n)
	}

	// The control: her own inbox registers, and so does rtcomm.js's grouped presence.
	mallory.register("rtcomm")
	waitRegistrations(t, c, 2)
	if err := bob.c.Publish(e.ctx, e.topics.Sphere("grp/bob"), 1, true, doc("addressTopic", bob.address, "rtcomm")); err != nil {
		t.Fatal(err)
	}
	waitRegistrations(t, c, 3)
}

// ID-014: the connector answers only into the requester's own inbox. A fromTopic in
// another's inbox (bob's, even ending in alice's ID) gets nothing published there.
func TestSecureRepliesOnlyToOwnInbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Secure = true; cfg.CallControllers = []string{"mallory"} })
	alice, bob, mallory := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("mallory")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	foreign := spec.Join(bob.address, "alice") // bob's inbox, sender level alice

	mallory.pubJSON(spec.Join(c.Topics().Management(), "mallory"), map[string]any{"method": "SERVICE_QUERY",
		"rtcommVer": spec.Version, "transID": "q1", "fromTopic": foreign})
	mallory.pubJSON(spec.Join(c.Topics().Connector(), "mallory"), map[string]any{"method": "START_SESSION",
		"rtcommVer": spec.Version, "transID": "s1", "sigSessID": uuid.NewString(), "toEndpointID": "nobody",
		"fromTopic": foreign, "protocols": []string{"webrtc"}})
	mallory.pubJSON(spec.Join(c.Topics().Connector(), "mallory"), startMsg(&ep{address: foreign}, "alice", uuid.NewString(), "s2"))
	for _, tx := range []string{"p1", "p2"} {
		callee := map[string]string{"p1": "bob", "p2": "nobody"}[tx]
		mallory.pubJSON(spec.Join(c.Topics().CallControl(), "mallory"), map[string]any{"method": "3PCC_PLACE_CALL",
			"rtcommVer": spec.Version, "transID": tx, "callerEndpoint": "alice", "calleeEndpoint": callee, "fromTopic": foreign})
	}
	bob.expectNone("nothing published into bob's inbox on mallory's request")
	alice.expectNone("no call from mallory with a foreign fromTopic, no REFER")

	// The control: her own inbox is answered, signed by the connector.
	mallory.pubJSON(spec.Join(c.Topics().Management(), "mallory"), map[string]any{"method": "SERVICE_QUERY",
		"rtcommVer": spec.Version, "transID": "q2", "fromTopic": mallory.address})
	mallory.expectMethod(spec.MethodResponse, spec.Join(mallory.address, c.ID()))
	mallory.pubJSON(spec.Join(c.Topics().CallControl(), "mallory"), map[string]any{"method": "3PCC_PLACE_CALL",
		"rtcommVer": spec.Version, "transID": "p3", "callerEndpoint": "alice", "calleeEndpoint": "nobody", "fromTopic": mallory.address})
	r := mallory.expectMethod(spec.MethodResponse, spec.Join(mallory.address, c.ID()))
	if r.m.TransID != "p3" || r.m.Result != spec.ResultFailure {
		t.Fatalf("3PCC for an unknown callee: Expected FAILURE for p3 at mallory's inbox, Actual %s", r.raw)
	}
}

// ID-015: in secure mode only configured call controllers may place calls; the bare
// call-control topic, which names no sender, is refused.
func TestSecure3PCCOnlyControllers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Secure = true; cfg.CallControllers = []string{"ctl"} })
	alice, bob, mallory, ctl := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("mallory"), e.endpoint("ctl")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	place := func(p *ep, topic, tx string) {
		p.pubJSON(topic, map[string]any{"method": "3PCC_PLACE_CALL", "rtcommVer": spec.Version, "transID": tx,
			"callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": p.address})
	}
	place(mallory, spec.Join(c.Topics().CallControl(), "mallory"), "m1")
	r := mallory.expectMethod(spec.MethodResponse, spec.Join(mallory.address, c.ID()))
	if r.m.Result != spec.ResultFailure || !contains(r.m.Reason, "not a call controller") {
		t.Fatalf("mallory's 3PCC: Expected FAILURE \"not a call controller\", Actual %s", r.raw)
	}
	place(ctl, c.Topics().CallControl(), "c0") // no sender level
	alice.expectNone("no REFER for a non-controller or the bare topic")

	place(ctl, spec.Join(c.Topics().CallControl(), "ctl"), "c1")
	alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))

	// Without controllers, secure mode serves 3PCC to no one.
	e2 := newEnv(t)
	c2 := e2.connector(func(cfg *Config) { cfg.Secure = true })
	a2, b2, m2 := e2.endpoint("alice"), e2.endpoint("bob"), e2.endpoint("mallory")
	a2.register("rtcomm")
	b2.register("rtcomm")
	waitRegistrations(t, c2, 2)
	place(m2, spec.Join(c2.Topics().CallControl(), "mallory"), "m2")
	m2.expectMethod(spec.MethodResponse, spec.Join(m2.address, c2.ID()))
	a2.expectNone("no REFER without configured controllers")
}

// ID-015: a pending 3PCC request completes only with exactly the referred session
// (sigSessID = the REFER's details.sessionID, same caller and callee): a later,
// unrelated call between the same two endpoints does not answer it.
func Test3PCCBoundToReferredSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.ThreePCCTimeout = 1500 * time.Millisecond })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	ctl := e.endpoint("ctl")
	ctl.pubJSON(spec.Join(c.Topics().CallControl(), "ctl"), map[string]any{"method": "3PCC_PLACE_CALL",
		"rtcommVer": spec.Version, "transID": "t1", "callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctl.address})
	ref := alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	var d spec.ReferDetails
	if err := json.Unmarshal(ref.m.Details, &d); err != nil || d.SessionID == "" {
		t.Fatalf("REFER details: %s (%v)", ref.m.Details, err)
	}
	// alice ignores the REFER and calls bob on her own.
	start, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	ctl.expectNone("an unrelated call of the same pair does not answer the 3PCC request")
	r := ctl.expectMethod(spec.MethodResponse, ctl.address) // open mode: fromTopic exactly REF-005
	if r.m.TransID != "t1" || r.m.Result != spec.ResultFailure {
		t.Fatalf("3PCC request: Expected FAILURE (timeout) for t1, Actual %s", r.raw)
	}
}

// ID-015: in secure mode replicas take claims and outcomes only from replicas (client
// IDs naming the connector's user): an endpoint may publish to <path>connector/~<group>/<its
// ID> (the broker lets it, as a reply topic), but its forged outcome answers nothing.
func TestSecureReplicaChannelOnlyReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mod := func(id string) func(*Config) {
		return func(cfg *Config) {
			cfg.SharedGroup, cfg.ClientID, cfg.Username = "grp", "conn:"+id, "conn"
			cfg.Secure, cfg.CallControllers = true, []string{"ctl"}
		}
	}
	r1 := e.connector(mod("r1"))
	r2 := e.connector(mod("r2"))
	alice, bob, ctl, mallory := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("ctl"), e.endpoint("mallory")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, r1, 2)
	waitRegistrations(t, r2, 2)
	ctl.pubJSON(spec.Join(r1.Topics().CallControl(), "ctl"), map[string]any{"method": "3PCC_PLACE_CALL",
		"rtcommVer": spec.Version, "transID": "t1", "callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctl.address})
	ref := alice.expect("REFER")
	var d spec.ReferDetails
	if ref.m == nil || json.Unmarshal(ref.m.Details, &d) != nil || d.SessionID == "" {
		t.Fatalf("expected a REFER with details.sessionID, actual %s", ref.raw)
	}
	mallory.pubJSON(r1.Topics().Connector()+"/~grp/mallory", map[string]any{"method": "RESPONSE",
		"orig": "3PCC_PLACE_CALL", "sessionID": d.SessionID, "result": "SUCCESS"})
	ctl.expectNone("no 3PCC answer for a call that never happened")
}

// ID-014: what the connector writes itself when it ends a session (the caller's FAILURE
// on timeout, STOP_SESSION to a party whose peer left) carries the connector's ID as
// sender level in secure mode, never the other party's.
func TestSecureConnectorSignsWhatItWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Secure, cfg.AnswerTimeout = true, 300*time.Millisecond })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	call(t, c, alice, bob) // bob never answers
	r := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, c.ID()))
	if r.m.Result != spec.ResultFailure {
		t.Fatalf("timed-out call: Expected FAILURE, Actual %s", r.raw)
	}
	bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, c.ID()))
}

// ID-015: lib.rtcomm.node publishes on the bare call-control topic, which only the
// connector's own user may publish to on a secured broker; it is served there only when
// that user is listed as a controller, and answered at its fromTopic exactly.
func TestSecureBare3PCCOnlyForConnectorUser(t *testing.T) {
	t.Parallel()
	for _, listed := range []bool{false, true} {
		e := newEnv(t)
		c := e.connector(func(cfg *Config) {
			cfg.Secure, cfg.Username, cfg.CallControllers = true, "conn", []string{"ops"}
			if listed {
				cfg.CallControllers = append(cfg.CallControllers, "conn")
			}
		})
		alice, bob := e.endpoint("alice"), e.endpoint("bob")
		alice.register("rtcomm")
		bob.register("rtcomm")
		waitRegistrations(t, c, 2)
		svc, svcTopic := e.client("svc"), "svc-"+uuid.NewString()[:8] // a bare client ID, as lib.rtcomm.node uses
		svc.subscribe(svcTopic)
		for _, callee := range []string{"nobody", "bob"} {
			svc.pubJSON(c.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "rtcommVer": "v0.0.1",
				"transID": "t-" + callee, "callerEndpoint": "alice", "calleeEndpoint": callee, "fromTopic": svcTopic})
		}
		if !listed {
			svc.expectNone("no answer on the bare topic unless the connector's user is a controller")
			alice.expectNone("no REFER")
			continue
		}
		r := svc.expectMethod(spec.MethodResponse, svcTopic)
		if r.m.TransID != "t-nobody" || r.m.Result != spec.ResultFailure {
			t.Fatalf("3PCC for an unknown callee: Expected FAILURE at %s, Actual %s", svcTopic, r.raw)
		}
		alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	}
}
