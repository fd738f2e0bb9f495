package connector

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// What rtcomm.js sends to the general connector topic <path>connector/<caller> while
// its START_SESSION transaction is open (SigSession.send -> Transaction.send, whose
// toTopic stays null: EndpointConnection.normalizeTopic then picks the connector
// topic): MESSAGEs carrying the START_SESSION's transID, toEndpointID = the callee,
// sigSessID and fromTopic = its own inbox. After the answer it sends to the last
// fromTopic it saw from the peer, without transID; with no PRANSWER seen, that is
// the connector topic again (STOP_SESSION included).

func iceMsg(caller *ep, callee, sid, transID string, n int) map[string]any {
	m := map[string]any{"method": "MESSAGE", "rtcommVer": spec.Version, "fromTopic": caller.address,
		"toEndpointID": callee, "sigSessID": sid,
		"payload": map[string]any{"webrtc": map[string]any{"type": "icecandidate", "candidate": map[string]any{
			"candidate": fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.1 %d typ host", n, 50000+n),
			"sdpMid":    "0", "sdpMLineIndex": 0}}}}
	if transID != "" {
		m["transID"] = transID
	}
	return m
}

func pranswerMsg(callee *ep, sid, transID string) map[string]any {
	return map[string]any{"method": "PRANSWER", "rtcommVer": spec.Version, "fromTopic": callee.address,
		"sigSessID": sid, "transID": transID, "protocols": []string{"webrtc"},
		"payload": map[string]any{"webrtc": map[string]any{"type": "pranswer", "sdp": ""}}}
}

func replica(e *env, n int, mod func(*Config)) *Connector {
	return e.connector(func(cfg *Config) {
		cfg.SharedGroup, cfg.ClientID = "grp", fmt.Sprintf("replica-%d-%s", n, uuid.NewString()[:6])
		if mod != nil {
			mod(cfg)
		}
	})
}

// replicaPair starts two replicas (mod adjusts both) and registers alice and bob.
func replicaPair(t *testing.T, mod func(*Config)) (e *env, r1, r2 *Connector, alice, bob *ep) {
	t.Helper()
	e = newEnv(t)
	r1, r2 = replica(e, 1, mod), replica(e, 2, mod)
	alice, bob = e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, r1, 2)
	waitRegistrations(t, r2, 2)
	return e, r1, r2, alice, bob
}

// routeOnlyPair starts a route-only connector and registers alice and bob.
func routeOnlyPair(t *testing.T) (*env, *Connector, *ep, *ep) {
	t.Helper()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.RouteOnly = true })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	return e, c, alice, bob
}

// TestRouteOnlyICEBeforeAnswer: the issue-17 failure. A route-only connector does
// not track the call, yet the caller's candidates sent to the general topic before
// the answer reach the callee unchanged, once each, and nobody gets FAILURE.
func TestRouteOnlyICEBeforeAnswer(t *testing.T) {
	t.Parallel()
	_, c, alice, bob := routeOnlyPair(t)
	connTopic := spec.Join(c.Topics().Connector(), "alice")

	sid, tx := uuid.NewString(), uuid.NewString()
	alice.pubJSON(connTopic, startMsg(alice, "bob", sid, tx))
	start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	if start.m.FromTopic != alice.address {
		t.Fatalf("route-only START_SESSION fromTopic: expected %s, actual %s", alice.address, start.m.FromTopic)
	}
	bob.pubJSON(spec.Join(alice.address, "bob"), pranswerMsg(bob, sid, tx))
	alice.expectMethod(spec.MethodPranswer, spec.Join(alice.address, "bob"))
	for i := range 3 {
		raw, _ := json.Marshal(iceMsg(alice, "bob", sid, tx, i))
		alice.pub(connTopic, raw)
		g := bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
		if string(g.raw) != string(raw) {
			t.Fatalf("candidate %d: expected it untouched\nexpected %s\nactual   %s", i, raw, g.raw)
		}
	}
	bob.expectNone("each candidate delivered once")
	alice.expectNone("no FAILURE for the caller's candidates")

	// A caller that hangs up before any PRANSWER sends its STOP_SESSION there too.
	sid2 := uuid.NewString()
	alice.pubJSON(connTopic, startMsg(alice, "bob", sid2, uuid.NewString()))
	bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	stop := stopMsg(sid2, alice.address)
	stop["toEndpointID"] = "bob"
	alice.pubJSON(connTopic, stop)
	bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))

	// Unknown callee: nothing to deliver to; a request is still answered FAILURE.
	alice.pubJSON(connTopic, iceMsg(alice, "nobody", uuid.NewString(), uuid.NewString(), 9))
	if g := alice.expect("FAILURE for a message to nobody"); g.m == nil || g.m.Result != spec.ResultFailure {
		t.Fatalf("message for an unknown session and callee: expected FAILURE, actual %s", g.raw)
	}
	if st := c.Stats(); st.Forwarded != 4 || st.ActiveSessions != 0 {
		t.Fatalf("route-only: expected 4 forwarded and nothing tracked, actual %d forwarded, %d tracked", st.Forwarded, st.ActiveSessions)
	}
}

// TestReplicasICEBeforeAnswer: the issue-17 failure with two replicas on a shared
// subscription. Candidates and a STOP_SESSION sent to the general topic reach
// whichever replica the broker picks; each reaches the callee once, relayed by
// the owner (fromTopic rewritten to its session topic), and the session ends
// with one `stopped` event.
func TestReplicasICEBeforeAnswer(t *testing.T) {
	t.Parallel()
	e, r1, r2, alice, bob := replicaPair(t, nil)
	mon := e.client("monitor")
	mon.subscribe(r1.Topics().Events() + "/session/stopped/#")
	connTopic := spec.Join(r1.Topics().Connector(), "alice")

	const calls, candidates = 6, 4
	for i := range calls {
		sid, tx := uuid.NewString(), uuid.NewString()
		alice.pubJSON(connTopic, startMsg(alice, "bob", sid, tx))
		start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
		owner := start.m.FromTopic
		bob.pubJSON(spec.Join(owner, "bob"), pranswerMsg(bob, sid, tx))
		alice.expectMethod(spec.MethodPranswer, spec.Join(alice.address, "bob"))
		for n := range candidates {
			alice.pubJSON(connTopic, iceMsg(alice, "bob", sid, tx, n))
			g := bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
			if g.m.FromTopic != owner || g.m.SigSessID != sid || g.m.TransID != tx {
				t.Fatalf("call %d candidate %d: expected relayed by %s with sigSessID and transID kept, actual %s", i, n, owner, g.raw)
			}
		}
		bob.expectNone("each candidate delivered once")
		answer(t, r1, alice, bob, start)
		alice.expectNone("no FAILURE for the caller's candidates")
		// No PRANSWER seen by this client would send STOP there as well (without transID).
		stop := stopMsg(sid, alice.address)
		stop["toEndpointID"] = "bob"
		alice.pubJSON(connTopic, stop)
		bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
		ev := mon.expect("the stopped event")
		if ev.m == nil || ev.m.SigSessID != sid {
			t.Fatalf("call %d: expected event stopped for %s, actual %s at %s", i, sid, ev.raw, ev.topic)
		}
	}
	mon.expectNone("one stopped event per call")
	s1, s2 := r1.Stats(), r2.Stats()
	if s1.Forwarded+s2.Forwarded == 0 {
		t.Fatalf("expected some of %d messages to reach the replica without the session and be forwarded; none was", calls*(candidates+1))
	}
	if s1.ActiveSessions+s2.ActiveSessions != 0 || s1.SessionsStopped+s2.SessionsStopped != calls {
		t.Fatalf("expected %d sessions stopped and none left, actual %d+%d stopped, %d+%d left", calls,
			s1.SessionsStopped, s2.SessionsStopped, s1.ActiveSessions, s2.ActiveSessions)
	}
	t.Logf("forwarded: %d + %d", s1.Forwarded, s2.Forwarded)
}

// TestReplicasForwardingKeepsSender: the forwarding path gives no one a way into a
// session: mallory's message for alice and bob's session, sent to the general
// topic, is delivered to nobody, whichever replica gets it.
func TestReplicasForwardingKeepsSender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r1, r2 := replica(e, 1, nil), replica(e, 2, nil)
	alice, bob, mallory := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("mallory")
	for _, p := range []*ep{alice, bob, mallory} {
		p.register("rtcomm")
	}
	waitRegistrations(t, r1, 3)
	waitRegistrations(t, r2, 3)
	start, sid := call(t, r1, alice, bob)
	answer(t, r1, alice, bob, start)
	for i := range 8 {
		m := iceMsg(mallory, "bob", sid, fmt.Sprint("m", i), i)
		mallory.pubJSON(spec.Join(r1.Topics().Connector(), "mallory"), m)
		if g := mallory.expect("FAILURE not a party"); g.m == nil || g.m.Result != spec.ResultFailure || !contains(g.m.Reason, "not a party") {
			t.Fatalf("mallory's message %d: expected FAILURE not a party, actual %s", i, g.raw)
		}
	}
	bob.expectNone("nothing of mallory's delivered")
	alice.expectNone("nothing of mallory's delivered")
}

// TestReplicas3PCCViaConnectorTopic: the issue-17 3PCC failure. rtcomm.js answers
// REFER and, with no PRANSWER seen, sends STOP_SESSION to the general topic; either
// may land on a replica that does not hold the request or the session.
func TestReplicas3PCCViaConnectorTopic(t *testing.T) {
	t.Parallel()
	e, r1, r2, alice, bob := replicaPair(t, nil)
	mon := e.client("monitor")
	mon.subscribe(r1.Topics().Events() + "/session/stopped/#")
	ctl, ctlTopic := e.client("ctl"), "ctl-"+uuid.NewString()[:8]
	ctl.subscribe(ctlTopic)
	connTopic := spec.Join(r1.Topics().Connector(), "alice")
	const calls = 6
	for i := range calls {
		tx := fmt.Sprint("p", i)
		ctl.pubJSON(r1.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "transID": tx,
			"callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctlTopic})
		ref := alice.expect("REFER")
		if ref.m == nil || ref.m.Method != spec.MethodRefer ||
			(ref.topic != spec.Join(alice.address, r1.ID()) && ref.topic != spec.Join(alice.address, r2.ID())) {
			t.Fatalf("call %d: expected REFER from a replica, actual %s at %s", i, ref.raw, ref.topic)
		}
		var d spec.ReferDetails
		_ = json.Unmarshal(ref.m.Details, &d)
		alice.pubJSON(connTopic, startMsg(alice, "bob", d.SessionID, uuid.NewString()))
		start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
		answer(t, r1, alice, bob, start)
		// The REFER answer after the call is answered, to the general topic (rtcomm.js).
		alice.pubJSON(connTopic, map[string]any{"method": "RESPONSE", "rtcommVer": spec.Version, "orig": "REFER",
			"transID": ref.m.TransID, "result": "SUCCESS", "fromTopic": nil})
		r := ctl.expectMethod(spec.MethodResponse, ctlTopic)
		if r.m.Result != spec.ResultSuccess || r.m.TransID != tx {
			t.Fatalf("call %d: expected SUCCESS for %s, actual %s", i, tx, r.raw)
		}
		stop := stopMsg(d.SessionID, alice.address)
		stop["toEndpointID"] = "bob"
		alice.pubJSON(connTopic, stop)
		bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
		if ev := mon.expect("the stopped event"); ev.m == nil || ev.m.SigSessID != d.SessionID {
			t.Fatalf("call %d: expected event stopped for %s, actual %s", i, d.SessionID, ev.raw)
		}
	}
	// A refused REFER, answered to the general topic: the replica that sent the
	// REFER answers the requester FAILURE at once (not after ThreePCCTimeout).
	for i := range 6 {
		tx := fmt.Sprint("refused", i)
		ctl.pubJSON(r1.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "transID": tx,
			"callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctlTopic})
		ref := alice.expect("REFER")
		alice.pubJSON(connTopic, map[string]any{"method": "RESPONSE", "rtcommVer": spec.Version, "orig": "REFER",
			"transID": ref.m.TransID, "result": "FAILURE", "reason": "user ignored", "fromTopic": nil})
		r := ctl.expectMethod(spec.MethodResponse, ctlTopic)
		if r.m.Result != spec.ResultFailure || r.m.TransID != tx || !contains(r.m.Reason, "user ignored") {
			t.Fatalf("refused REFER %d: expected FAILURE for %s with the caller's reason, actual %s", i, tx, r.raw)
		}
	}
	ctl.expectNone("one answer per request")
	mon.expectNone("one stopped event per call")
	if s1, s2 := r1.Stats(), r2.Stats(); s1.ActiveSessions+s2.ActiveSessions != 0 {
		t.Fatalf("expected no session left, actual %d + %d", s1.ActiveSessions, s2.ActiveSessions)
	}
}

// crash makes c vanish as a killed process does: no more handling, the socket
// dropped without DISCONNECT (the broker publishes its will).
func crash(c *Connector) {
	c.closed.Store(true)
	c.serving.Store(false)
	c.client.(interface{ Kill() }).Kill()
}

// TestReplicaDies: a replica that crashes has its sessions ended for both parties
// with a reason by the survivor (answered calls: STOP_SESSION to each; unanswered:
// FAILURE and STOP_SESSION to the caller, STOP_SESSION to the callee), events fire,
// and new calls go to the survivor.
func TestReplicaDies(t *testing.T) {
	t.Parallel()
	e, r1, r2, alice, bob := replicaPair(t, nil)
	mon := e.client("monitor")
	mon.subscribe(r1.Topics().Events() + "/session/#")

	// Calls until r2 holds one answered session, then one unanswered one on r2.
	var answered, pending string
	for i := 0; i < 40 && (answered == "" || pending == ""); i++ {
		start, sid := call(t, r1, alice, bob)
		if start.m.FromTopic != r2.SessionTopic() {
			answer(t, r1, alice, bob, start)
			alice.pubJSON(spec.Join(start.m.FromTopic, "alice"), stopMsg(sid, alice.address))
			bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
			continue
		}
		if answered == "" {
			answer(t, r1, alice, bob, start)
			answered = sid
		} else {
			pending = sid
		}
	}
	if answered == "" || pending == "" {
		t.Fatalf("expected r2 to route some of 40 calls; it routed too few (answered %q, pending %q)", answered, pending)
	}
	for len(mon.inbox) > 0 {
		<-mon.inbox
	}
	crash(r2)

	got := map[string]bool{}
	for range 5 {
		select {
		case g := <-alice.inbox:
			got["alice "+string(g.m.Method)+" "+g.m.SigSessID] = true
			if g.m.Reason == "" || !contains(g.m.Reason, "went away") || g.topic != spec.Join(alice.address, "bob") {
				t.Fatalf("caller: expected a message as from bob with a reason, actual %s at %s", g.raw, g.topic)
			}
		case g := <-bob.inbox:
			got["bob "+string(g.m.Method)+" "+g.m.SigSessID] = true
			if g.m.Reason == "" || g.topic != spec.Join(bob.address, "alice") {
				t.Fatalf("callee: expected a message as from alice with a reason, actual %s at %s", g.raw, g.topic)
			}
		case <-e.ctx.Done():
			t.Fatal("test context ended")
		case <-time.After(waitTime):
			t.Fatalf("after the crash: expected 5 messages, got %v", got)
		}
	}
	for _, k := range []string{"alice STOP_SESSION " + answered, "bob STOP_SESSION " + answered,
		"alice RESPONSE " + pending, "alice STOP_SESSION " + pending, "bob STOP_SESSION " + pending} {
		if !got[k] {
			t.Fatalf("after the crash: expected %q, got %v", k, got)
		}
	}
	alice.expectNone("each party told once")
	bob.expectNone("each party told once")
	// Events of earlier calls may still be on their way: wait for these two.
	ev := r1.Topics().Events() + "/session/"
	want := map[string]bool{ev + "stopped " + answered: true, ev + "failed " + pending: true}
	for len(want) > 0 {
		g := mon.expect(fmt.Sprintf("events %v for the crashed replica's sessions", want))
		delete(want, spec.Parent(spec.Parent(g.topic))+" "+g.m.SigSessID)
	}
	if r1.Stats().ReplicaSessionsEnded != 2 {
		t.Fatalf("survivor: expected 2 sessions of the dead replica ended, actual %d", r1.Stats().ReplicaSessionsEnded)
	}
	// New calls go to the survivor.
	for range 3 {
		start, _ := call(t, r1, alice, bob)
		if start.m.FromTopic != r1.SessionTopic() {
			t.Fatalf("after the crash: expected the survivor to route, actual %s", start.m.FromTopic)
		}
		answer(t, r1, alice, bob, start)
	}
}

// TestRouteOnlyForwardsOnlyTheCaller: the route-only path serves the caller of a
// call the connector forwarded, nobody else, and nothing for calls it never saw.
func TestRouteOnlyForwardsOnlyTheCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.RouteOnly = true })
	alice, bob, mallory := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("mallory")
	for _, p := range []*ep{alice, bob, mallory} {
		p.register("rtcomm")
	}
	waitRegistrations(t, c, 3)
	sid := uuid.NewString()
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "bob", sid, uuid.NewString()))
	bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	mallory.pubJSON(spec.Join(c.Topics().Connector(), "mallory"), iceMsg(mallory, "bob", sid, "m1", 1))
	if g := mallory.expect("FAILURE"); g.m == nil || g.m.Result != spec.ResultFailure {
		t.Fatalf("mallory in alice's call: expected FAILURE, actual %s", g.raw)
	}
	// A message naming bob for a call the connector never forwarded.
	mallory.pubJSON(spec.Join(c.Topics().Connector(), "mallory"), iceMsg(mallory, "bob", uuid.NewString(), "m2", 2))
	if g := mallory.expect("FAILURE"); g.m == nil || g.m.Result != spec.ResultFailure || !contains(g.m.Reason, "unknown session") {
		t.Fatalf("message for a call never forwarded: expected FAILURE unknown session, actual %s", g.raw)
	}
	bob.expectNone("nothing of mallory's delivered")
}

// TestReplicasEarlyCandidates: a caller that trickles at once after START_SESSION
// (no PRANSWER awaited) can reach the other replica before the owner's record
// does; such messages wait for the record and are delivered, none lost.
func TestReplicasEarlyCandidates(t *testing.T) {
	t.Parallel()
	for _, routeOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-path", true: "route-only"}[routeOnly], func(t *testing.T) {
			t.Parallel()
			_, r1, r2, alice, bob := replicaPair(t, func(cfg *Config) { cfg.RouteOnly = routeOnly })
			connTopic := spec.Join(r1.Topics().Connector(), "alice")
			const calls, candidates = 5, 8
			for i := range calls {
				sid := uuid.NewString()
				alice.pubJSON(connTopic, startMsg(alice, "bob", sid, uuid.NewString()))
				for n := range candidates {
					m := iceMsg(alice, "bob", sid, "", n)
					delete(m, "toEndpointID") // the written spec's MESSAGE has none
					alice.pubJSON(connTopic, m)
				}
				bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
				seen := map[string]int{}
				for range candidates {
					g := bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
					seen[string(g.m.Payload)]++
				}
				bob.expectNone("each candidate once")
				if len(seen) != candidates {
					t.Fatalf("call %d: expected %d distinct candidates, actual %d", i, candidates, len(seen))
				}
				alice.expectNone("no FAILURE")
			}
			if s1, s2 := r1.Stats(), r2.Stats(); s1.Forwarded+s2.Forwarded == 0 {
				t.Fatalf("expected some candidates to reach the replica without the call; none did")
			}
		})
	}
}

// TestReplicaJoinsLater: records are not retained (ROB-003), so a replica that
// starts while calls run learns them from the others' answer to its hello and
// forwards their messages too.
func TestReplicaJoinsLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r1 := replica(e, 1, nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, r1, 2)
	start, sid := call(t, r1, alice, bob)
	answer(t, r1, alice, bob, start)
	r2 := replica(e, 2, nil)
	waitFor(t, "r2 to learn r1's session", func() bool {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		_, ok := r2.ownerOfLocked(sid)
		return ok
	})
	for n := range 20 {
		alice.pubJSON(spec.Join(r1.Topics().Connector(), "alice"), iceMsg(alice, "bob", sid, "", n))
		bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
	}
	if r2.Stats().Forwarded == 0 {
		t.Fatalf("expected the late replica to forward some of 20 messages; it forwarded none")
	}
}

// TestRouteOnlyUnregisterEndsCalls: a route-only connector ends the calls it
// remembers when a party's presence goes (REG-008), as from the one that left.
func TestRouteOnlyUnregisterEndsCalls(t *testing.T) {
	t.Parallel()
	_, c, alice, bob := routeOnlyPair(t)
	_, sid := call(t, c, alice, bob)
	bob.unregister()
	g := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	if g.m.SigSessID != sid || !contains(g.m.Reason, "unregistered") {
		t.Fatalf("expected STOP_SESSION for %s with a reason, actual %s", sid, g.raw)
	}
	alice.unregister()
	bob.expectNone("a forgotten call is not ended twice")
}

// TestReplicaCloseHandsOver: a replica stopped cleanly (no will) says it is going,
// and the survivor ends its answered sessions for both parties.
func TestReplicaCloseHandsOver(t *testing.T) {
	t.Parallel()
	_, r1, r2, alice, bob := replicaPair(t, nil)
	var sid string
	for i := 0; i < 40 && sid == ""; i++ {
		start, s := call(t, r1, alice, bob)
		answer(t, r1, alice, bob, start)
		if start.m.FromTopic == r2.SessionTopic() {
			sid = s
		}
	}
	if sid == "" {
		t.Fatal("expected r2 to route one of 40 calls; it routed none")
	}
	before := r1.Stats().ReplicaSessionsEnded
	_ = r2.Close()
	waitFor(t, "r1 to end r2's sessions", func() bool { return r1.Stats().ReplicaSessionsEnded > before })
	for _, p := range []*ep{alice, bob} {
		var seen []string
		for {
			g := p.expect(fmt.Sprintf("STOP_SESSION for r2's session (seen before: %v)", seen))
			if g.m != nil && g.m.Method == spec.MethodStopSession && g.m.SigSessID == sid && contains(g.m.Reason, "went away") {
				break
			}
			seen = append(seen, string(g.raw))
		}
	}
}

// TestLateRecordOfAGoneReplica: a record its owner published just before it went
// can arrive after the news; it must not make the owner look alive again, and its
// session is ended like the others.
func TestLateRecordOfAGoneReplica(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.BrokerURL, cfg.SharedGroup, cfg.ClientID = "tcp://127.0.0.1:1", "g", "a-replica"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pubs []string
	c.sink = func(topic string, _ byte, _ bool, payload []byte) { pubs = append(pubs, topic+" "+string(payload)) }
	c.onLive(mqttc.Message{Topic: c.livePrefix() + "b-replica", Payload: []byte(`{"replica":"b-replica"}`)})
	c.onLive(mqttc.Message{Topic: c.livePrefix() + "b-replica"}) // b goes
	rec, _ := json.Marshal(ownRecord{Owner: "b-replica", SigSessID: "s1", Caller: "alice", CallerTopic: "/rtcomm/alice",
		Callee: "bob", CalleeTopic: "/rtcomm/bob", ToEndpointID: "bob", Established: true})
	c.onOwnRecord(mqttc.Message{Topic: c.ownPrefix() + ownKey("s1"), Payload: rec})
	c.mu.Lock()
	live, kept := c.live["b-replica"], len(c.owners)
	c.mu.Unlock()
	if live || kept != 0 {
		t.Fatalf("after a late record of a gone replica: expected it not live and no record kept, actual live=%v records=%d", live, kept)
	}
	var stops int
	for _, p := range pubs {
		if (strings.HasPrefix(p, "/rtcomm/alice/bob ") || strings.HasPrefix(p, "/rtcomm/bob/alice ")) && strings.Contains(p, "STOP_SESSION") {
			stops++
		}
	}
	if stops != 2 || c.Stats().ReplicaSessionsEnded != 1 {
		t.Fatalf("expected the late session ended for both parties, actual %d STOP_SESSIONs, %d ended: %v", stops, c.Stats().ReplicaSessionsEnded, pubs)
	}
}

// TestSecureReplicaRecordsOnlyFromPeers: in secure mode a record, liveness or hello
// is taken only from a client ID naming the connector's user (ID-015), so an
// endpoint that could publish there could not redirect or end sessions.
func TestSecureReplicaRecordsOnlyFromPeers(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.BrokerURL, cfg.SharedGroup, cfg.Secure = "tcp://127.0.0.1:1", "g", true
	cfg.Username, cfg.ClientID = "connector", "connector:a"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.sink = func(string, byte, bool, []byte) {}
	rec := func(owner string) mqttc.Message {
		b, _ := json.Marshal(ownRecord{Owner: owner, SigSessID: "s-" + owner, Caller: "alice", CallerTopic: "/rtcomm/alice"})
		return mqttc.Message{Topic: c.ownPrefix() + ownKey("s-"+owner), Payload: b}
	}
	c.onLive(mqttc.Message{Topic: c.livePrefix() + "mallory", Payload: []byte(`{}`)})
	c.onHello(mqttc.Message{Topic: c.helloPrefix() + "mallory", Payload: []byte(`{}`)})
	c.onOwnRecord(rec("mallory"))
	c.onOwnRecord(rec("connector:b"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live["mallory"] || len(c.owners) != 1 {
		t.Fatalf("secure replicas: expected only connector:b's record kept and mallory not live, actual live=%v records=%d", c.live, len(c.owners))
	}
	if _, ok := c.ownerOfLocked("s-connector:b"); !ok {
		t.Fatalf("secure replicas: expected the peer's record kept")
	}
}
