package endpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// TestRegisterDocument: the retained DOCUMENT has rtcomm.js's fields, and a
// subscriber arriving later gets it as a retained message.
func TestRegisterDocument(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	if err := alice.Register(ctx, endpoint.WithAlias("Alice A.")); err != nil {
		t.Fatal(err)
	}
	sphere := v.path + "sphere/alice"
	// The first late subscriber may race the publish (then it sees it live); once it
	// has seen it, the broker has stored it, and a second one must get it retained.
	next(t, ctx, v.sub(v.raw("mon1"), sphere), "the DOCUMENT")
	m := next(t, ctx, v.sub(v.raw("mon2"), sphere), "the retained DOCUMENT")
	if !m.Retained {
		t.Error("DOCUMENT: expected a retained message for a late subscriber, actual not retained")
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload, &doc); err != nil {
		t.Fatalf("DOCUMENT: %v (%s)", err, m.Payload)
	}
	want := map[string]string{
		"method": `"DOCUMENT"`, "rtcommVer": `"v1.0.0"`, "type": `"ENDPOINT"`, "appContext": `"rtcomm"`,
		"addressTopic": `"` + v.path + `alice"`, "fromTopic": `null`, "state": `"available"`,
		"alias": `"Alice A."`, "userDefines": `[]`,
	}
	for k, w := range want {
		expectEqual(t, "DOCUMENT "+k, w, string(doc[k]))
	}
	if _, ok := doc["topic"]; ok {
		t.Errorf("DOCUMENT (rtcomm.js form): expected no topic field, actual %s", doc["topic"])
	}
	d := decode(t, m)
	expectEqual(t, "DOCUMENT address", alice.Address(), d.Address())
}

func TestRegisterStrictDocument(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	mon := v.sub(v.raw("mon"), v.path+"sphere/alice")
	if err := alice.Register(ctx, endpoint.WithStrictDocument(), endpoint.WithState("busy"),
		endpoint.WithUserDefines(json.RawMessage(`[{"k":"v"}]`))); err != nil {
		t.Fatal(err)
	}
	m := next(t, ctx, mon, "the DOCUMENT")
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload, &doc); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "strict DOCUMENT topic", `"`+alice.Address()+`"`, string(doc["topic"]))
	expectEqual(t, "strict DOCUMENT state", `"busy"`, string(doc["state"]))
	expectEqual(t, "strict DOCUMENT userDefines", `[{"k":"v"}]`, string(doc["userDefines"]))
	for _, k := range []string{"addressTopic", "fromTopic"} {
		if _, ok := doc[k]; ok {
			t.Errorf("strict DOCUMENT: expected no %s, actual %s", k, doc[k])
		}
	}
}

// TestUnregisterAndClose: Unregister and Close each publish an empty retained
// message on the presence topic.
func TestUnregisterAndClose(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	mon := v.sub(v.raw("mon"), v.path+"sphere/alice")
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"Unregister", func() error { return alice.Unregister(ctx) }},
		{"Close", alice.Close},
	} {
		if err := alice.Register(ctx); err != nil {
			t.Fatalf("register before %s: %v", step.name, err)
		}
		doc := next(t, ctx, mon, "the DOCUMENT")
		if len(doc.Payload) == 0 {
			t.Fatalf("%s: expected the DOCUMENT first, actual an empty message", step.name)
		}
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		m := next(t, ctx, mon, "an empty message after "+step.name)
		// mochi writes the SUBACK before it sends the retained messages for the new
		// subscription, so a DOCUMENT published meanwhile can arrive twice, live and as the
		// retained copy (same bytes, in either order): the second is not a registration.
		for bytes.Equal(m.Payload, doc.Payload) {
			m = next(t, ctx, mon, "an empty message after "+step.name)
		}
		if len(m.Payload) != 0 {
			t.Errorf("%s: expected an empty payload on the sphere topic, actual %s", step.name, m.Payload)
		}
	}
	select {
	case <-alice.Done():
	default:
		t.Error("Done: expected closed after Close")
	}
	if !errors.Is(alice.Err(), endpoint.ErrClosed) {
		t.Errorf("Err after Close: expected ErrClosed, actual %v", alice.Err())
	}
	if err := alice.Register(ctx); !errors.Is(err, endpoint.ErrClosed) {
		t.Errorf("Register after Close: expected ErrClosed, actual %v", err)
	}
}

// TestKillFiresWill: an abrupt end makes the broker publish the empty retained will.
func TestKillFiresWill(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	if v.noWill {
		t.Skip("RTCOMM_ENDPOINT_NOWILL=1: endpoints have no will")
	}
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	if err := alice.Register(ctx); err != nil {
		t.Fatal(err)
	}
	mon := v.sub(v.raw("mon"), v.path+"sphere/alice")
	if m := next(t, ctx, mon, "the DOCUMENT"); len(m.Payload) == 0 {
		t.Fatal("expected the DOCUMENT, actual an empty message")
	}
	alice.Kill()
	m := next(t, ctx, mon, "the will")
	if len(m.Payload) != 0 {
		t.Errorf("will: expected an empty payload, actual %s", m.Payload)
	}
	expectEqual(t, "will topic", v.path+"sphere/alice", m.Topic)
}

// TestServiceQuery against a fake connector: the query's form, the connector topic
// taken from the answer, a second answer detected, then a call through the fake
// connector staying in the path.
func TestServiceQuery(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	fake := v.raw("conn")
	queries := v.sub(fake, v.path+"management/#")
	routed := v.sub(fake, v.path+"myConnector/#")

	type result struct {
		services map[string]spec.Service
		err      error
	}
	res := make(chan result, 1)
	go func() {
		s, err := alice.ServiceQuery(ctx)
		res <- result{s, err}
	}()
	qm := next(t, ctx, queries, "SERVICE_QUERY")
	expectEqual(t, "query topic", v.path+"management/alice", qm.Topic)
	q := decode(t, qm)
	expectEqual(t, "query method", spec.MethodServiceQuery, q.Method)
	expectEqual(t, "query fromTopic", alice.Address(), q.FromTopic)
	if q.TransID == "" {
		t.Fatal("SERVICE_QUERY: expected a transID, actual none")
	}
	answer := &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodServiceQuery, TransID: q.TransID,
		Result: spec.ResultSuccess, Services: map[string]spec.Service{
			spec.ServiceConnector: {Topic: "myConnector", SphereTopic: v.path + "sphere", IceURL: "stun:127.0.0.1:3478"},
		}}
	publish(t, fake, q.FromTopic+"/connector", answer)
	r := <-res
	if r.err != nil {
		t.Fatalf("service query: %v", r.err)
	}
	expectEqual(t, "iceURL", "stun:127.0.0.1:3478", r.services[spec.ServiceConnector].IceURL)
	expectEqual(t, "connector topic (relative resolved)", v.path+"myConnector", alice.ConnectorTopic())

	// The same answer again: two connectors.
	publish(t, fake, q.FromTopic+"/connector", answer)
	select {
	case err := <-alice.Errors():
		if !errors.Is(err, endpoint.ErrMultipleConnectors) {
			t.Errorf("Errors(): expected ErrMultipleConnectors, actual %v", err)
		}
	case <-ctx.Done():
		t.Fatal("expected a second answer to be reported on Errors(), nothing came")
	}
	expectEqual(t, "Stats.MultipleConnectors", uint64(1), alice.Stats().MultipleConnectors)

	// A call goes to the connector topic; the fake connector stays in the path.
	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer), endpoint.WithProtocols("webrtc", "chat"))
	if err != nil {
		t.Fatal(err)
	}
	sm := next(t, ctx, routed, "START_SESSION at the connector")
	expectEqual(t, "START_SESSION topic", v.path+"myConnector/alice", sm.Topic)
	start := decode(t, sm)
	expectEqual(t, "toEndpointID", "bob", start.ToEndpointID)
	expectEqual(t, "appContext", "rtcomm", start.AppContext)
	connTopic := v.path + "myConnector"
	publish(t, fake, alice.Address()+"/bob", &spec.Message{Method: spec.MethodPranswer, TransID: start.TransID,
		SigSessID: start.SigSessID, FromTopic: connTopic, Protocols: []string{"webrtc"}})
	publish(t, fake, alice.Address()+"/bob", &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodStartSession,
		TransID: start.TransID, SigSessID: start.SigSessID, FromTopic: connTopic, Result: spec.ResultSuccess,
		Protocols: []string{"webrtc"}, Payload: sdp(spec.SDPAnswer)})
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "peer", "bob", call.Peer())
	if err := call.SendCandidate(ctx, cand(1)); err != nil {
		t.Fatal(err)
	}
	mm := next(t, ctx, routed, "MESSAGE via the connector")
	expectEqual(t, "MESSAGE topic", connTopic+"/alice", mm.Topic)
	msg := decode(t, mm)
	expectEqual(t, "MESSAGE sigSessID", call.ID(), msg.SigSessID)
	expectEqual(t, "MESSAGE fromTopic", alice.Address(), msg.FromTopic)
	publish(t, fake, alice.Address()+"/bob", &spec.Message{Method: spec.MethodStopSession, SigSessID: start.SigSessID,
		FromTopic: connTopic, Reason: "peer left"})
	waitDone(t, testCtx(t), call, "caller")
	var st *endpoint.Stopped
	if !errors.As(call.Err(), &st) || st.Reason != "peer left" {
		t.Errorf("caller Err: expected *Stopped{peer left}, actual %v", call.Err())
	}
}

func TestServiceQueryFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		answer func(q *spec.Message) *spec.Message
		check  func(error) bool
		want   string
	}{
		{"FAILURE", func(q *spec.Message) *spec.Message {
			return &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodServiceQuery, TransID: q.TransID,
				Result: spec.ResultFailure, Reason: "go away"}
		}, func(err error) bool { var r *endpoint.Rejected; return errors.As(err, &r) && r.Reason == "go away" }, "*Rejected{go away}"},
		{"no connector service", func(q *spec.Message) *spec.Message {
			return &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodServiceQuery, TransID: q.TransID,
				Result: spec.ResultSuccess, Services: map[string]spec.Service{spec.ServiceCallControl: {Topic: "cc"}}}
		}, func(err error) bool { return errors.Is(err, endpoint.ErrNoConnectorService) }, "ErrNoConnectorService"},
		{"no answer", nil, func(err error) bool { return errors.Is(err, endpoint.ErrTimeout) }, "ErrTimeout"},
		{"wrong transID", func(q *spec.Message) *spec.Message {
			return &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodServiceQuery, TransID: "other",
				Result: spec.ResultSuccess, Services: map[string]spec.Service{spec.ServiceConnector: {Topic: "x"}}}
		}, func(err error) bool { return errors.Is(err, endpoint.ErrTimeout) }, "ErrTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			ctx := testCtx(t)
			cfg := v.config("alice")
			cfg.QueryTimeout = 500 * time.Millisecond
			alice := v.dial(cfg)
			fake := v.raw("conn")
			queries := v.sub(fake, v.path+"management/#")
			errc := make(chan error, 1)
			go func() { _, err := alice.ServiceQuery(ctx); errc <- err }()
			q := decode(t, next(t, ctx, queries, "SERVICE_QUERY"))
			if tc.answer != nil {
				publish(t, fake, q.FromTopic+"/connector", tc.answer(q))
			}
			if err := <-errc; !tc.check(err) {
				t.Errorf("service query: expected %s, actual %v", tc.want, err)
			}
			expectEqual(t, "connector topic unchanged", v.path+"connector", alice.ConnectorTopic())
		})
	}
}

// TestDocumentReplaced: Replaced fires and, like rtcomm.js, the endpoint clears its
// presence topic; with KeepRegistrationOnReplace it does not. A marker published
// behind shows what was (not) sent.
func TestDocumentReplaced(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "rtcomm.js", true: "keep"}[keep], func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			ctx := testCtx(t)
			cfg := v.config("alice")
			cfg.KeepRegistrationOnReplace = keep
			alice := v.dial(cfg)
			if err := alice.Register(ctx); err != nil {
				t.Fatal(err)
			}
			fake := v.raw("conn")
			monAll := v.sub(v.raw("mon"), v.path+"+/alice")
			if m := next(t, ctx, monAll, "the DOCUMENT"); len(m.Payload) == 0 {
				t.Fatal("expected the DOCUMENT first, actual an empty message")
			}
			publish(t, fake, alice.Address()+"/connector", &spec.Message{Method: spec.MethodDocumentReplaced})
			select {
			case <-alice.Replaced():
			case <-ctx.Done():
				t.Fatal("expected Replaced() to fire, it did not")
			}
			if err := alice.Client().Publish(ctx, v.path+"marker/alice", 1, false, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			// monAll sees (rtcomm.js) the empty message, then the marker.
			seq := []string{"doc"}
			for {
				m := next(t, ctx, monAll, "messages on +/alice")
				if m.Topic == v.path+"marker/alice" {
					break
				}
				if m.Topic == v.path+"sphere/alice" {
					seq = append(seq, map[bool]string{true: "empty", false: "doc"}[len(m.Payload) == 0])
				}
			}
			want := []string{"doc", "empty"}
			if keep {
				want = want[:1]
			}
			if !slices.Equal(seq, want) {
				t.Errorf("sphere/alice before the marker: expected %v, actual %v", want, seq)
			}
		})
	}
}

// TestRefer against a fake connector: accept answers SUCCESS at <fromTopic>/<me>,
// then calls the target with the REFER's sessionID; reject answers FAILURE.
func TestRefer(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice := v.dial(v.config("alice"))
	fake := v.raw("conn")
	conn := v.path + "connector"
	got := v.sub(fake, conn+"/#")
	refer := func(transID, sessID string) *endpoint.Refer {
		details, _ := json.Marshal(spec.ReferDetails{SessionID: sessID, ToEndpointID: "bob"})
		publish(t, fake, alice.Address()+"/connector", &spec.Message{Method: spec.MethodRefer, TransID: transID,
			FromTopic: conn, ToEndpointID: "bob", Details: details})
		select {
		case r := <-alice.Refers():
			return r
		case <-ctx.Done():
			t.Fatal("expected a REFER on Refers(), none came")
			return nil
		}
	}

	r := refer("tr-1", "sess-1")
	expectEqual(t, "refer target", "bob", r.Target())
	expectEqual(t, "refer sender", "connector", r.From())
	offer := sdp(spec.SDPOffer)
	call, err := r.Accept(ctx, endpoint.WithPayload(offer))
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ctx, got, "RESPONSE to REFER")
	expectEqual(t, "REFER answer topic", conn+"/alice", m.Topic)
	resp := decode(t, m)
	expectEqual(t, "REFER answer method", spec.MethodResponse, resp.Method)
	expectEqual(t, "REFER answer orig", spec.MethodRefer, resp.Orig)
	expectEqual(t, "REFER answer transID", "tr-1", resp.TransID)
	expectEqual(t, "REFER answer result", spec.ResultSuccess, resp.Result)
	start := decode(t, next(t, ctx, got, "START_SESSION after the REFER"))
	expectEqual(t, "referred call method", spec.MethodStartSession, start.Method)
	expectEqual(t, "referred call sigSessID", "sess-1", start.SigSessID)
	expectEqual(t, "referred call session ID", "sess-1", call.ID())
	expectEqual(t, "referred call toEndpointID", "bob", start.ToEndpointID)
	expectEqual(t, "referred call offer", string(offer), string(start.Payload))
	if _, err := r.Accept(ctx); !errors.Is(err, endpoint.ErrAnswered) {
		t.Errorf("second Accept: expected ErrAnswered, actual %v", err)
	}
	if err := call.Stop(ctx, "test over"); err != nil {
		t.Fatal(err)
	}
	next(t, ctx, got, "STOP_SESSION")

	r = refer("tr-2", "sess-2")
	if err := r.Reject(ctx, "not now"); err != nil {
		t.Fatal(err)
	}
	resp = decode(t, next(t, ctx, got, "RESPONSE FAILURE to REFER"))
	expectEqual(t, "reject orig", spec.MethodRefer, resp.Orig)
	expectEqual(t, "reject transID", "tr-2", resp.TransID)
	expectEqual(t, "reject result", spec.ResultFailure, resp.Result)
	expectEqual(t, "reject reason", "not now", resp.Reason)
	expectEqual(t, "active sessions", 0, alice.Stats().ActiveSessions)
}

// TestReferExpired: like rtcomm.js, a REFER older than ReferTimeout cannot be accepted.
func TestReferExpired(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	cfg := v.config("alice")
	cfg.ReferTimeout = time.Nanosecond
	alice := v.dial(cfg)
	fake := v.raw("conn")
	details, _ := json.Marshal(spec.ReferDetails{SessionID: "s", ToEndpointID: "bob"})
	publish(t, fake, alice.Address()+"/connector", &spec.Message{Method: spec.MethodRefer, TransID: "t",
		FromTopic: v.path + "connector", Details: details})
	var r *endpoint.Refer
	select {
	case r = <-alice.Refers():
	case <-ctx.Done():
		t.Fatal("expected a REFER, none came")
	}
	if _, err := r.Accept(ctx); !errors.Is(err, endpoint.ErrTimeout) {
		t.Errorf("accept of an expired REFER: expected ErrTimeout, actual %v", err)
	}
	expectEqual(t, "active sessions", 0, alice.Stats().ActiveSessions)
}
