package endpoint_test

import (
	"errors"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// startConnector starts the reference connector on the env's broker and path.
func startConnector(t *testing.T, v *env) *connector.Connector {
	t.Helper()
	cfg := connector.DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath = v.url, v.path
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatalf("connector start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// viaConnector dials, registers and service-queries an endpoint like rtcomm.js does.
func viaConnector(t *testing.T, v *env, c *connector.Connector, cfg endpoint.Config) *endpoint.Endpoint {
	t.Helper()
	ctx := testCtx(t)
	e := v.dial(cfg)
	if err := e.Register(ctx); err != nil {
		t.Fatal(err)
	}
	services, err := e.ServiceQuery(ctx)
	if err != nil {
		t.Fatalf("service query %s: %v", cfg.ID, err)
	}
	expectEqual(t, "connector topic after the query", v.path+"connector", e.ConnectorTopic())
	if services[spec.ServiceConnector].IceURL == "" {
		t.Errorf("service query: expected an iceURL, actual none in %+v", services)
	}
	return e
}

func waitRegistrations(t *testing.T, c *connector.Connector, n int) {
	t.Helper()
	waitFor(t, testCtx(t), "registrations at the connector", func() bool { return c.Stats().Registrations >= n })
}

// TestCallThroughConnector: the full call via the reference connector, which stays
// in the path (fromTopic is its session topic), then stopped by the callee.
func TestCallThroughConnector(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	alice := viaConnector(t, v, c, v.config("alice"))
	bob := viaConnector(t, v, c, v.config("bob"))
	waitRegistrations(t, c, 2)

	offer := sdp(spec.SDPOffer)
	call, err := alice.Call(ctx, "bob", offer)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	inv := invite(t, ctx, bob)
	expectEqual(t, "caller", "alice", inv.Caller())
	expectEqual(t, "offer byte-for-byte", string(offer), string(inv.Message().Payload))
	expectEqual(t, "sigSessID unchanged", call.ID(), inv.Message().SigSessID)
	expectEqual(t, "fromTopic rewritten to the connector's", c.SessionTopic(), inv.Message().FromTopic)
	if err := inv.Pranswer(ctx, endpoint.PranswerOptions{}); err != nil {
		t.Fatal(err)
	}
	<-call.Pranswered()
	expectEqual(t, "caller's peer topic after PRANSWER", c.SessionTopic(), call.PeerTopic())
	if err := call.SendCandidate(ctx, cand(3)); err != nil {
		t.Fatal(err)
	}
	expectCandidates(t, inv.Session(), "callee before answering", []int{0, 1, 2, 3})
	answer := sdp(spec.SDPAnswer)
	callee, err := inv.Accept(ctx, answer)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := call.Await(ctx)
	if err != nil {
		t.Fatalf("await: %v", err)
	}
	expectEqual(t, "answer byte-for-byte", string(answer), string(resp.Payload))
	expectEqual(t, "answerer", "bob", call.Peer())
	for i := 4; i < 6; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
		if err := callee.SendCandidate(ctx, cand(i+10)); err != nil {
			t.Fatal(err)
		}
	}
	expectCandidates(t, callee, "callee", []int{4, 5})
	expectCandidates(t, call, "caller", []int{14, 15})
	if err := callee.Stop(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, call, "caller")
	var st *endpoint.Stopped
	if !errors.As(call.Err(), &st) || !st.Remote {
		t.Errorf("caller Err: expected remote *Stopped, actual %v", call.Err())
	}
	waitFor(t, ctx, "no sessions at the connector", func() bool { return c.Stats().ActiveSessions == 0 })
	for _, e := range []*endpoint.Endpoint{alice, bob} {
		st := e.Stats()
		expectEqual(t, e.ID()+" active sessions", 0, st.ActiveSessions)
		expectEqual(t, e.ID()+" unparseable", uint64(0), st.Unparseable)
		expectEqual(t, e.ID()+" unexpected", uint64(0), st.Unexpected)
		expectEqual(t, e.ID()+" unmatched responses", uint64(0), st.UnmatchedResponses)
	}
}

// TestConnectorUnknownCallee: FAILURE from the connector reaches the caller as *Rejected.
func TestConnectorUnknownCallee(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	c := startConnector(t, v)
	alice := viaConnector(t, v, c, v.config("alice"))
	call, err := alice.Call(testCtx(t), "nobody", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	_, err = call.Await(testCtx(t))
	var rej *endpoint.Rejected
	if !errors.As(err, &rej) || rej.Reason == "" {
		t.Fatalf("await: expected *Rejected with a reason, actual %v", err)
	}
}

// TestConnectorEndsSessionsOnClose: Close (STOP, then the empty retained) ends the
// peer's session, whichever arrives first at the connector.
func TestConnectorEndsSessionsOnClose(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	alice := viaConnector(t, v, c, v.config("alice"))
	bob := viaConnector(t, v, c, v.config("bob"))
	waitRegistrations(t, c, 2)
	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	inv := invite(t, ctx, bob)
	callee, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, callee, "bob")
	waitFor(t, ctx, "alice unregistered at the connector", func() bool { return c.Stats().Registrations == 1 })
}

// TestConnectorReplaced: a second alice (another address, as rtcomm.js's random
// client-ID addresses give) takes the registration over; the first gets
// DOCUMENT_REPLACED and clears its presence, which must not unregister the
// newcomer: a call to alice reaches the second one.
func TestConnectorReplaced(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	cfg := v.config("alice")
	cfg.AddressFromClientID = true
	old := viaConnector(t, v, c, cfg)
	waitRegistrations(t, c, 1)
	cfg.ClientID = "" // a new random one
	newer := viaConnector(t, v, c, cfg)
	if old.Address() == newer.Address() {
		t.Fatalf("expected two addresses, actual both %s", old.Address())
	}
	select {
	case <-old.Replaced():
	case <-ctx.Done():
		t.Fatal("expected DOCUMENT_REPLACED at the older alice, none came")
	}
	bob := viaConnector(t, v, c, v.config("bob"))
	waitRegistrations(t, c, 2)
	call, err := bob.Call(ctx, "alice", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	inv := invite(t, ctx, newer)
	if _, err := inv.Accept(ctx, sdp(spec.SDPAnswer)); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatalf("call to the newer alice: %v", err)
	}
	select {
	case <-old.Incoming():
		t.Error("expected the replaced alice to get no call, actual a START_SESSION")
	default:
	}
}

// TestThirdPartyCall: 3PCC_PLACE_CALL makes the connector REFER alice, who calls
// bob with the REFER's sessionID; the requester hears SUCCESS once bob answers.
func TestThirdPartyCall(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	c := startConnector(t, v)
	alice := viaConnector(t, v, c, v.config("alice"))
	bob := viaConnector(t, v, c, v.config("bob"))
	waitRegistrations(t, c, 2)
	ctl := v.raw("ctl")
	answers := v.sub(ctl, "ctl-"+v.path[1:len(v.path)-1])
	publish(t, ctl, v.path+"callControl", &spec.Message{Method: spec.Method3PCCPlaceCall, TransID: "pcc-1",
		CallerEndpoint: "alice", CalleeEndpoint: "bob", FromTopic: "ctl-" + v.path[1:len(v.path)-1]})
	var r *endpoint.Refer
	select {
	case r = <-alice.Refers():
	case <-ctx.Done():
		t.Fatal("expected a REFER at alice, none came")
	}
	expectEqual(t, "REFER target", "bob", r.Target())
	call, err := r.Accept(ctx, endpoint.WithPayload(sdp(spec.SDPOffer)))
	if err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "referred session ID", r.Details().SessionID, call.ID())
	inv := invite(t, ctx, bob)
	if _, err := inv.Accept(ctx, sdp(spec.SDPAnswer)); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	a := decode(t, next(t, ctx, answers, "the 3PCC answer"))
	expectEqual(t, "3PCC answer orig", spec.Method3PCCPlaceCall, a.Orig)
	expectEqual(t, "3PCC answer transID", "pcc-1", a.TransID)
	expectEqual(t, "3PCC answer result", spec.ResultSuccess, a.Result)
}
