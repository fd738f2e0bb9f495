package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestUnregisterMidCallEndsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/session/+/+/+")
	alice, bob, carol := e.endpoint("alice"), e.endpoint("bob"), e.endpoint("carol")
	alice.register("rtcomm")
	bob.register("rtcomm")
	carol.register("rtcomm")
	waitRegistrations(t, c, 3)

	// Established alice -> bob; unanswered alice -> carol.
	start, sidBob := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	_, sidCarol := call(t, c, alice, carol)
	mon.expectMethod(spec.MethodEventFired, c.Topics().SessionEvent("started", "alice", "bob")) // answered; carol never answered

	alice.unregister() // what the will (or a clean disconnect) publishes
	s1 := bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	s2 := carol.expectMethod(spec.MethodStopSession, spec.Join(carol.address, "alice"))
	if s1.m.SigSessID != sidBob || s2.m.SigSessID != sidCarol {
		t.Fatalf("STOP_SESSION sigSessIDs: expected %s and %s, actual %s and %s", sidBob, sidCarol, s1.m.SigSessID, s2.m.SigSessID)
	}
	if s1.m.FromTopic != c.SessionTopic() || s1.m.TransID != "" {
		t.Fatalf("STOP_SESSION: expected fromTopic %s and no transID, actual %s", c.SessionTopic(), s1.raw)
	}
	evs := map[string]got{}
	for range 2 {
		g := mon.expect("session events for alice's sessions")
		evs[g.topic] = g
	}
	stopped, ok := evs[c.Topics().SessionEvent("stopped", "alice", "bob")]
	if !ok || stopped.m.SigSessID != sidBob {
		t.Fatalf("expected a stopped event for the established call %s, actual events %v", sidBob, keys(evs))
	}
	failed, ok := evs[c.Topics().SessionEvent("failed", "alice", "carol")]
	if !ok || failed.m.SigSessID != sidCarol || !contains(failed.m.Reason, "alice unregistered") {
		t.Fatalf("expected a failed event with reason 'alice unregistered' for %s, actual %v", sidCarol, evs)
	}
	waitFor(t, "no sessions left", func() bool { return c.Stats().ActiveSessions == 0 })
}

func keys(m map[string]got) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

// TestWillMidCall uses a real last will (empty, retained) and an abrupt disconnect.
func TestWillMidCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice := e.endpoint("alice")
	alice.register("rtcomm")
	bobConn, err := mqttc.Dial(e.ctx, mqttc.Options{BrokerURL: e.url, ClientID: mqttc.RandomClientID("bob-"),
		Will: &mqttc.Will{Topic: e.topics.Sphere("bob"), Payload: nil, QoS: 1, Retained: true}})
	if err != nil {
		t.Fatalf("dial with an empty retained will: expected the broker to accept it, actual %v", err)
	}
	t.Cleanup(bobConn.Close)
	bob := &ep{e: e, id: "bob", c: bobConn, address: e.topics.Inbox("bob"), inbox: make(chan got, 64)}
	bob.subscribe(bob.address + "/#")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	bobConn.Kill()
	s := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	if s.m.SigSessID != sid {
		t.Fatalf("STOP_SESSION after bob's will: expected %s, actual %s", sid, s.m.SigSessID)
	}
	waitRegistrations(t, c, 1)
}

func Test3PCCSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	ctl, ctlTopic := e.client("ctl"), "ctl-"+uuid.NewString()[:8] // a bare client ID, as lib.rtcomm.node uses
	ctl.subscribe(ctlTopic)

	for i, topic := range []string{c.Topics().CallControl(), spec.Join(c.Topics().CallControl(), "ctl")} {
		tx := fmt.Sprintf("p%d", i)
		ctl.pubJSON(topic, map[string]any{"method": "3PCC_PLACE_CALL", "rtcommVer": spec.Version, "transID": tx,
			"callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctlTopic})
		ref := alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
		var d spec.ReferDetails
		if err := json.Unmarshal(ref.m.Details, &d); err != nil || d.SessionID == "" || d.ToEndpointID != "bob" {
			t.Fatalf("REFER details: expected {sessionID, toEndpointID: bob}, actual %s (%v)", ref.m.Details, err)
		}
		if ref.m.TransID == "" || ref.m.ToEndpointID != "bob" || !strings.HasPrefix(ref.m.FromTopic, c.Topics().Path) {
			t.Fatalf("REFER: expected transID, toEndpointID bob, fromTopic under %s; actual %s", c.Topics().Path, ref.raw)
		}
		alice.pubJSON(spec.Join(ref.m.FromTopic, "alice"), map[string]any{"method": "RESPONSE", "orig": "REFER",
			"transID": ref.m.TransID, "result": "SUCCESS"})
		ctl.expectNone("no 3PCC answer before the call is answered")
		alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "bob", d.SessionID, uuid.NewString()))
		start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
		answer(t, c, alice, bob, start)
		r := ctl.expectMethod(spec.MethodResponse, ctlTopic)
		if r.m.Result != spec.ResultSuccess || r.m.TransID != tx || r.m.Orig != spec.Method3PCCPlaceCall {
			t.Fatalf("3PCC answer: expected SUCCESS orig 3PCC_PLACE_CALL transID %s, actual %s", tx, r.raw)
		}
		ctl.expectNone("exactly one 3PCC answer")
		alice.pubJSON(spec.Join(c.SessionTopic(), "alice"), stopMsg(d.SessionID, alice.address))
		bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	}
}

func Test3PCCFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.ThreePCCTimeout = 400 * time.Millisecond })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	ctl, ctlTopic := e.client("ctl"), "ctl-"+uuid.NewString()[:8]
	ctl.subscribe(ctlTopic)
	place := func(tx, caller, callee string) {
		ctl.pubJSON(c.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "transID": tx,
			"callerEndpoint": caller, "calleeEndpoint": callee, "fromTopic": ctlTopic})
	}
	expectFailure := func(tx, reason string) {
		t.Helper()
		r := ctl.expectMethod(spec.MethodResponse, ctlTopic)
		if r.m.Result != spec.ResultFailure || r.m.TransID != tx || !contains(r.m.Reason, reason) {
			t.Fatalf("3PCC %s: expected FAILURE with reason containing %q, actual %s", tx, reason, r.raw)
		}
	}

	// Unknown callee: refused at once, no REFER.
	place("unknown", "alice", "nobody")
	expectFailure("unknown", "nobody")
	alice.expectNone("no REFER for an unknown callee")

	// REFER refused by the caller.
	place("refused", "alice", "bob")
	ref := alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	alice.pubJSON(spec.Join(ref.m.FromTopic, "alice"), map[string]any{"method": "RESPONSE", "orig": "REFER",
		"transID": ref.m.TransID, "result": "FAILURE", "reason": "busy now"})
	expectFailure("refused", "busy now")

	// The callee rejects the referred call.
	place("rejected", "alice", "bob")
	ref = alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	var d spec.ReferDetails
	_ = json.Unmarshal(ref.m.Details, &d)
	alice.pubJSON(spec.Join(ref.m.FromTopic, "alice"), map[string]any{"method": "RESPONSE", "orig": "REFER",
		"transID": ref.m.TransID, "result": "SUCCESS"})
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "bob", d.SessionID, "tx-rej"))
	start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	bob.pubJSON(spec.Join(start.m.FromTopic, "bob"), map[string]any{"method": "RESPONSE", "orig": "START_SESSION",
		"transID": "tx-rej", "sigSessID": d.SessionID, "result": "FAILURE", "reason": "declined"})
	alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "bob"))
	expectFailure("rejected", "declined")

	// Nobody acts on the REFER: the 3PCC times out.
	place("timeout", "alice", "bob")
	alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	expectFailure("timeout", "timeout")
	ctl.expectNone("one answer per request")
	if n := c.Stats().Pending3PCC; n != 0 {
		t.Fatalf("pending 3PCC after all answered: expected 0, actual %d", n)
	}
}

func TestSchemeRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gwTopic := e.topics.Path + "gateway/sip"
	c := e.connector(func(cfg *Config) { cfg.Schemes = []SchemeRoute{{Scheme: "sip", Topic: gwTopic}} })
	alice := e.endpoint("alice")
	alice.register("rtcomm")
	gw := e.client("sipgw")
	gw.address = gwTopic
	gw.subscribe(gwTopic + "/#")
	waitRegistrations(t, c, 1)

	sid := uuid.NewString()
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "SIP:bob@example.com", sid, "tx-sip"))
	g := gw.expectMethod(spec.MethodStartSession, spec.Join(gwTopic, "alice"))
	if g.m.ToEndpointID != "SIP:bob@example.com" || g.m.FromTopic != c.SessionTopic() {
		t.Fatalf("at gateway: expected toEndpointID SIP:bob@example.com, fromTopic %s; actual %s", c.SessionTopic(), g.raw)
	}
	gw.pubJSON(spec.Join(g.m.FromTopic, "sipgw"), map[string]any{"method": "RESPONSE", "orig": "START_SESSION",
		"transID": "tx-sip", "sigSessID": sid, "result": "SUCCESS", "fromTopic": gwTopic})
	alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "sipgw"))
	alice.pubJSON(spec.Join(c.SessionTopic(), "alice"), map[string]any{"method": "MESSAGE", "sigSessID": sid,
		"fromTopic": alice.address, "payload": map[string]any{"chat": map[string]any{"message": "hi"}}})
	gw.expectMethod(spec.MethodMessage, spec.Join(gwTopic, "alice"))
}

func TestQueues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Queues = []string{"support"} })
	agents := make([]*ep, 3)
	for i := range agents {
		a := e.endpoint(fmt.Sprintf("agent%d", i))
		a.subscribe("$share/" + DefaultQueueGroup + "/" + e.topics.Inbox("support") + "/#")
		a.register("rtcomm")
		agents[i] = a
	}
	const calls = 6
	callers := make([]*ep, calls)
	sids := map[string]int{}
	for i := range callers {
		callers[i] = e.endpoint(fmt.Sprintf("caller%d", i))
		sid := uuid.NewString()
		sids[sid] = i
		callers[i].pubJSON(spec.Join(c.Topics().Connector(), callers[i].id), startMsg(callers[i], "support", sid, "tx"))
		// Sent before any agent answered: held, then delivered to the agent that answers.
		callers[i].pubJSON(spec.Join(c.SessionTopic(), callers[i].id), map[string]any{"method": "MESSAGE",
			"sigSessID": sid, "fromTopic": callers[i].address, "payload": map[string]any{"chat": map[string]any{"message": sid}}})
	}
	// Every call reaches exactly one agent.
	type delivery struct {
		agent *ep
		g     got
	}
	var starts []delivery
	deadline := time.Now().Add(waitTime)
	for len(starts) < calls && time.Now().Before(deadline) {
		for _, a := range agents {
			select {
			case g := <-a.inbox:
				if g.m == nil || g.m.Method != spec.MethodStartSession {
					t.Fatalf("%s: expected START_SESSION first, actual %s at %s", a.id, g.raw, g.topic)
				}
				starts = append(starts, delivery{a, g})
			default:
			}
		}
		time.Sleep(time.Millisecond)
	}
	if len(starts) != calls {
		t.Fatalf("queue calls delivered: expected %d, actual %d", calls, len(starts))
	}
	seen := map[string]bool{}
	for _, d := range starts {
		if seen[d.g.m.SigSessID] {
			t.Fatalf("call %s delivered to more than one agent", d.g.m.SigSessID)
		}
		seen[d.g.m.SigSessID] = true
		caller := callers[sids[d.g.m.SigSessID]]
		if d.g.topic != spec.Join(e.topics.Inbox("support"), caller.id) {
			t.Fatalf("queue START_SESSION topic: expected %s, actual %s", spec.Join(e.topics.Inbox("support"), caller.id), d.g.topic)
		}
	}
	for _, a := range agents {
		a.expectNone("no duplicate deliveries")
	}
	// Each agent answers; the caller learns who took the call; relays go to that agent.
	for _, d := range starts {
		caller := callers[sids[d.g.m.SigSessID]]
		d.agent.pubJSON(spec.Join(d.g.m.FromTopic, d.agent.id), map[string]any{"method": "RESPONSE", "orig": "START_SESSION",
			"transID": "tx", "sigSessID": d.g.m.SigSessID, "result": "SUCCESS", "fromTopic": d.agent.address})
		caller.expectMethod(spec.MethodResponse, spec.Join(caller.address, d.agent.id))
		held := d.agent.expectMethod(spec.MethodMessage, spec.Join(d.agent.address, caller.id))
		if held.m.SigSessID != d.g.m.SigSessID {
			t.Fatalf("held message: expected session %s, actual %s", d.g.m.SigSessID, held.m.SigSessID)
		}
		caller.pubJSON(spec.Join(c.SessionTopic(), caller.id), stopMsg(d.g.m.SigSessID, caller.address))
		d.agent.expectMethod(spec.MethodStopSession, spec.Join(d.agent.address, caller.id))
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/#")
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	ev := func(action, from, to, sid string) got {
		t.Helper()
		g := mon.expectMethod(spec.MethodEventFired, c.Topics().SessionEvent(action, from, to))
		ts, err := time.Parse(time.RFC3339Nano, g.m.Timestamp)
		if err != nil || len(g.m.Timestamp) != len("2006-01-02T15:04:05.000Z") || time.Since(ts) > time.Minute {
			t.Fatalf("%s event timestamp: expected RFC 3339 UTC with milliseconds, now, actual %q (%v)", action, g.m.Timestamp, err)
		}
		if g.m.RtcommVer != spec.Version || g.m.SigSessID != sid || g.m.AppContext != "rtcomm" {
			t.Fatalf("%s event: expected rtcommVer %s, sigSessID %s, appContext rtcomm; actual %s", action, spec.Version, sid, g.raw)
		}
		if action != spec.EventFailed && g.m.Reason != "" {
			t.Fatalf("%s event: expected no reason, actual %q", action, g.m.Reason)
		}
		return g
	}
	start, sid := call(t, c, alice, bob)
	mon.expectNone("no event before the answer: started means answered (EVT-001)")
	answer(t, c, alice, bob, start)
	ev("started", "alice", "bob", sid)
	for _, typ := range []string{"icecandidate", "offer", "answer"} {
		from, sender := alice, "alice"
		if typ == "answer" {
			from, sender = bob, "bob"
		}
		from.pubJSON(spec.Join(c.SessionTopic(), sender), map[string]any{"method": "MESSAGE", "sigSessID": sid,
			"fromTopic": from.address, "payload": map[string]any{"webrtc": map[string]any{"type": typ, "sdp": "v=0"}}})
	}
	ev("modified", "alice", "bob", sid) // offer
	ev("modified", "alice", "bob", sid) // answer
	bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
	bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
	alice.expectMethod(spec.MethodMessage, spec.Join(alice.address, "bob"))
	alice.pubJSON(spec.Join(c.SessionTopic(), "alice"), stopMsg(sid, alice.address))
	ev("stopped", "alice", "bob", sid)
	bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))

	start, sid = call(t, c, alice, bob)
	bob.pubJSON(spec.Join(start.m.FromTopic, "bob"), map[string]any{"method": "RESPONSE", "orig": "START_SESSION",
		"transID": start.m.TransID, "sigSessID": sid, "result": "FAILURE", "reason": "declined"})
	f := ev("failed", "alice", "bob", sid)
	if !contains(f.m.Reason, "declined") {
		t.Fatalf("failed event reason: expected to contain 'declined', actual %q", f.m.Reason)
	}
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "nobody", "sid-x", "tx-x"))
	f = ev("failed", "alice", "nobody", "sid-x")
	if !contains(f.m.Reason, "not registered") {
		t.Fatalf("failed event for unknown callee: expected reason 'not registered', actual %q", f.m.Reason)
	}
	mon.expectNone("no further events")
}

func TestEventsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Events = false })
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/#")
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	mon.expectNone("Events off: no RTCOMM_EVENT_FIRED")
}

// TestReplicas: two connectors in one shared group; each query answered once,
// each call routed once, and every relay comes back to the replica that routed it.
func TestReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r1 := e.connector(func(cfg *Config) { cfg.SharedGroup, cfg.ClientID = "grp", "replica-1-"+uuid.NewString()[:6] })
	r2 := e.connector(func(cfg *Config) { cfg.SharedGroup, cfg.ClientID = "grp", "replica-2-"+uuid.NewString()[:6] })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, r1, 2)
	waitRegistrations(t, r2, 2)

	for i := range 5 {
		alice.pubJSON(spec.Join(r1.Topics().Management(), "alice"), map[string]any{"method": "SERVICE_QUERY",
			"transID": fmt.Sprint("q", i), "fromTopic": alice.address})
		g := alice.expect("the SERVICE_QUERY answer")
		if g.m.TransID != fmt.Sprint("q", i) {
			t.Fatalf("query %d: expected answer q%d, actual %s", i, i, g.raw)
		}
	}
	alice.expectNone("each query answered by exactly one replica")

	const calls = 10
	for range calls {
		start, sid := call(t, r1, alice, bob)
		if start.m.FromTopic != r1.SessionTopic() && start.m.FromTopic != r2.SessionTopic() {
			t.Fatalf("fromTopic: expected one replica's session topic, actual %s", start.m.FromTopic)
		}
		bob.expectNone("START_SESSION routed exactly once")
		answer(t, r1, alice, bob, start)
		alice.pubJSON(spec.Join(start.m.FromTopic, "alice"), map[string]any{"method": "MESSAGE", "sigSessID": sid,
			"fromTopic": alice.address, "payload": map[string]any{"chat": map[string]any{"message": "hi"}}})
		bob.expectMethod(spec.MethodMessage, spec.Join(bob.address, "alice"))
		alice.pubJSON(spec.Join(start.m.FromTopic, "alice"), stopMsg(sid, alice.address))
		bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	}
	s1, s2 := r1.Stats(), r2.Stats()
	if s1.SessionsStarted+s2.SessionsStarted != calls || s1.SessionsStopped+s2.SessionsStopped != calls {
		t.Fatalf("replicas: expected %d calls started and stopped in all, actual %d+%d started, %d+%d stopped",
			calls, s1.SessionsStarted, s2.SessionsStarted, s1.SessionsStopped, s2.SessionsStopped)
	}
	t.Logf("calls per replica: %d / %d", s1.SessionsStarted, s2.SessionsStarted)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	c := e.connector(func(cfg *Config) { cfg.Registerer = reg })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "nobody", "s", "t"))
	alice.expect("the FAILURE")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	value := func(name, label, lv string) float64 {
		t.Helper()
		mf := byName[name]
		if mf == nil {
			t.Fatalf("metric %s: expected to be exposed, it is missing (have %v)", name, len(byName))
		}
		for _, m := range mf.GetMetric() {
			if label != "" {
				match := false
				for _, l := range m.GetLabel() {
					match = match || (l.GetName() == label && l.GetValue() == lv)
				}
				if !match {
					continue
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("metric %s{%s=%q}: expected a sample, found none", name, label, lv)
		return 0
	}
	checks := []struct {
		name, label, lv string
		want            float64
	}{
		{"rtcomm_registrations", "", "", 2},
		{"rtcomm_sessions_active", "", "", 1},
		{"rtcomm_messages_routed_total", "method", "START_SESSION", 1},
		{"rtcomm_messages_routed_total", "method", "RESPONSE", 1},
		{"rtcomm_failures_total", "reason", "unknown_endpoint", 1},
		{"rtcomm_routing_seconds", "", "", 2},
	}
	for _, ck := range checks {
		if v := value(ck.name, ck.label, ck.lv); v != ck.want {
			t.Errorf("%s{%s=%q}: expected %v, actual %v", ck.name, ck.label, ck.lv, ck.want, v)
		}
	}
}

// TestResubscribeAfterBrokerRestart is not possible with a random-port broker;
// reconnect resynchronization is exercised directly instead.
func TestPruneRegistryOnResync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	// bob's unregister is "missed": remove his retained document behind the connector's back.
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := c.client.Unsubscribe(ctx, c.spherePrefix+"#"); err != nil {
		t.Fatal(err)
	}
	bob.unregister()
	if err := c.subscribe(ctx, true); err != nil {
		t.Fatalf("resubscribe: %v", err)
	}
	if n := c.Stats().Registrations; n != 1 {
		t.Fatalf("after resync: expected only alice registered, actual %d registrations", n)
	}
}

// TestReplicas3PCC: whichever replica takes the 3PCC request and whichever
// routes the referred call, the requester gets one SUCCESS.
func TestReplicas3PCC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r1 := e.connector(func(cfg *Config) { cfg.SharedGroup, cfg.ClientID = "grp", "replica-1-"+uuid.NewString()[:6] })
	r2 := e.connector(func(cfg *Config) { cfg.SharedGroup, cfg.ClientID = "grp", "replica-2-"+uuid.NewString()[:6] })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, r1, 2)
	waitRegistrations(t, r2, 2)
	ctl, ctlTopic := e.client("ctl"), "ctl-"+uuid.NewString()[:8]
	ctl.subscribe(ctlTopic)
	const calls = 8
	for i := range calls {
		tx := fmt.Sprint("p", i)
		ctl.pubJSON(r1.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "transID": tx,
			"callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": ctlTopic})
		ref := alice.expect("REFER")
		if ref.m == nil || ref.m.Method != spec.MethodRefer {
			t.Fatalf("call %d: expected REFER, actual %s", i, ref.raw)
		}
		var d spec.ReferDetails
		_ = json.Unmarshal(ref.m.Details, &d)
		alice.pubJSON(spec.Join(ref.m.FromTopic, "alice"), map[string]any{"method": "RESPONSE", "orig": "REFER",
			"transID": ref.m.TransID, "result": "SUCCESS"})
		// The call goes to the shared connector topic: either replica may route it.
		alice.pubJSON(spec.Join(r1.Topics().Connector(), "alice"), startMsg(alice, "bob", d.SessionID, uuid.NewString()))
		start := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
		answer(t, r1, alice, bob, start)
		r := ctl.expectMethod(spec.MethodResponse, ctlTopic)
		if r.m.Result != spec.ResultSuccess || r.m.TransID != tx {
			t.Fatalf("call %d: expected SUCCESS for %s, actual %s", i, tx, r.raw)
		}
		alice.pubJSON(spec.Join(start.m.FromTopic, "alice"), stopMsg(d.SessionID, alice.address))
		bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
		t.Logf("call %d: REFER from %s, call routed by %s", i, spec.Parent(ref.m.FromTopic+"/x"), start.m.FromTopic)
	}
	ctl.expectNone("one answer per request")
}
