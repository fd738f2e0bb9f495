package endpoint_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// establish places a Direct call from alice to bob and answers it.
func establish(t *testing.T, alice, bob *endpoint.Endpoint) (call, callee *endpoint.Session) {
	t.Helper()
	ctx := testCtx(t)
	call, err := alice.Call(ctx, bob.ID(), sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	callee, err = invite(t, ctx, bob).Accept(ctx, sdp(spec.SDPAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	return call, callee
}

// TestMQTT31: the endpoint speaks MQTT 3.1 (MQIsdp) like rtcomm.js.
func TestMQTT31(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	alice, bob := directPair(t, v, func(c *endpoint.Config) { c.ProtocolVersion = 3 })
	call, _ := establish(t, alice, bob)
	if err := call.Stop(testCtx(t), "done"); err != nil {
		t.Fatal(err)
	}
}

// TestEventsOverflowOrder: a reader far behind loses nothing and sees the order kept.
func TestEventsOverflowOrder(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice, bob := directPair(t, v, func(c *endpoint.Config) { c.EventBuffer = 2 })
	call, callee := establish(t, alice, bob)
	const n = 40
	for i := 0; i < n; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := call.Send(ctx, []byte(`{"chat":{"message":"last"}}`)); err != nil {
		t.Fatal(err)
	}
	// Wait until everything has arrived (the last message is in the channel or the
	// overflow) before reading anything.
	waitFor(t, ctx, fmt.Sprintf("%d messages at bob", n+1), func() bool { return bob.Stats().Received >= n+2 })
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	expectCandidates(t, callee, "callee reading late", want)
	m := nextEvent(t, ctx, callee, "the chat")
	if c, ok, _ := m.Chat(); !ok || c.Message != "last" {
		t.Errorf("after the candidates: expected chat \"last\", actual %s", m.Payload)
	}
}

// TestConnectionLost: the broker goes away; endpoints and sessions end with
// ErrConnectionLost, and Close still cleans up.
func TestConnectionLost(t *testing.T) {
	t.Parallel()
	b := startEmbeddedBroker(t)
	v := &env{t: t, url: b.TCPURL(), path: newPath()}
	ctx := testCtx(t)
	alice, bob := directPair(t, v, nil)
	call, callee := establish(t, alice, bob)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*endpoint.Endpoint{alice, bob} {
		select {
		case <-e.Done():
		case <-ctx.Done():
			t.Fatalf("%s: expected Done after the broker closed, still running", e.ID())
		}
		if !errors.Is(e.Err(), endpoint.ErrConnectionLost) {
			t.Errorf("%s Err: expected ErrConnectionLost, actual %v", e.ID(), e.Err())
		}
	}
	for _, s := range []*endpoint.Session{call, callee} {
		waitDone(t, ctx, s, "a party")
		if !errors.Is(s.Err(), endpoint.ErrConnectionLost) {
			t.Errorf("session Err: expected ErrConnectionLost, actual %v", s.Err())
		}
	}
	if err := alice.Close(); err != nil {
		t.Errorf("close after connection loss: expected nil, actual %v", err)
	}
}
