package connector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// floodCount bounds the garbage one test sends.
const floodCount = 4000

// garbage is the flood: well-formed requests that must be refused, broken
// JSON, limit breakers, from one sender ID (over its rate) and from many
// (spoofed IDs, each within its rate).
func garbage(i int, fromTopic string) (sender string, payload []byte) {
	sender = "mallory"
	if i%4 == 3 {
		sender = fmt.Sprintf("mallory-%d", i%97) // 97 spoofed IDs: each stays under its burst
	}
	switch i % 5 {
	case 0:
		return sender, []byte(fmt.Sprintf(`{"method":"START_SESSION","rtcommVer":"v1.0.0","transID":"g%d","sigSessID":"gs%d","toEndpointID":"nobody","fromTopic":"%s"}`, i, i, fromTopic))
	case 1:
		return sender, []byte(`{"method":"START_SESSION","transID":`)
	case 2:
		return sender, []byte(`{"method":"MESSAGE","sigSessID":"x","payload":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + `}`)
	case 3:
		return sender, []byte(fmt.Sprintf(`{"method":"MESSAGE","sigSessID":"ghost-%d","payload":{"webrtc":{"type":"icecandidate"}}}`, i))
	default:
		return sender, []byte(`{"method":"FLOOD","transID":"` + strings.Repeat("t", 2000) + `"}`)
	}
}

// TestFloodDoesNotStarveACall: a malicious client floods the connector topic
// with garbage while a normal call is placed and answered. The call completes
// (generous timeouts only: CI machines are shared), and every garbage message
// is refused and counted, most of them by the per-client rate limit.
func TestFloodDoesNotStarveACall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(nil)
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	mal, err := mqttc.Dial(e.ctx, mqttc.Options{BrokerURL: e.url, ClientID: mqttc.RandomClientID("mal-")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mal.Close)
	malInbox := e.topics.Inbox("mallory")
	before := c.Stats()

	done := make(chan error, 1)
	go func() {
		for i := range floodCount {
			sender, p := garbage(i, malInbox)
			// QoS 1: the broker must deliver every one, so the test can count them.
			if err := mal.Publish(e.ctx, spec.Join(c.Topics().Connector(), sender), 1, false, p); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Place the call once the flood is under way, so the two overlap.
	waitFor(t, "the flood under way", func() bool { return c.Stats().Received-before.Received >= floodCount/8 })
	t0 := time.Now()
	start, sid := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	bob.pubJSON(spec.Join(start.m.FromTopic, bob.id), stopMsg(sid, bob.address))
	alice.expectMethod(spec.MethodStopSession, spec.Join(alice.address, "bob"))
	t.Logf("call set up and stopped in %v during the flood (%d of %d garbage messages handled by then)",
		time.Since(t0), c.Stats().Received-before.Received, floodCount)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every garbage message is handled and refused: none is routed (the call's
	// START_SESSION, RESPONSE and STOP_SESSION are the only routed messages).
	waitFor(t, fmt.Sprintf("%d garbage messages handled", floodCount), func() bool {
		return c.Stats().Received-before.Received >= floodCount+3
	})
	st := c.Stats()
	if routed := st.RoutedTotal - before.RoutedTotal; routed != 3 {
		t.Fatalf("expected only the call's 3 messages routed, actual %d", routed)
	}
	if st.Failures["rate_limited"] == 0 || st.Failures["unknown_endpoint"] == 0 || st.Failures["too_deep"] == 0 ||
		st.Failures["string_too_long"] == 0 {
		t.Fatalf("expected rate-limited and refused garbage counted by code, actual %v", st.Failures)
	}
	if st.Panics != 0 || st.ActiveSessions != 0 {
		t.Fatalf("expected no panic and no session left, actual %+v", st)
	}
	t.Logf("flood of %d: %v, dropped %d", floodCount, st.Failures, st.Dropped-before.Dropped)
	// The flood is over: a fresh call still works.
	s2, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, s2)
}
