package connector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// faultWait bounds waits that include a reconnect (paho backs off 1 s, 2 s, 4 s, 5 s...).
const faultWait = 30 * time.Second

func waitLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("expected %s within %v; it did not happen", what, faultWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialEndpoint connects a reference endpoint (rtcomm.js-like) that reconnects.
func dialEndpoint(t *testing.T, ctx context.Context, url string, tp spec.Topics, id string) *endpoint.Endpoint {
	t.Helper()
	e, err := endpoint.Dial(ctx, endpoint.Config{BrokerURL: url, TopicPath: tp.Path, ID: id, Reconnect: true,
		PranswerTimeout: faultWait, AnswerTimeout: faultWait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Register(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func offerAnswer(t *testing.T) (offer, answer []byte) {
	t.Helper()
	o, err := fixtures.OfferPayload("chrome-audio-offer")
	if err != nil {
		t.Fatal(err)
	}
	a, err := fixtures.AnswerPayload("chrome-audio-answer")
	if err != nil {
		t.Fatal(err)
	}
	return o, a
}

// establish calls callee from caller through the connector and returns both sides.
func establish(t *testing.T, ctx context.Context, caller, callee *endpoint.Endpoint, answer bool) (*endpoint.Session, *endpoint.Invite) {
	t.Helper()
	offer, ans := offerAnswer(t)
	out, err := caller.Call(ctx, callee.ID(), offer)
	if err != nil {
		t.Fatal(err)
	}
	var inv *endpoint.Invite
	select {
	case inv = <-callee.Incoming():
	case <-time.After(waitTime):
		t.Fatalf("%s: expected an invite from %s", callee.ID(), caller.ID())
	}
	if answer {
		if _, err := inv.Accept(ctx, ans); err != nil {
			t.Fatal(err)
		}
		if _, err := out.Await(ctx); err != nil {
			t.Fatalf("call %s -> %s: %v", caller.ID(), callee.ID(), err)
		}
	}
	return out, inv
}

func waitEnded(t *testing.T, what string, s *endpoint.Session, want error) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(faultWait):
		t.Fatalf("%s: expected the session to end", what)
	}
	if want != nil && !errors.Is(s.Err(), want) {
		t.Fatalf("%s: expected %v, actual %v", what, want, s.Err())
	}
}

// TestFaultBrokerRestart stops the embedded broker mid-run and starts a new
// one (empty: it keeps nothing in memory) on the same port.
func TestFaultBrokerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b1, err := broker.Start(ctx, broker.Config{WSAddr: broker.Off})
	if err != nil {
		t.Fatal(err)
	}
	addr := b1.TCPAddr()
	checkBrokerRestart(t, ctx, b1.TCPURL(), func() {
		b1.Close()
		var b2 *broker.Broker
		waitLong(t, "the broker to listen on "+addr+" again", func() bool {
			b2, err = broker.Start(ctx, broker.Config{TCPAddr: addr, WSAddr: broker.Off})
			return err == nil
		})
		t.Cleanup(func() { b2.Close() })
	})
}

// TestFaultMosquittoRestart crashes a real mosquitto process (SIGKILL: no wills, no
// DISCONNECTs, retained store lost) mid-run and starts it again on the same ports.
func TestFaultMosquittoRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	mq := extbroker.MosquittoForTest(t)
	checkBrokerRestart(t, ctx, mq.TCP, func() {
		if err := mq.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// checkBrokerRestart runs a connector and three reconnecting endpoints on the broker at url,
// restarts the broker with restart while one call is established and one ringing, and
// checks the recovery: calls in flight fail with a reason on every side, endpoints reconnect
// with backoff and re-publish their DOCUMENTs, the connector resubscribes and rebuilds its
// registry, nothing is left in the session table, and new calls work.
func checkBrokerRestart(t *testing.T, ctx context.Context, url string, restart func()) {
	t.Helper()
	tp := spec.NewTopics("/t-" + uuid.NewString()[:8] + "/")
	e := &env{t: t, ctx: ctx, url: url, topics: tp}
	c := e.connector(func(cfg *Config) { cfg.AnswerTimeout = faultWait })
	alice, bob, carol := dialEndpoint(t, ctx, url, tp, "alice"), dialEndpoint(t, ctx, url, tp, "bob"), dialEndpoint(t, ctx, url, tp, "carol")
	waitRegistrations(t, c, 3)
	established, bobSide := establish(t, ctx, alice, bob, true)
	ringing, carolSide := establish(t, ctx, alice, carol, false)
	waitFor(t, "two tracked sessions", func() bool { return c.Stats().ActiveSessions == 2 })

	restart()
	// Every side of both calls ends, with the reason: its own connection lost, or (a broker
	// shutting down closes connections one at a time and fires each will) the peer's will
	// reached the connector first, which ended the call with STOP_SESSION "<peer> unregistered".
	for _, side := range []struct {
		what string
		s    *endpoint.Session
	}{{"established call at alice", established}, {"established call at bob", bobSide.Session()},
		{"ringing call at alice", ringing}, {"ringing call at carol", carolSide.Session()}} {
		waitEnded(t, side.what, side.s, nil)
		var stopped *endpoint.Stopped
		if err := side.s.Err(); !errors.Is(err, endpoint.ErrConnectionLost) &&
			!(errors.As(err, &stopped) && strings.HasSuffix(stopped.Reason, " unregistered")) {
			t.Fatalf("%s: expected %v or STOP_SESSION \"<peer> unregistered\", actual %v", side.what, endpoint.ErrConnectionLost, err)
		}
	}
	waitLong(t, "endpoints reconnected", func() bool {
		return alice.Stats().Reconnects > 0 && bob.Stats().Reconnects > 0 && carol.Stats().Reconnects > 0
	})
	waitLong(t, "connector reconnected with the registry rebuilt and no session left", func() bool {
		st := c.Stats()
		return st.Connected && st.Registrations == 3 && st.ActiveSessions == 0
	})
	if st := c.Stats(); st.Failures["connection_lost"]+st.SessionsFailed+st.SessionsStopped == 0 {
		t.Fatalf("expected the lost sessions counted as ended, actual %+v", st)
	}
	// New calls succeed (the registry answers; the callee gets the call).
	out, in := establish(t, ctx, bob, carol, true)
	if err := out.Stop(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, "new call at carol", in.Session(), nil)
	waitFor(t, "no session left", func() bool { return c.Stats().ActiveSessions == 0 })
}

// kill stops a connector the way a crash would: no FAILUREs, no STOPs, the
// connection dropped without DISCONNECT.
func kill(c *Connector) {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.stop)
		c.wg.Wait()
		c.client.(interface{ Kill() }).Kill()
	})
}

// TestFaultConnectorRestart: a connector crashes with an established and an
// unanswered call; its successor (new ID, as serve starts it) rebuilds the
// registry from the retained sphere, and the parties of the old sessions are
// told STOP_SESSION the first time they speak in them. New calls work.
func TestFaultConnectorRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c1 := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c1, 2)
	start, sid := call(t, c1, alice, bob)
	answer(t, c1, alice, bob, start)
	start2, sid2 := call(t, c1, alice, bob)

	kill(c1)
	c2 := e.connector(nil)
	if c2.ID() == c1.ID() {
		t.Fatal("expected a new connector ID")
	}
	waitRegistrations(t, c2, 2) // from the retained DOCUMENTs alone
	// alice trickles a candidate in the established call, to the old session topic.
	alice.pub(spec.Join(start.m.FromTopic, alice.id), []byte(candidate(alice.address, sid, "1")))
	g := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, c2.ID()))
	if g.m.SigSessID != sid || g.m.Reason != "unknown session" {
		t.Fatalf("expected STOP_SESSION for %s (unknown session), actual %s", sid, g.raw)
	}
	// A second candidate of the same session is dropped: told once.
	alice.pub(spec.Join(start.m.FromTopic, alice.id), []byte(candidate(alice.address, sid, "2")))
	alice.expectNone("one STOP per session")
	// bob answers the unanswered call late: told too.
	bob.pubJSON(spec.Join(start2.m.FromTopic, bob.id), map[string]any{
		"method": "RESPONSE", "rtcommVer": spec.Version, "orig": "START_SESSION", "result": "SUCCESS",
		"transID": start2.m.TransID, "sigSessID": sid2, "fromTopic": bob.address})
	g = bob.expectMethod(spec.MethodStopSession, spec.Join(bob.address, c2.ID()))
	if g.m.SigSessID != sid2 {
		t.Fatalf("expected STOP_SESSION for %s, actual %s", sid2, g.raw)
	}
	if st := c2.Stats(); st.ActiveSessions != 0 || st.Failures["unknown_session"] != 2 {
		t.Fatalf("expected no session and 2 unknown_session, actual %+v", st)
	}
	s3, _ := call(t, c2, alice, bob)
	answer(t, c2, alice, bob, s3)
}

// TestFaultEndpointKilled: the callee's TCP connection is dropped mid-call
// (no DISCONNECT): its will clears its registration, the caller gets
// STOP_SESSION, the stopped event fires, the session table is empty.
func TestFaultEndpointKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/session/+/alice/#")
	alice := e.endpoint("alice")
	alice.register("rtcomm")
	// bob connects with rtcomm's will: an empty retained message on his presence topic.
	bc, err := mqttc.Dial(e.ctx, mqttc.Options{BrokerURL: e.url, ClientID: mqttc.RandomClientID("ep-"),
		Will: &mqttc.Will{Topic: e.topics.Sphere("bob"), QoS: 1, Retained: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bc.Close)
	bob := &ep{e: e, id: "bob", c: bc, address: e.topics.Inbox("bob"), inbox: make(chan got, 1024)}
	bob.subscribe(bob.address + "/#")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	start, sid := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	mon.expect("started event")

	bc.Kill()
	g := alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	if g.m.SigSessID != sid || !contains(g.m.Reason, "bob") {
		t.Fatalf("expected STOP_SESSION for %s naming bob, actual %s", sid, g.raw)
	}
	ev := mon.expect("stopped event")
	if ev.topic != c.Topics().SessionEvent(spec.EventStopped, "alice", "bob") || ev.m.SigSessID != sid {
		t.Fatalf("expected the stopped event of %s, actual %s at %s", sid, ev.raw, ev.topic)
	}
	waitFor(t, "empty session table and bob unregistered", func() bool {
		st := c.Stats()
		return st.ActiveSessions == 0 && st.PendingSessions == 0 && st.Registrations == 1
	})
	c.mu.Lock()
	leftovers := len(c.sess.byParty)
	c.mu.Unlock()
	if leftovers != 0 {
		t.Fatalf("expected no party index entries, actual %d", leftovers)
	}
}
