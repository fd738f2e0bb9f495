package connector

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Traffic shapes of the official clients that the connector must serve without
// a FAILURE (audit of issue 11). Each case cites where the client sends it.

// threePCC starts a connector with caller and callee registered and a
// lib.rtcomm.node-shaped requester subscribed to its bare reply topic.
func threePCC(t *testing.T, caller, callee, replyTopic string) (*Connector, *ep, *ep, *ep) {
	t.Helper()
	e := newEnv(t)
	c := e.connector(nil)
	a, b := e.endpoint(caller), e.endpoint(callee)
	a.register("rtcomm")
	b.register("rtcomm")
	waitRegistrations(t, c, 2)
	ctl := e.client("ctl")
	ctl.subscribe(replyTopic)
	return c, a, b, ctl
}

// TestOfficial3PCCVersion: lib.rtcomm.node lib/3pcc.js ThirdPartyCC.startCall
// sends rtcommVer "v0.0.1" on the bare call-control topic; the connector must
// place the call (REFER to the caller), not answer "unsupported rtcommVer".
func TestOfficial3PCCVersion(t *testing.T) {
	t.Parallel()
	c, alice, _, ctl := threePCC(t, "alice", "bob", "0e1d2c3b-4a59-4687-b6a5-948372615f0e")
	ctl.pub(c.Topics().CallControl(), []byte(`{"rtcommVer":"v0.0.1","method":"3PCC_PLACE_CALL",`+
		`"calleeEndpoint":"bob","callerEndpoint":"alice","fromTopic":"0e1d2c3b-4a59-4687-b6a5-948372615f0e",`+
		`"transID":"b2a4247f-fafc-4d3c-a23b-822d02e8f00c"}`))
	refer := alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	if refer.m.ToEndpointID != "bob" {
		t.Errorf("REFER toEndpointID: expected bob, actual %q", refer.m.ToEndpointID)
	}
	ctl.expectNone("a v0.0.1 3PCC_PLACE_CALL is placed, not refused")

	// Another version is still refused on the call-control topic (FMT-003).
	ctl.pub(c.Topics().CallControl(), []byte(`{"rtcommVer":"v0.3.0","method":"3PCC_PLACE_CALL",`+
		`"calleeEndpoint":"bob","callerEndpoint":"alice","fromTopic":"0e1d2c3b-4a59-4687-b6a5-948372615f0e",`+
		`"transID":"t-bad-version"}`))
	g := ctl.expect("FAILURE for v0.3.0")
	if g.m == nil || g.m.Result != spec.ResultFailure || g.m.TransID != "t-bad-version" {
		t.Errorf("v0.3.0: expected RESPONSE FAILURE t-bad-version, actual %s", g.raw)
	}
	// And v0.0.1 is not taken on a session message (only lib.rtcomm.node's 3PCC uses it).
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), map[string]any{
		"method": "START_SESSION", "rtcommVer": "v0.0.1", "fromTopic": alice.address, "toEndpointID": "bob",
		"sigSessID": "s-v001", "transID": "t-v001", "protocols": []string{}})
	g = alice.expect("FAILURE for a v0.0.1 START_SESSION")
	if g.m == nil || g.m.Result != spec.ResultFailure || g.m.TransID != "t-v001" {
		t.Errorf("v0.0.1 START_SESSION: expected RESPONSE FAILURE t-v001, actual %s", g.raw)
	}
}

// TestOfficial3PCCNumericIDs: lib.rtcomm.node lib/3pcc.js startCall(caller,
// callee, sessionID, transactionID) puts whatever the application passes; the
// library's own test (test/3pccTest.js) passes numbers: startCall("Jack
// Endpoint", "Jill Endpoint", 1000, 100). The call is placed with sigSessID
// "1000" and the answer carries transID 100 (the library looks it up as an
// object key, so "100" and 100 match alike).
func TestOfficial3PCCNumericIDs(t *testing.T) {
	t.Parallel()
	c, jack, _, ctl := threePCC(t, "Jack Endpoint", "Jill Endpoint", "ctl-numeric")
	ctl.pub(c.Topics().CallControl(), []byte(`{"rtcommVer":"v0.0.1","method":"3PCC_PLACE_CALL",`+
		`"calleeEndpoint":"Jill Endpoint","callerEndpoint":"Jack Endpoint","fromTopic":"ctl-numeric",`+
		`"transID":100,"sessionID":1000}`))
	refer := jack.expectMethod(spec.MethodRefer, spec.Join(jack.address, c.ID()))
	var d spec.ReferDetails
	if err := json.Unmarshal(refer.m.Details, &d); err != nil || d.SessionID != "1000" {
		t.Fatalf("REFER details: expected sessionID \"1000\", actual %s (%v)", refer.m.Details, err)
	}
	ctl.expectNone("a numeric transID/sessionID is served")
	// The referred caller refuses: the 3PCC requester gets FAILURE under its transID.
	jack.pubJSON(spec.Join(refer.m.FromTopic, "Jack Endpoint"), map[string]any{
		"rtcommVer": spec.Version, "method": "RESPONSE", "fromTopic": nil, "orig": "REFER",
		"transID": refer.m.TransID, "result": "FAILURE", "reason": "The user rejected the call"})
	g := ctl.expect("3PCC FAILURE")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(g.raw, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["transID"]) != "100" && string(raw["transID"]) != `"100"` {
		t.Errorf("3PCC answer transID: expected 100, actual %s in %s", raw["transID"], g.raw)
	}
	if g.m == nil || g.m.Result != spec.ResultFailure {
		t.Errorf("3PCC answer: expected FAILURE, actual %s", g.raw)
	}
}

// TestOfficialReferRejection: rtcomm.js 1.0.8 RtcommEndpoint.reject on a REFER
// session calls SigSession.fail, which start()s the referred session
// (START_SESSION, payload null) and then finishes the REFER twice with FAILURE
// (SigSession.respond, then session_failed). The connector places the call,
// answers the 3PCC requester once, and drops the second REFER answer.
func TestOfficialReferRejection(t *testing.T) {
	t.Parallel()
	c, alice, bob, ctl := threePCC(t, "alice", "bob", "ctl-reject")
	ctl.pubJSON(c.Topics().CallControl(), map[string]any{"rtcommVer": "v0.0.1", "method": "3PCC_PLACE_CALL",
		"calleeEndpoint": "bob", "callerEndpoint": "alice", "fromTopic": "ctl-reject", "transID": "p-reject"})
	refer := alice.expectMethod(spec.MethodRefer, spec.Join(alice.address, c.ID()))
	var d spec.ReferDetails
	if err := json.Unmarshal(refer.m.Details, &d); err != nil {
		t.Fatal(err)
	}
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), map[string]any{
		"rtcommVer": spec.Version, "method": "START_SESSION", "fromTopic": alice.address,
		"protocols": []string{"webrtc", "chat"}, "sigSessID": d.SessionID, "transID": "t-refer-start",
		"toEndpointID": "bob", "payload": nil, "appContext": "rtcomm"})
	bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	for i := 0; i < 2; i++ {
		alice.pubJSON(spec.Join(refer.m.FromTopic, "alice"), map[string]any{
			"rtcommVer": spec.Version, "method": "RESPONSE", "fromTopic": nil, "orig": "REFER",
			"transID": refer.m.TransID, "result": "FAILURE", "reason": "The user rejected the call"})
	}
	g := ctl.expect("3PCC FAILURE")
	if g.m == nil || g.m.Result != spec.ResultFailure || g.m.TransID != "p-reject" {
		t.Errorf("3PCC answer: expected FAILURE p-reject, actual %s", g.raw)
	}
	ctl.expectNone("the 3PCC requester is answered once")
	alice.expectNone("a repeated REFER answer is not refused")
	if err := c.Healthy(); err != nil {
		t.Fatal(err)
	}
}

// TestOfficialCancelBeforeAnswer: a caller that hangs up before any PRANSWER
// sends STOP_SESSION to its session's toTopic, still the connector topic
// (rtcomm.js SigSession.stop; toTopic only changes on the first reply). A
// guest (GUEST-xxxxxx, no DOCUMENT: EndpointProvider.init publishes presence
// only for a non-GUEST userid) may call.
func TestOfficialCancelBeforeAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	guest, bob := e.endpoint("GUEST-3fa9c1"), e.endpoint("bob")
	bob.register("rtcomm")
	waitRegistrations(t, c, 1)
	_, sid := call(t, c, guest, bob)
	guest.pubJSON(spec.Join(c.Topics().Connector(), guest.id), map[string]any{
		"rtcommVer": spec.Version, "method": "STOP_SESSION", "fromTopic": guest.address, "sigSessID": sid,
		"payload": nil, "toEndpointID": "bob", "protocols": []string{"webrtc", "chat"}})
	g := bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, guest.id))
	if g.m.SigSessID != sid {
		t.Errorf("STOP_SESSION sigSessID: expected %s, actual %s", sid, g.m.SigSessID)
	}
	guest.expectNone("a valid STOP_SESSION is not refused")
}

// shapeRefusals are the failure codes that refuse a message for its form, not for the
// state it meets (an unknown callee, a finished session): none may answer an official
// client's message.
var shapeRefusals = []string{"bad_message", "missing_field", "bad_version", "unexpected_method",
	"unknown_method", "bad_topic", "bad_endpoint_id", "bad_request", "too_large", "not_a_party", "rate_limited",
	"internal_error"}

// TestOfficialCorpusReplay publishes the whole official-client corpus
// (fixtures/clients/official.jsonl), in its order, to a connector serving the
// corpus's queue: every publish is handled, none is refused for its form, and
// the connector stays healthy. Refusals the replay's state explains (a callee
// unregistered by an earlier line, a session the corpus never started here)
// are allowed; their codes are logged.
func TestOfficialCorpusReplay(t *testing.T) {
	t.Parallel()
	msgs, err := fixtures.OfficialClientTraffic()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.Queues = []string{"support"} })
	// The corpus is written for /rtcomm/ and a connector named serve-1.
	tr := strings.NewReplacer("/rtcomm/connector/serve-1", strings.TrimSuffix(spec.Join(c.Topics().Connector(), c.ID()), "/"),
		"/rtcomm/", e.topics.Path)
	pub := e.client("corpus")
	var n uint64
	seen := map[string]uint64{}
	for _, m := range msgs {
		if m.Subscribe {
			continue
		}
		topic := tr.Replace(m.Topic)
		payload := []byte(tr.Replace(string(m.Bytes())))
		before := c.Stats().Received
		if err := pub.c.Publish(e.ctx, topic, 1, m.Retained, payload); err != nil {
			t.Fatalf("line %d: publish %s: %v", m.Line, topic, err)
		}
		n++
		if !toConnector(c, topic) {
			continue // peer to peer: between endpoints, the connector never sees it
		}
		waitFor(t, "the connector to take line "+m.Step, func() bool { return c.Stats().Received > before })
		st := c.Stats()
		for code, k := range st.Failures {
			if k > seen[code] {
				t.Logf("line %d (%s): refused for the replay's state: %s", m.Line, m.Step, code)
				seen[code] = k
			}
		}
		for _, code := range shapeRefusals {
			if st.Failures[code] > 0 {
				t.Fatalf("line %d (%s, %s; %s): the connector refused it (%s): %v", m.Line, m.Client, m.Step, m.Source, code, st.Failures)
			}
		}
	}
	st := c.Stats()
	t.Logf("%d corpus publishes replayed; failures by code (state, not form): %v; dropped %d", n, st.Failures, st.Dropped)
	if st.Panics > 0 {
		t.Errorf("expected no panic, actual %d", st.Panics)
	}
	if err := c.Healthy(); err != nil {
		t.Errorf("after the replay: expected healthy, actual %v", err)
	}
}

// toConnector reports whether the connector subscribes to topic.
func toConnector(c *Connector, topic string) bool {
	t := c.Topics()
	for _, prefix := range []string{t.Connector() + "/", t.Management() + "/", t.Sphere(""), t.CallControl()} {
		if strings.HasPrefix(topic, prefix) {
			return true
		}
	}
	return false
}
