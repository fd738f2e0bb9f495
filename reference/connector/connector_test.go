package connector

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	bad := map[string]func(*Config){
		"no broker":        func(c *Config) { c.BrokerURL = "" },
		"client id slash":  func(c *Config) { c.ClientID = "a/b" },
		"client id plus":   func(c *Config) { c.ClientID = "a+b" },
		"queue wildcard":   func(c *Config) { c.Queues = []string{"q#"} },
		"queue reserved":   func(c *Config) { c.Queues = []string{"sphere"} },
		"scheme empty":     func(c *Config) { c.Schemes = []SchemeRoute{{Scheme: "", Topic: "/gw"}} },
		"scheme topic +":   func(c *Config) { c.Schemes = []SchemeRoute{{Scheme: "sip", Topic: "/gw/+"}} },
		"shared group '/'": func(c *Config) { c.SharedGroup = "a/b" },
		"path wildcard":    func(c *Config) { c.TopicPath = "/a/#/" },
	}
	for name, mod := range bad {
		cfg := DefaultConfig()
		cfg.BrokerURL = "tcp://127.0.0.1:1"
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: expected New to fail, it succeeded", name)
		}
	}
	cfg := DefaultConfig()
	cfg.BrokerURL = "tcp://127.0.0.1:1"
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("valid config: expected no error, actual %v", err)
	}
	if c.Healthy() == nil {
		t.Error("Healthy before Start: expected an error, actual nil")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close before Start: expected nil, actual %v", err)
	}
}

func TestRetainedRegistryLoadedBeforeStartReturns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")                       // rtcomm.js: addressTopic
	bob.registerAt(bob.address, "topic", "rtcomm") // written spec: topic
	c := e.connector(nil)                          // Start returns after the retained documents
	if n := c.Stats().Registrations; n != 2 {
		t.Fatalf("registrations right after Start: expected 2, actual %d", n)
	}
	if err := c.Healthy(); err != nil {
		t.Fatalf("Healthy: expected nil, actual %v", err)
	}
	// Both address fields route.
	call(t, c, alice, bob)
	call(t, c, bob, alice)
}

func TestRegistrationLiveAndUnregister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.registerAt(bob.address, "topic", "rtcomm")
	waitRegistrations(t, c, 2)
	call(t, c, alice, bob)

	bob.unregister()
	waitRegistrations(t, c, 1)
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "bob", uuid.NewString(), "tx-1"))
	// The first session's STOP_SESSION (bob left) comes first, then the FAILURE.
	stop := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	if stop.m.TransID != "" {
		t.Errorf("STOP_SESSION from the connector: expected no transID, actual %q", stop.m.TransID)
	}
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, c.ID()))
	if f.m.Result != spec.ResultFailure || f.m.TransID != "tx-1" || !contains(f.m.Reason, "not registered") {
		t.Fatalf("call to unregistered bob: expected FAILURE tx-1 'not registered', actual %s %s %q", f.m.Result, f.m.TransID, f.m.Reason)
	}
}

func TestAppContextLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("other")
	waitRegistrations(t, c, 2)
	// Same appContext required when the call names one.
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "bob", uuid.NewString(), "tx-ctx"))
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, c.ID()))
	if f.m.Result != spec.ResultFailure || !contains(f.m.Reason, `appContext "rtcomm"`) {
		t.Fatalf("call in another appContext: expected FAILURE naming the appContext, actual %s %q", f.m.Result, f.m.Reason)
	}
	// A call without appContext finds any registration.
	m := startMsg(alice, "bob", uuid.NewString(), "tx-any")
	delete(m, "appContext")
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), m)
	bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
}

func TestReplacement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	// Two clients with the same endpoint ID "alice" and different address topics.
	old := e.endpoint("alice")
	old.address = e.topics.Inbox("alice-old")
	old.subscribe(old.address + "/#")
	newer := e.endpoint("alice")
	newer.address = e.topics.Inbox("alice-new")
	newer.subscribe(newer.address + "/#")
	bob := e.endpoint("bob")
	bob.register("rtcomm")
	old.register("rtcomm")
	waitRegistrations(t, c, 2)

	newer.register("rtcomm")
	g := old.expectMethod(spec.MethodDocumentReplaced, spec.Join(old.address, c.ID()))
	if g.m.RtcommVer != spec.Version {
		t.Errorf("DOCUMENT_REPLACED rtcommVer: expected %s, actual %q", spec.Version, g.m.RtcommVer)
	}
	newer.expectNone("the newcomer is not told anything")
	// What rtcomm.js does on DOCUMENT_REPLACED: empty retained on the same presence topic.
	old.unregister()
	waitFor(t, "the replaced client's unregister to be ignored", func() bool { return c.Stats().IgnoredUnregistrations == 1 })
	if n := c.Stats().Registrations; n != 2 {
		t.Fatalf("registrations after the replaced client's empty message: expected 2, actual %d", n)
	}
	// Calls reach the newcomer.
	bob.pubJSON(spec.Join(c.Topics().Connector(), "bob"), startMsg(bob, "alice", uuid.NewString(), "tx-r"))
	newer.expectMethod(spec.MethodStartSession, spec.Join(newer.address, "bob"))
	old.expectNone("the replaced client gets no calls")

	// The newcomer's retained document was restored at the broker.
	mon := e.client("monitor")
	mon.subscribe(e.topics.Sphere("alice"))
	r := mon.expect("the retained DOCUMENT of alice")
	if r.m == nil || r.m.Address() != newer.address {
		t.Fatalf("retained presence of alice: expected the newcomer's address %s, actual %s", newer.address, r.raw)
	}

	// A second empty message (the newcomer's own unregister) does remove it.
	newer.unregister()
	waitRegistrations(t, c, 1)
}

func TestReplacementEndsOnlyTheReplacedClientsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	old := e.endpoint("alice")
	old.address = e.topics.Inbox("alice-old")
	old.subscribe(old.address + "/#")
	bob := e.endpoint("bob")
	bob.register("rtcomm")
	old.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, bob, old)
	answer(t, c, bob, old, start)

	newer := e.endpoint("alice")
	newer.address = e.topics.Inbox("alice-new")
	newer.subscribe(newer.address + "/#")
	newer.register("rtcomm")
	old.expectMethod(spec.MethodDocumentReplaced, spec.Join(old.address, c.ID()))
	s := bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	if s.m.SigSessID != sid {
		t.Fatalf("STOP_SESSION after replacement: expected sigSessID %s, actual %s", sid, s.m.SigSessID)
	}
}

func TestServiceQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) {
		cfg.ICEURLs = []string{"stun:a.example:3478", "turn:b.example:3478"}
		cfg.Queues = []string{"support"}
		cfg.Schemes = []SchemeRoute{{Scheme: "sip", Topic: "/gw/sip"}}
	})
	alice := e.endpoint("alice")
	tx := uuid.NewString()
	alice.pubJSON(spec.Join(c.Topics().Management(), "alice"), map[string]any{
		"method": "SERVICE_QUERY", "rtcommVer": spec.Version, "transID": tx, "fromTopic": alice.address})
	g := alice.expect("the SERVICE_QUERY answer")
	if !strings.HasPrefix(g.topic, alice.address+"/") {
		t.Fatalf("answer topic: expected under %s/, actual %s", alice.address, g.topic)
	}
	m := g.m
	if m.Method != spec.MethodResponse || m.Orig != spec.MethodServiceQuery || m.TransID != tx || m.Result != spec.ResultSuccess {
		t.Fatalf("answer: expected RESPONSE/SERVICE_QUERY/%s/SUCCESS, actual %s/%s/%s/%s", tx, m.Method, m.Orig, m.TransID, m.Result)
	}
	p := c.Topics()
	want := map[string]spec.Service{
		spec.ServiceConnector: {Topic: p.Connector(), SphereTopic: p.SphereRoot(),
			IceURL: "stun:a.example:3478,turn:b.example:3478", EventMonitoringTopic: p.Events()},
		spec.ServiceCallControl:  {Topic: p.CallControl()},
		spec.ServiceCallQueue:    {Queues: []spec.Queue{{EndpointID: "support", Topic: "$share/" + DefaultQueueGroup + "/" + p.Inbox("support") + "/#"}}},
		SchemeServiceName("sip"): {Schemes: []string{"sip"}, Topic: "/gw/sip"},
	}
	wb, _ := json.Marshal(want)
	ab, _ := json.Marshal(m.Services)
	if !bytes.Equal(wb, ab) {
		t.Fatalf("services:\nexpected %s\nactual   %s", wb, ab)
	}
	alice.expectNone("exactly one answer per query")

	// A requester outside the topic path is answered at its fromTopic exactly.
	bare := e.client("bare")
	bare.subscribe("bare-" + tx[:8])
	bare.pubJSON(spec.Join(c.Topics().Management(), "bare"), map[string]any{
		"method": "SERVICE_QUERY", "transID": "q2", "fromTopic": "bare-" + tx[:8]})
	b := bare.expect("answer at the bare fromTopic")
	if b.topic != "bare-"+tx[:8] || b.m.TransID != "q2" {
		t.Fatalf("bare requester: expected answer at %s for q2, actual %s for %s", "bare-"+tx[:8], b.topic, b.m.TransID)
	}
}

func TestServiceQueryMinimal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.CallControl = false })
	alice := e.endpoint("alice")
	alice.pubJSON(spec.Join(c.Topics().Management(), "alice"), map[string]any{
		"method": "SERVICE_QUERY", "transID": "q", "fromTopic": alice.address})
	g := alice.expect("the SERVICE_QUERY answer")
	if len(g.m.Services) != 1 || g.m.Services[spec.ServiceConnector].IceURL != DefaultICEURL {
		t.Fatalf("services without call control/queues/schemes: expected only %s with iceURL %s, actual %+v",
			spec.ServiceConnector, DefaultICEURL, g.m.Services)
	}
}

// TestCallFullPath: START_SESSION, PRANSWER, candidates both ways (duplicates
// included) before and after the answer, RESPONSE, renegotiation, STOP; each
// checked at the receiving end for topic, fromTopic, transID and payload bytes.
func TestCallFullPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	sid, tx := uuid.NewString(), uuid.NewString()
	sessionTopic := c.SessionTopic()

	// Odd spacing, escapes and an unknown field: relays must keep every byte but fromTopic.
	payload := `{ "webrtc" : {"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n\u00e9"} , "x-extra":[1,2,{"a":null}]}`
	start := `{"method":"START_SESSION","rtcommVer":"v1.0.0","fromTopic":"` + alice.address + `","toEndpointID":"bob",` +
		`"sigSessID":"` + sid + `","transID":"` + tx + `","appContext":"rtcomm","protocols":["webrtc","chat"],` +
		`"payload":` + payload + `,"vendorField":{"k":"v"}}`
	alice.pub(spec.Join(c.Topics().Connector(), "alice"), []byte(start))

	g := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	checkRelay(t, "START_SESSION at callee", g, sessionTopic, tx, []byte(start))
	if g.m.ToEndpointID != "bob" || strings.Join(g.m.Protocols, ",") != "webrtc,chat" {
		t.Errorf("START_SESSION fields: expected toEndpointID bob, protocols webrtc,chat; actual %s, %v", g.m.ToEndpointID, g.m.Protocols)
	}
	// Replies are published to <fromTopic>/<calleeID>.
	replyTo := spec.Join(g.m.FromTopic, "bob")
	atAlice := spec.Join(alice.address, "bob")
	atBob := spec.Join(bob.address, "alice")

	steps := []struct {
		name     string
		from, to *ep
		topic    string
		at       string
		raw      string
	}{
		{"PRANSWER", bob, alice, replyTo, atAlice,
			`{"method":"PRANSWER","rtcommVer":"v1.0.0","fromTopic":"` + bob.address + `","transID":"` + tx + `","sigSessID":"` + sid + `","protocols":["webrtc"],"holdTimeout":20,"queuePosition":0}`},
		{"caller candidate", alice, bob, spec.Join(sessionTopic, "alice"), atBob, candidate(alice.address, sid, "1")},
		{"caller candidate duplicate", alice, bob, spec.Join(sessionTopic, "alice"), atBob, candidate(alice.address, sid, "1")},
		{"callee candidate", bob, alice, replyTo, atAlice, candidate(bob.address, sid, "2")},
		{"RESPONSE", bob, alice, replyTo, atAlice,
			`{"method":"RESPONSE","rtcommVer":"v1.0.0","orig":"START_SESSION","fromTopic":"` + bob.address + `","transID":"` + tx + `","sigSessID":"` + sid + `","result":"SUCCESS","protocols":["webrtc"],"payload":{"webrtc":{"type":"answer","sdp":"v=0\r\n"}}}`},
		{"callee candidate after answer", bob, alice, replyTo, atAlice, candidate(bob.address, sid, "3")},
		{"caller chat", alice, bob, spec.Join(sessionTopic, "alice"), atBob,
			`{"method":"MESSAGE","fromTopic":"` + alice.address + `","sigSessID":"` + sid + `","payload":{"chat":{"message":"hi \"bob\"","from":"alice"}}}`},
		{"renegotiation offer", bob, alice, replyTo, atAlice,
			`{"method":"MESSAGE","fromTopic":"` + bob.address + `","sigSessID":"` + sid + `","payload":{"webrtc":{"type":"offer","sdp":"v=0\r\n"}}}`},
		{"STOP_SESSION", alice, bob, spec.Join(sessionTopic, "alice"), atBob,
			`{"method":"STOP_SESSION","rtcommVer":"v1.0.0","fromTopic":"` + alice.address + `","sigSessID":"` + sid + `","reason":"hangup"}`},
	}
	for _, s := range steps {
		s.from.pub(s.topic, []byte(s.raw))
		var in spec.Message
		_ = json.Unmarshal([]byte(s.raw), &in)
		r := s.to.expectMethod(in.Method, s.at)
		checkRelay(t, s.name, r, sessionTopic, in.TransID, []byte(s.raw))
	}
	alice.expectNone("no reply to STOP_SESSION")
	bob.expectNone("nothing more")
	waitFor(t, "the session to be removed", func() bool { return c.Stats().ActiveSessions == 0 })
	st := c.Stats()
	if st.SessionsStarted != 1 || st.SessionsEstablished != 1 || st.SessionsStopped != 1 {
		t.Fatalf("stats: expected 1 started/established/stopped, actual %d/%d/%d", st.SessionsStarted, st.SessionsEstablished, st.SessionsStopped)
	}
	if st.Routed["MESSAGE"] != 6 || st.Routed["START_SESSION"] != 1 || st.Routed["STOP_SESSION"] != 1 {
		t.Fatalf("routed counts: expected MESSAGE 6, START_SESSION 1, STOP_SESSION 1; actual %v", st.Routed)
	}
}

func candidate(fromTopic, sid, n string) string {
	return `{"method":"MESSAGE","rtcommVer":"v1.0.0","fromTopic":"` + fromTopic + `","sigSessID":"` + sid +
		`","payload":{"webrtc":{"type":"icecandidate","candidate":{"candidate":"candidate:` + n +
		` 1 udp 2122260223 192.0.2.1 5000` + n + ` typ host","sdpMid":"0","sdpMLineIndex":0}}}}`
}

// checkRelay: fromTopic rewritten to the session topic, transID exactly as sent
// (absent stays absent), and every other byte unchanged.
func checkRelay(t *testing.T, name string, g got, sessionTopic, transID string, sent []byte) {
	t.Helper()
	if g.m.FromTopic != sessionTopic {
		t.Errorf("%s: fromTopic expected %s, actual %s", name, sessionTopic, g.m.FromTopic)
	}
	if g.m.TransID != transID {
		t.Errorf("%s: transID expected %q, actual %q", name, transID, g.m.TransID)
	}
	if transID == "" && bytes.Contains(g.raw, []byte(`"transID"`)) {
		t.Errorf("%s: a transID was added: %s", name, g.raw)
	}
	var sentM, gotM map[string]json.RawMessage
	if err := json.Unmarshal(sent, &sentM); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g.raw, &gotM); err != nil {
		t.Fatalf("%s: relayed message is not a JSON object: %v: %s", name, err, g.raw)
	}
	for k, v := range sentM {
		if k == "fromTopic" {
			continue
		}
		if !bytes.Equal(gotM[k], v) {
			t.Errorf("%s: field %s expected bytes %s, actual %s", name, k, v, gotM[k])
		}
	}
	if len(gotM) != len(sentM) {
		t.Errorf("%s: expected %d fields, actual %d: %s", name, len(sentM), len(gotM), g.raw)
	}
}

func TestUnknownCallee(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice := e.endpoint("alice")
	alice.register("rtcomm")
	waitRegistrations(t, c, 1)
	sid := uuid.NewString()
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "nobody", sid, "tx-u"))
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, c.ID()))
	if f.m.Result != spec.ResultFailure || f.m.Orig != spec.MethodStartSession || f.m.TransID != "tx-u" ||
		!contains(f.m.Reason, "nobody") || f.m.SigSessID != sid {
		t.Fatalf("unknown callee: expected FAILURE orig START_SESSION tx-u naming nobody, actual %s", f.raw)
	}
	alice.expectNone("exactly one FAILURE")
	if c.Stats().Failures["unknown_endpoint"] != 1 {
		t.Fatalf("failure count: expected unknown_endpoint 1, actual %v", c.Stats().Failures)
	}

	// fromTopic outside the topic path: answered there exactly (lib.rtcomm.node style).
	bare := e.client("bare")
	bare.subscribe("bare-caller")
	m := startMsg(bare, "nobody", uuid.NewString(), "tx-bare")
	m["fromTopic"] = "bare-caller"
	bare.pubJSON(spec.Join(c.Topics().Connector(), "bare"), m)
	b := bare.expectMethod(spec.MethodResponse, "bare-caller")
	if b.m.Result != spec.ResultFailure || b.m.TransID != "tx-bare" {
		t.Fatalf("bare caller: expected FAILURE tx-bare, actual %s", b.raw)
	}
}

// TestBadInput: every bad message with a transID and fromTopic is answered
// FAILURE with a reason, anything else only logged; the connector keeps
// serving and a healthy call right after works.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	conn := spec.Join(c.Topics().Connector(), "alice")
	from := alice.address
	answered := []struct{ name, topic, raw, reason string }{ // 3PCC requesters are answered at fromTopic exactly
		{"wrong type toEndpointID", conn, `{"method":"START_SESSION","transID":"t1","fromTopic":"` + from + `","sigSessID":"s1","toEndpointID":5}`, "toEndpointID"},
		{"wrong type payload", conn, `{"method":"START_SESSION","transID":"t2","fromTopic":"` + from + `","sigSessID":"s2","toEndpointID":"bob","payload":"x"}`, "payload"},
		{"missing toEndpointID", conn, `{"method":"START_SESSION","transID":"t3","fromTopic":"` + from + `","sigSessID":"s3"}`, "toEndpointID"},
		{"missing sigSessID", conn, `{"method":"START_SESSION","transID":"t4","fromTopic":"` + from + `","toEndpointID":"bob"}`, "sigSessID"},
		{"unknown method", conn, `{"method":"FOO","transID":"t5","fromTopic":"` + from + `"}`, "unknown method"},
		{"missing method", conn, `{"transID":"t6","fromTopic":"` + from + `"}`, "method"},
		{"method wrong type", conn, `{"method":7,"transID":"t7","fromTopic":"` + from + `"}`, "method"},
		{"toEndpointID with /", conn, `{"method":"START_SESSION","transID":"t8","fromTopic":"` + from + `","sigSessID":"s8","toEndpointID":"bo/b"}`, "'/'"},
		{"toEndpointID with +", conn, `{"method":"START_SESSION","transID":"t9","fromTopic":"` + from + `","sigSessID":"s9","toEndpointID":"bo+b"}`, "wildcard"},
		{"toEndpointID with #", conn, `{"method":"START_SESSION","transID":"t10","fromTopic":"` + from + `","sigSessID":"s10","toEndpointID":"bo#b"}`, "wildcard"},
		{"call yourself", conn, `{"method":"START_SESSION","transID":"t11","fromTopic":"` + from + `","sigSessID":"s11","toEndpointID":"alice"}`, "itself"},
		{"MESSAGE unknown session", conn, `{"method":"MESSAGE","transID":"t12","fromTopic":"` + from + `","sigSessID":"nope"}`, "unknown session"},
		{"SERVICE_QUERY on connector topic", conn, `{"method":"SERVICE_QUERY","transID":"t13","fromTopic":"` + from + `"}`, "not accepted"},
		{"START_SESSION on management topic", spec.Join(c.Topics().Management(), "alice"), `{"method":"START_SESSION","transID":"t14","fromTopic":"` + from + `"}`, "not accepted"},
		{"session message without sigSessID", spec.Join(c.SessionTopic(), "alice"), `{"method":"MESSAGE","transID":"t15","fromTopic":"` + from + `"}`, "sigSessID"},
		{"3PCC unknown caller", c.Topics().CallControl(), `{"method":"3PCC_PLACE_CALL","transID":"t16","fromTopic":"` + from + `","callerEndpoint":"zed","calleeEndpoint":"bob"}`, "zed"},
		{"3PCC wrong type", c.Topics().CallControl(), `{"method":"3PCC_PLACE_CALL","transID":"t17","fromTopic":"` + from + `","callerEndpoint":[1],"calleeEndpoint":"bob"}`, "callerEndpoint"},
	}
	for _, a := range answered {
		alice.pub(a.topic, []byte(a.raw))
		var in map[string]any
		_ = json.Unmarshal([]byte(a.raw), &in)
		f := alice.expect("FAILURE for " + a.name)
		at := spec.Join(alice.address, c.ID())
		if a.topic == c.Topics().CallControl() {
			at = alice.address
		}
		if f.topic != at || f.m == nil || f.m.Method != spec.MethodResponse ||
			f.m.Result != spec.ResultFailure || f.m.TransID != in["transID"] || !contains(f.m.Reason, a.reason) {
			t.Errorf("%s: expected RESPONSE FAILURE transID %v with reason containing %q at %s, actual %s at %s",
				a.name, in["transID"], a.reason, at, f.raw, f.topic)
		}
	}
	silent := []struct{ name, topic, raw string }{
		{"malformed JSON", conn, `{"method":"START_SESSION","transID":"x"`},
		{"not an object", conn, `[1,2,3]`},
		{"binary", conn, "\x00\x01\x02"},
		{"empty", conn, ``},
		{"no transID", conn, `{"method":"START_SESSION","fromTopic":"` + from + `","sigSessID":"s","toEndpointID":"nobody"}`},
		{"no fromTopic", conn, `{"method":"START_SESSION","transID":"t","sigSessID":"s","toEndpointID":"nobody"}`},
		{"wildcard fromTopic", conn, `{"method":"START_SESSION","transID":"t","fromTopic":"/x/#","sigSessID":"s","toEndpointID":"nobody"}`},
		{"fromTopic is a service topic", conn, `{"method":"SERVICE_QUERY","transID":"t","fromTopic":"` + c.Topics().Connector() + `"}`},
		{"STOP_SESSION unknown", conn, `{"method":"STOP_SESSION","fromTopic":"` + from + `","sigSessID":"nope"}`},
		{"RESPONSE unknown", conn, `{"method":"RESPONSE","transID":"t","fromTopic":"` + from + `","result":"FAILURE","sigSessID":"nope"}`},
		{"late candidate", spec.Join(c.SessionTopic(), "alice"), candidate(from, "nope", "9")},
		{"sphere garbage", c.Topics().Sphere("mallory"), `{"method":"DOCUMENT","addressTopic":"/a/+"}`},
		{"sphere not a document", c.Topics().Sphere("mallory"), `{"method":"START_SESSION","transID":"t","fromTopic":"` + from + `"}`},
		{"deep call-control topic", c.Topics().CallControl() + "/a/b", `{"method":"3PCC_PLACE_CALL","transID":"t","fromTopic":"` + from + `"}`},
		{"huge", conn, `{"method":"MESSAGE","sigSessID":"nope","payload":{"x":"` + strings.Repeat("a", 70000) + `"}}`},
	}
	for _, s := range silent {
		alice.pub(s.topic, []byte(s.raw))
	}
	alice.expectNone("no answer to messages without transID and usable fromTopic")
	bob.expectNone("nothing reaches bob")
	if err := c.Healthy(); err != nil {
		t.Fatalf("after bad input: expected healthy, actual %v", err)
	}
	start, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
}

func TestReaper(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.AnswerTimeout = 300 * time.Millisecond })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/#")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, alice, bob)

	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "bob"))
	if f.m.Result != spec.ResultFailure || f.m.Reason != "timeout" || f.m.TransID != start.m.TransID ||
		f.m.SigSessID != sid || f.m.Orig != spec.MethodStartSession {
		t.Fatalf("timeout at caller: expected RESPONSE FAILURE 'timeout' for the START_SESSION, actual %s", f.raw)
	}
	s := bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	if s.m.SigSessID != sid || s.m.TransID != "" {
		t.Fatalf("timeout at callee: expected STOP_SESSION %s without transID, actual %s", sid, s.raw)
	}
	ev := mon.expectMethod(spec.MethodEventFired, c.Topics().SessionEvent("failed", "alice", "bob"))
	if ev.m.Reason != "timeout" || ev.m.SigSessID != sid {
		t.Fatalf("failed event: expected reason timeout for %s, actual %s", sid, ev.raw)
	}
	if st := c.Stats(); st.ActiveSessions != 0 || st.Failures["timeout"] != 1 {
		t.Fatalf("after reaping: expected 0 sessions and 1 timeout, actual %d and %v", st.ActiveSessions, st.Failures)
	}
	// The callee answering too late is told the session is gone.
	bob.pubJSON(spec.Join(start.m.FromTopic, "bob"), map[string]any{"method": "RESPONSE", "orig": "START_SESSION",
		"result": "SUCCESS", "transID": start.m.TransID, "sigSessID": sid, "fromTopic": bob.address})
	late := bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, "alice"))
	if late.m.SigSessID != sid {
		t.Fatalf("late answer: expected STOP_SESSION for %s, actual %s", sid, late.raw)
	}
	alice.expectNone("the caller hears nothing more")
}

func TestHoldTimeoutExtendsAnswerTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) { cfg.AnswerTimeout = 200 * time.Millisecond })
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, alice, bob)
	bob.pubJSON(spec.Join(start.m.FromTopic, "bob"), map[string]any{"method": "PRANSWER", "transID": start.m.TransID,
		"sigSessID": sid, "fromTopic": bob.address, "holdTimeout": 2})
	alice.expectMethod(spec.MethodPranswer, spec.Join(alice.address, "bob"))
	alice.expectNone("no timeout while the holdTimeout runs") // 300ms > AnswerTimeout
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "bob"))
	if f.m.Reason != "timeout" {
		t.Fatalf("after holdTimeout: expected FAILURE timeout, actual %s", f.raw)
	}
}

func TestRouteOnly(t *testing.T) {
	t.Parallel()
	_, c, alice, bob := routeOnlyPair(t)
	raw := []byte(`{"method":"START_SESSION","rtcommVer":"v1.0.0","fromTopic":"` + alice.address +
		`","toEndpointID":"bob","sigSessID":"s-ro","transID":"t-ro","payload":{"webrtc":{"type":"offer","sdp":"v=0"}}}`)
	alice.pub(spec.Join(c.Topics().Connector(), "alice"), raw)
	g := bob.expectMethod(spec.MethodStartSession, spec.Join(bob.address, "alice"))
	if !bytes.Equal(g.raw, raw) {
		t.Fatalf("RouteOnly: expected the START_SESSION untouched\nexpected %s\nactual   %s", raw, g.raw)
	}
	if st := c.Stats(); st.ActiveSessions != 0 || st.Routed["START_SESSION"] != 1 {
		t.Fatalf("RouteOnly: expected 0 tracked sessions and 1 routed, actual %d, %v", st.ActiveSessions, st.Routed)
	}
	// Unknown callee is still answered.
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "nobody", "s2", "t2"))
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, c.ID()))
	if f.m.Result != spec.ResultFailure {
		t.Fatalf("RouteOnly unknown callee: expected FAILURE, actual %s", f.raw)
	}
}

func TestCloseIdempotentAndHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	if err := c.Healthy(); err != nil {
		t.Fatalf("Healthy while serving: expected nil, actual %v", err)
	}
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	_, sid := call(t, c, alice, bob)
	// Close answers the unanswered call.
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: expected nil, actual %v", err)
	}
	f := alice.expectMethod(spec.MethodResponse, spec.Join(alice.address, "bob"))
	if f.m.Result != spec.ResultFailure || f.m.SigSessID != sid {
		t.Fatalf("unanswered call at Close: expected FAILURE for %s, actual %s", sid, f.raw)
	}
	if c.Healthy() == nil {
		t.Fatal("Healthy after Close: expected an error, actual nil")
	}
}
