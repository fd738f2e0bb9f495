// Package reference_test runs whole calls through the reference target: endpoint ->
// broker -> connector -> broker -> peer, on the embedded broker and on mosquitto.
package reference_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestFullCallEmbeddedBroker(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	runFullCall(t, b.TCPURL())
}

func TestFullCallMosquitto(t *testing.T) {
	t.Parallel()
	p := extbroker.MosquittoForTest(t)
	runFullCall(t, p.TCP)
}

func TestFullCallEmbeddedWebSocket(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	runFullCall(t, b.WSURL())
}

// runFullCall: offer, PRANSWER, candidates both ways before and after the answer,
// answer, in-session chat message, stop; checked at both ends.
func runFullCall(t *testing.T, brokerURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := "/t-" + uuid.NewString()[:8] + "/"

	cfg := connector.DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath = brokerURL, path
	conn, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(ctx); err != nil {
		t.Fatalf("connector start: %v", err)
	}
	defer conn.Close()

	dial := func(id string) *endpoint.Endpoint {
		e, err := endpoint.Dial(ctx, endpoint.Config{BrokerURL: brokerURL, TopicPath: path, ID: id})
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		if err := e.Register(ctx); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		if _, err := e.ServiceQuery(ctx); err != nil {
			t.Fatalf("service query %s: %v", id, err)
		}
		return e
	}
	alice, bob := dial("alice"), dial("bob")
	defer alice.Close()
	defer bob.Close()
	waitRegistered(t, ctx, conn, 2)

	offer := spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.SDPOffer, SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"})
	call, err := alice.Call(ctx, "bob", offer)
	if err != nil {
		t.Fatalf("call: %v", err)
	}

	var inv *endpoint.Invite
	select {
	case inv = <-bob.Incoming():
	case <-ctx.Done():
		t.Fatal("expected bob to receive START_SESSION, none arrived")
	}
	if inv.Caller() != "alice" {
		t.Errorf("caller: expected alice, actual %q", inv.Caller())
	}
	if got := string(inv.Message().Payload); got != string(offer) {
		t.Errorf("offer payload: expected byte-for-byte\n%s\nactual\n%s", offer, got)
	}
	hold := 20
	if err := inv.Pranswer(ctx, endpoint.PranswerOptions{HoldTimeout: &hold}); err != nil {
		t.Fatalf("pranswer: %v", err)
	}
	cand := func(i int) spec.ICECandidate {
		idx := 0
		return spec.ICECandidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.%d 5%04d typ host", i, i+1, i), SDPMid: "0", SDPMLineIndex: &idx}
	}
	// Caller trickles before the answer.
	for i := 0; i < 3; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	answer := spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.SDPAnswer, SDP: "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"})
	callee, err := inv.Accept(ctx, answer)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	resp, err := call.Await(ctx)
	if err != nil {
		t.Fatalf("await answer: %v", err)
	}
	if string(resp.Payload) != string(answer) {
		t.Errorf("answer payload: expected %s, actual %s", answer, resp.Payload)
	}
	// Both sides trickle after the answer.
	for i := 3; i < 6; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
		if err := callee.SendCandidate(ctx, cand(i+10)); err != nil {
			t.Fatal(err)
		}
	}
	chat, _ := spec.NewPayload(map[string]any{spec.ProtoChat: spec.ChatPayload{Message: "hello", From: "bob"}})
	if err := callee.Send(ctx, chat); err != nil {
		t.Fatal(err)
	}
	// Callee must have seen the caller's 6 candidates in order; caller the callee's 3 and the chat.
	expectCandidates(t, ctx, callee, []int{0, 1, 2, 3, 4, 5}, cand)
	expectCandidates(t, ctx, call, []int{13, 14, 15}, cand)
	expectChat(t, ctx, call, "hello")

	if err := call.Stop(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-callee.Done():
	case <-ctx.Done():
		t.Fatal("expected the callee's session to end after STOP_SESSION, it did not")
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("expected the caller's session to end after Stop, it did not")
	}
}

func waitRegistered(t *testing.T, ctx context.Context, c *connector.Connector, n int) {
	t.Helper()
	for c.Stats().Registrations < n {
		select {
		case <-ctx.Done():
			t.Fatalf("expected %d registrations at the connector, actual %d", n, c.Stats().Registrations)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// expectCandidates reads the session's in-session messages until it has seen the
// wanted candidates, in order.
func expectCandidates(t *testing.T, ctx context.Context, s *endpoint.Session, want []int, cand func(int) spec.ICECandidate) {
	t.Helper()
	for _, i := range want {
		m := nextOf(t, ctx, s, func(m *spec.Message) bool {
			w, ok, _ := m.WebRTC()
			return ok && w.Type == spec.ICECandType
		})
		w, _, _ := m.WebRTC()
		exp := cand(i)
		if w.Candidate == nil || w.Candidate.Candidate != exp.Candidate {
			got, _ := json.Marshal(w.Candidate)
			t.Fatalf("candidate: expected %q (in order), actual %s", exp.Candidate, got)
		}
	}
}

func expectChat(t *testing.T, ctx context.Context, s *endpoint.Session, text string) {
	t.Helper()
	m := nextOf(t, ctx, s, func(m *spec.Message) bool { _, ok, _ := m.Chat(); return ok })
	c, _, _ := m.Chat()
	if c.Message != text {
		t.Fatalf("chat: expected %q, actual %q", text, c.Message)
	}
}

func nextOf(t *testing.T, ctx context.Context, s *endpoint.Session, match func(*spec.Message) bool) *spec.Message {
	t.Helper()
	for {
		select {
		case m := <-s.Events():
			if m.Method == spec.MethodMessage && match(m) {
				return m
			}
		case <-ctx.Done():
			t.Fatal("expected an in-session message, none arrived")
			return nil
		}
	}
}
