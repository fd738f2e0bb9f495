package endpoint_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// directPair dials and registers alice and bob in peer-to-peer mode.
func directPair(t *testing.T, v *env, tweak func(*endpoint.Config)) (alice, bob *endpoint.Endpoint) {
	t.Helper()
	ctx := testCtx(t)
	mk := func(id string) *endpoint.Endpoint {
		cfg := v.config(id)
		cfg.Direct = true
		if tweak != nil {
			tweak(&cfg)
		}
		e := v.dial(cfg)
		if err := e.Register(ctx); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		return e
	}
	return mk("alice"), mk("bob")
}

// expectCandidates reads the session's events, skipping non-candidates, until it
// has seen want in order.
func expectCandidates(t *testing.T, s *endpoint.Session, who string, want []int) {
	t.Helper()
	ctx := testCtx(t)
	for _, i := range want {
		for {
			m := nextEvent(t, ctx, s, "ICE candidate")
			if c := candidateOf(m); c != "" {
				if c != cand(i).Candidate {
					t.Fatalf("%s: expected candidate %q next (in order), actual %q", who, cand(i).Candidate, c)
				}
				break
			}
		}
	}
}

// TestDirectFullCall: offer, PRANSWER with holdTimeout and queuePosition, candidates
// both ways before and after the answer, answer, chat, STOP by the caller.
func TestDirectFullCall(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice, bob := directPair(t, v, nil)

	offer := sdp(spec.SDPOffer)
	call, err := alice.Call(ctx, "bob", offer)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	// Caller trickles before any reply: held back like rtcomm.js does.
	for i := 0; i < 3; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	inv := invite(t, ctx, bob)
	expectEqual(t, "caller", "alice", inv.Caller())
	start := inv.Message()
	expectEqual(t, "offer payload byte-for-byte", string(offer), string(start.Payload))
	expectEqual(t, "START_SESSION fromTopic", alice.Address(), start.FromTopic)
	expectEqual(t, "START_SESSION toEndpointID", "bob", start.ToEndpointID)
	expectEqual(t, "START_SESSION sigSessID", call.ID(), start.SigSessID)
	expectEqual(t, "START_SESSION transID", call.TransID(), start.TransID)
	expectEqual(t, "START_SESSION rtcommVer", spec.Version, start.RtcommVer)
	if !slices.Equal(start.Protocols, []string{"webrtc"}) {
		t.Errorf("START_SESSION protocols: expected [webrtc], actual %v", start.Protocols)
	}

	hold, pos := 20, 1
	if err := inv.Pranswer(ctx, endpoint.PranswerOptions{HoldTimeout: &hold, QueuePosition: &pos}); err != nil {
		t.Fatalf("pranswer: %v", err)
	}
	pr := nextEvent(t, ctx, call, "PRANSWER")
	expectEqual(t, "first caller event", spec.MethodPranswer, pr.Method)
	if pr.HoldTimeout == nil || *pr.HoldTimeout != 20 || pr.QueuePosition == nil || *pr.QueuePosition != 1 {
		t.Errorf("PRANSWER: expected holdTimeout 20 and queuePosition 1, actual %v %v", pr.HoldTimeout, pr.QueuePosition)
	}
	expectEqual(t, "PRANSWER transID", call.TransID(), pr.TransID)
	select {
	case <-call.Pranswered():
	default:
		t.Error("Pranswered: expected closed after the PRANSWER event, it is open")
	}
	expectEqual(t, "caller state after a queued PRANSWER", "queued", call.State())

	// Callee trickles before answering.
	for i := 10; i < 13; i++ {
		if err := inv.Session().SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	expectCandidates(t, call, "caller (before answer)", []int{10, 11, 12})

	answer := sdp(spec.SDPAnswer)
	callee, err := inv.Accept(ctx, answer)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	resp, err := call.Await(ctx)
	if err != nil {
		t.Fatalf("await: %v", err)
	}
	expectEqual(t, "answer payload byte-for-byte", string(answer), string(resp.Payload))
	expectEqual(t, "RESPONSE orig", spec.MethodStartSession, resp.Orig)
	expectEqual(t, "RESPONSE result", spec.ResultSuccess, resp.Result)
	expectEqual(t, "RESPONSE fromTopic", bob.Address(), resp.FromTopic)
	expectEqual(t, "caller state", "established", call.State())
	expectEqual(t, "callee state", "established", callee.State())

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
	expectCandidates(t, callee, "callee", []int{0, 1, 2, 3, 4, 5})
	expectCandidates(t, call, "caller (after answer)", []int{13, 14, 15})
	m := nextEvent(t, ctx, call, "chat MESSAGE")
	c, ok, _ := m.Chat()
	if !ok || c.Message != "hello" {
		t.Fatalf("chat: expected \"hello\", actual %s", m.Payload)
	}
	if m.TransID != "" {
		t.Errorf("MESSAGE transID: expected none, actual %q", m.TransID)
	}

	if err := call.Stop(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, callee, "callee")
	waitDone(t, ctx, call, "caller")
	stop := nextEvent(t, ctx, callee, "STOP_SESSION")
	expectEqual(t, "callee's last event", spec.MethodStopSession, stop.Method)
	expectEqual(t, "STOP_SESSION reason", "done", stop.Reason)
	if stop.TransID != "" {
		t.Errorf("STOP_SESSION transID: expected none, actual %q", stop.TransID)
	}
	var st *endpoint.Stopped
	if !errors.As(callee.Err(), &st) || !st.Remote || st.Reason != "done" {
		t.Errorf("callee Err: expected remote *Stopped{done}, actual %v", callee.Err())
	}
	if !errors.As(call.Err(), &st) || st.Remote {
		t.Errorf("caller Err: expected local *Stopped, actual %v", call.Err())
	}
	if err := call.Send(ctx, chat); !errors.Is(err, endpoint.ErrSessionEnded) {
		t.Errorf("send after stop: expected ErrSessionEnded, actual %v", err)
	}
	expectEqual(t, "alice active sessions", 0, alice.Stats().ActiveSessions)
	expectEqual(t, "bob active sessions", 0, bob.Stats().ActiveSessions)
}

// TestDirectEarlyCandidates: a PRANSWER without holdTimeout releases the caller's
// held-back candidates, which reach the callee before it answers; the callee stops.
func TestDirectEarlyCandidates(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice, bob := directPair(t, v, nil)
	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	inv := invite(t, ctx, bob)
	if err := inv.Pranswer(ctx, endpoint.PranswerOptions{}); err != nil {
		t.Fatal(err)
	}
	<-call.Pranswered()
	if err := call.SendCandidate(ctx, cand(2)); err != nil {
		t.Fatal(err)
	}
	expectCandidates(t, inv.Session(), "callee before answering", []int{0, 1, 2})
	callee, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	if err := callee.Stop(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, call, "caller")
	var st *endpoint.Stopped
	if !errors.As(call.Err(), &st) || !st.Remote || st.Reason != "bye" {
		t.Errorf("caller Err: expected remote *Stopped{bye}, actual %v", call.Err())
	}
	waitFor(t, ctx, "no live sessions at either end", func() bool {
		return alice.Stats().ActiveSessions == 0 && bob.Stats().ActiveSessions == 0
	})
}

// TestHeldBackUntilAnswer shows on the wire that a caller holds MESSAGEs back until
// the peer replies (a marker published behind them overtakes them), and that
// SendEarly does not.
func TestHeldBackUntilAnswer(t *testing.T) {
	t.Parallel()
	for _, early := range []bool{false, true} {
		t.Run(map[bool]string{false: "rtcomm.js", true: "SendEarly"}[early], func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			ctx := testCtx(t)
			cfg := v.config("alice")
			cfg.SendEarly = early
			alice := v.dial(cfg)
			fake := v.raw("fake")
			inbox := v.path + "bob"
			got := v.sub(fake, inbox+"/#")
			call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer), endpoint.WithTopic(inbox))
			if err != nil {
				t.Fatal(err)
			}
			start := decode(t, next(t, ctx, got, "START_SESSION"))
			if err := call.SendCandidate(ctx, cand(0)); err != nil {
				t.Fatal(err)
			}
			if err := alice.Client().Publish(ctx, inbox+"/alice", 1, false, []byte(`{"marker":true}`)); err != nil {
				t.Fatal(err)
			}
			first := next(t, ctx, got, "candidate or marker")
			isMarker := string(first.Payload) == `{"marker":true}`
			if early == isMarker {
				t.Fatalf("SendEarly=%v: expected the %s first, actual %s", early,
					map[bool]string{false: "marker (candidate held back)", true: "candidate"}[early], first.Payload)
			}
			if !early {
				// The answer releases the candidate, to the answer's fromTopic.
				publish(t, fake, alice.Address()+"/bob", &spec.Message{Method: spec.MethodResponse,
					Orig: spec.MethodStartSession, TransID: start.TransID, SigSessID: start.SigSessID,
					FromTopic: inbox, Result: spec.ResultSuccess, Payload: sdp(spec.SDPAnswer)})
				if _, err := call.Await(ctx); err != nil {
					t.Fatal(err)
				}
				m := next(t, ctx, got, "held-back candidate")
				expectEqual(t, "released candidate topic", inbox+"/alice", m.Topic)
				expectEqual(t, "released candidate", cand(0).Candidate, candidateOf(decode(t, m)))
			}
		})
	}
}

// TestDirectReject: FAILURE reaches the caller as *Rejected with the reason.
func TestDirectReject(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice, bob := directPair(t, v, nil)
	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	inv := invite(t, ctx, bob)
	if err := inv.Reject(ctx, "busy here"); err != nil {
		t.Fatal(err)
	}
	_, err = call.Await(ctx)
	var rej *endpoint.Rejected
	if !errors.As(err, &rej) || rej.Reason != "busy here" {
		t.Fatalf("await: expected *Rejected{busy here}, actual %v", err)
	}
	waitDone(t, ctx, call, "caller")
	if _, err := inv.Accept(ctx, nil); !errors.Is(err, endpoint.ErrSessionEnded) {
		t.Errorf("accept after reject: expected ErrSessionEnded, actual %v", err)
	}
	expectEqual(t, "alice active sessions", 0, alice.Stats().ActiveSessions)
	expectEqual(t, "bob active sessions", 0, bob.Stats().ActiveSessions)
}

// TestTimeouts: no reply within PranswerTimeout, no answer within a PRANSWER's
// holdTimeout or within AnswerTimeout: ErrTimeout, and the session leaves the table.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		pranswer *endpoint.PranswerOptions
	}{
		{"no reply", nil},
		{"holdTimeout", &endpoint.PranswerOptions{HoldTimeout: ptr(1)}},
		{"answer timeout", &endpoint.PranswerOptions{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			ctx := testCtx(t)
			alice, bob := directPair(t, v, func(c *endpoint.Config) {
				c.PranswerTimeout = 300 * time.Millisecond
				c.AnswerTimeout = 300 * time.Millisecond
				c.InviteTimeout = 500 * time.Millisecond
			})
			call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer))
			if err != nil {
				t.Fatal(err)
			}
			inv := invite(t, ctx, bob)
			if tc.pranswer != nil {
				if err := inv.Pranswer(ctx, *tc.pranswer); err != nil {
					t.Fatal(err)
				}
			}
			_, err = call.Await(ctx)
			if !errors.Is(err, endpoint.ErrTimeout) {
				t.Fatalf("await: expected ErrTimeout, actual %v", err)
			}
			if tc.pranswer != nil {
				select {
				case <-call.Pranswered():
				default:
					t.Error("expected the PRANSWER to have been seen before the timeout")
				}
			}
			expectEqual(t, "alice active sessions", 0, alice.Stats().ActiveSessions)
			if tc.name == "holdTimeout" {
				return // the callee waits holdTimeout + 5 s; the other cases show its expiry
			}
			waitDone(t, ctx, inv.Session(), "callee")
			if tc.pranswer == nil {
				// No reply at all: the caller that gave up cancels with STOP_SESSION
				// "timeout", before the callee's own, longer invite timeout.
				var stopped *endpoint.Stopped
				if !errors.As(inv.Session().Err(), &stopped) || stopped.Reason != "timeout" {
					t.Errorf("callee Err: expected STOP_SESSION from the caller with reason timeout, actual %v", inv.Session().Err())
				}
			} else if !errors.Is(inv.Session().Err(), endpoint.ErrTimeout) {
				// After a PRANSWER the caller ends silently (the connector reaps); the
				// unanswered invite expires at the callee too.
				t.Errorf("callee Err: expected ErrTimeout, actual %v", inv.Session().Err())
			}
			expectEqual(t, "bob active sessions", 0, bob.Stats().ActiveSessions)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDirectUnregisteredCallee: no DOCUMENT in presence, no call.
func TestDirectUnregisteredCallee(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	cfg := v.config("alice")
	cfg.Direct, cfg.LookupTimeout = true, 300*time.Millisecond
	alice := v.dial(cfg)
	_, err := alice.Call(testCtx(t), "nobody", sdp(spec.SDPOffer))
	if !errors.Is(err, endpoint.ErrNotRegistered) {
		t.Fatalf("call: expected ErrNotRegistered, actual %v", err)
	}
	expectEqual(t, "active sessions", 0, alice.Stats().ActiveSessions)
}

// TestCallbackMode: the load generator's form, callbacks instead of channels; the
// callee answers from inside OnInvite (allowed at QoS 0).
func TestCallbackMode(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	var (
		mu     sync.Mutex
		traced []spec.Method
		got    []string
	)
	answered := make(chan *endpoint.Session, 1)
	alice, _ := directPair(t, v, func(c *endpoint.Config) {
		if c.ID == "bob" {
			c.OnInvite = func(inv *endpoint.Invite) {
				s, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
				if err != nil {
					t.Errorf("accept in callback: %v", err)
					return
				}
				answered <- s
			}
			c.OnSessionMessage = func(s *endpoint.Session, m *spec.Message) {
				mu.Lock()
				got = append(got, candidateOf(m))
				mu.Unlock()
			}
		} else {
			c.OnMessage = func(topic string, m *spec.Message, raw []byte, at time.Time) {
				if m != nil && !at.IsZero() && len(raw) > 0 {
					mu.Lock()
					traced = append(traced, m.Method)
					mu.Unlock()
				}
			}
		}
	})
	if alice.Incoming() == nil {
		t.Error("alice without OnInvite: expected an Incoming channel, actual nil")
	}
	events := make(chan *spec.Message, 4)
	call, err := alice.Call(ctx, "bob", sdp(spec.SDPOffer), endpoint.WithEventHandler(func(_ *endpoint.Session, m *spec.Message) {
		events <- m
	}))
	if err != nil {
		t.Fatal(err)
	}
	if call.Events() != nil {
		t.Error("session with an event handler: expected nil Events(), actual a channel")
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatal(err)
	}
	callee := <-answered
	if callee.Events() != nil {
		t.Error("session with OnSessionMessage: expected nil Events(), actual a channel")
	}
	for i := 0; i < 3; i++ {
		if err := call.SendCandidate(ctx, cand(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := callee.Send(ctx, sdp(spec.SDPOffer)); err != nil { // renegotiation, say
		t.Fatal(err)
	}
	select {
	case m := <-events:
		expectEqual(t, "caller handler got", spec.MethodMessage, m.Method)
	case <-ctx.Done():
		t.Fatal("expected the caller's handler to receive a MESSAGE, it did not")
	}
	waitFor(t, ctx, "3 candidates at the callee's handler", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	mu.Lock()
	if !slices.Equal(got, []string{cand(0).Candidate, cand(1).Candidate, cand(2).Candidate}) {
		t.Errorf("callee handler: expected candidates 0,1,2 in order, actual %q", got)
	}
	if !slices.Equal(traced, []spec.Method{spec.MethodResponse, spec.MethodMessage}) {
		t.Errorf("alice's OnMessage trace: expected [RESPONSE MESSAGE], actual %v", traced)
	}
	mu.Unlock()
	if err := call.Stop(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, callee, "callee")
}

// TestBadInput: garbage on the inbox is counted, never fatal, and the endpoint
// keeps working; RESPONSEs for transactions it did not start are ignored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	ctx := testCtx(t)
	alice, bob := directPair(t, v, nil)
	evil := v.raw("evil")
	in := alice.Address() + "/mallory"
	for _, p := range []string{`not json`, `[1,2]`, `null`, `{"method":42}`, `{"method":"NO_SUCH"}`,
		`{"method":"MESSAGE","sigSessID":"nope","payload":{}}`, `{"method":"STOP_SESSION"}`,
		`{"method":"RESPONSE","orig":"START_SESSION","transID":"not-ours","result":"SUCCESS"}`,
		`{"method":"START_SESSION","transID":"t1","sigSessID":"s1"}`, "\xff\xfe"} {
		if err := evil.Publish(ctx, in, 1, false, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "10 messages received", func() bool { return alice.Stats().Received >= 10 })
	st := alice.Stats()
	if st.Unparseable < 3 {
		t.Errorf("Unparseable: expected at least 3, actual %d", st.Unparseable)
	}
	expectEqual(t, "UnmatchedResponses", uint64(1), st.UnmatchedResponses)
	expectEqual(t, "UnknownSession", uint64(2), st.UnknownSession)
	expectEqual(t, "ActiveSessions", 0, st.ActiveSessions)

	// Still serving.
	call, err := bob.Call(ctx, "alice", sdp(spec.SDPOffer))
	if err != nil {
		t.Fatal(err)
	}
	inv := invite(t, ctx, alice)
	if _, err := inv.Accept(ctx, sdp(spec.SDPAnswer)); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx); err != nil {
		t.Fatalf("call after bad input: %v", err)
	}
	// A forged answer to a finished transaction is not taken.
	publish(t, evil, bob.Address()+"/alice", &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodStartSession,
		TransID: call.TransID(), SigSessID: call.ID(), Result: spec.ResultFailure, Reason: "forged"})
	waitFor(t, ctx, "the forged RESPONSE counted as unmatched", func() bool { return bob.Stats().UnmatchedResponses == 1 })
	expectEqual(t, "caller state after a forged FAILURE", "established", call.State())
}

// TestDropPayloads: with Config.DropPayloads a session keeps the envelopes of the
// START_SESSION, PRANSWER and RESPONSE it received, not their payloads, while OnMessage and
// the Invite see them whole; without it (the default) the session keeps them whole.
func TestDropPayloads(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			ctx := testCtx(t)
			var mu sync.Mutex
			seen := map[spec.Method]int{} // payload bytes OnMessage saw, by method
			alice, bob := directPair(t, v, func(c *endpoint.Config) {
				c.DropPayloads = drop
				c.OnMessage = func(_ string, m *spec.Message, _ []byte, _ time.Time) {
					if m != nil {
						mu.Lock()
						seen[m.Method] += len(m.Payload)
						mu.Unlock()
					}
				}
			})
			offer, answer, pr := sdp(spec.SDPOffer), sdp(spec.SDPAnswer), sdp(spec.SDPPranswer)
			call, err := alice.Call(ctx, "bob", offer)
			if err != nil {
				t.Fatal(err)
			}
			inv := invite(t, ctx, bob)
			expectEqual(t, "Invite.Message payload", string(offer), string(inv.Message().Payload))
			if err := inv.Pranswer(ctx, endpoint.PranswerOptions{Payload: pr}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-call.Pranswered():
			case <-ctx.Done():
				t.Fatal("expected a PRANSWER at the caller, none arrived")
			}
			callee, err := inv.Accept(ctx, answer)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := call.Await(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kept := func(b []byte) string { return string(b) }
			wantStart, wantPr, wantResp := string(offer), string(pr), string(answer)
			if drop {
				wantStart, wantPr, wantResp = "", "", ""
			}
			expectEqual(t, "Session.Start payload (callee)", wantStart, kept(callee.Start().Payload))
			expectEqual(t, "Session.Pranswer payload", wantPr, kept(call.Pranswer().Payload))
			expectEqual(t, "Session.Response payload", wantResp, kept(call.Response().Payload))
			expectEqual(t, "Await payload", wantResp, kept(resp.Payload))
			// The envelope stays: what the session logic and callers read besides the payload.
			expectEqual(t, "Start transID", call.TransID(), callee.Start().TransID)
			expectEqual(t, "Start fromTopic", alice.Address(), callee.Start().FromTopic)
			expectEqual(t, "Response result", spec.ResultSuccess, resp.Result)
			expectEqual(t, "Response sigSessID", call.ID(), resp.SigSessID)
			mu.Lock()
			for m, n := range map[spec.Method]int{spec.MethodStartSession: len(offer), spec.MethodPranswer: len(pr), spec.MethodResponse: len(answer)} {
				expectEqual(t, "payload bytes OnMessage saw in "+string(m), n, seen[m])
			}
			mu.Unlock()
			if err := call.Stop(ctx, "done"); err != nil {
				t.Fatal(err)
			}
			waitDone(t, ctx, callee, "callee")
		})
	}
}
