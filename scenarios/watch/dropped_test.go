package watch_test

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

// The broker drops deliveries to a connector whose queue is full (serve --check under
// 200 calls/s on a busy machine, or --max-pending-writes 16: 277 and 553 "never relayed"
// findings before this rule, 2 December 2026). A message the connector never got is not its
// lost relay, unanswered query or missed replacement; one it got and did not act on still is.
func TestDeliveryDroppedToConnector(t *testing.T) {
	drop := func(f *feed, client, topic, payload string) {
		f.c.DeliveryDropped(client, topic, []byte(payload))
	}
	t.Run("relays", func(t *testing.T) {
		// The pattern of the run: the callee's PRANSWER, RESPONSE and a candidate dropped on
		// their way to the connector, the caller's STOP_SESSION too; one candidate relayed.
		f := callFeed(t)
		pr := `{"rtcommVer":"v1.0.0","method":"PRANSWER","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/bob","holdTimeout":30}`
		resp := `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/bob","result":"SUCCESS","payload":{}}`
		stop := `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","sigSessID":"s1","fromTopic":"/rtcomm/alice","reason":"timeout"}`
		for i, p := range []string{pr, resp, cand("/rtcomm/bob", "1"), cand("/rtcomm/bob", "2"), cand("/rtcomm/bob", "3")} {
			f.pub(time.Duration(20+i)*time.Millisecond, "bob", "/rtcomm/connector/bob", p)
		}
		f.pub(2*time.Second, "alice", "/rtcomm/connector/alice", stop)
		for _, p := range []string{pr, resp, cand("/rtcomm/bob", "2")} {
			drop(f, "conn", "/rtcomm/connector/bob", p)
		}
		drop(f, "conn", "/rtcomm/connector/alice", stop)
		f.pub(100*time.Millisecond, "conn", "/rtcomm/alice/bob", cand("/rtcomm/connector", "1"))
		drop(f, "alice", "/rtcomm/connector/bob", cand("/rtcomm/bob", "3")) // not the connector's
		fs := f.c.Finish(f.t0.Add(10 * time.Second))
		if !hasFinding(fs, "ICE-003", watch.ConnectorParticipant) {
			t.Fatalf("candidate 3 reached the connector and was never relayed: expected ICE-003, actual %v", fs)
		}
		if len(fs) != 1 {
			t.Fatalf("expected only candidate 3's ICE-003, actual %d finding(s): %v", len(fs), fs)
		}
		if n := f.c.DroppedToConnectors(); n != 4 {
			t.Errorf("expected 4 deliveries to the connector dropped, actual %d", n)
		}
	})
	t.Run("service query", func(t *testing.T) {
		for _, dropped := range []bool{false, true} {
			f := newFeed(t)
			f.c.Subscribed("conn", "/rtcomm/management/#")
			q := `{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","transID":"q1","fromTopic":"/rtcomm/alice"}`
			f.pub(time.Second, "alice", "/rtcomm/management/alice", q)
			if dropped {
				drop(f, "conn", "/rtcomm/management/alice", q)
			}
			if fs := f.c.Finish(f.t0.Add(7 * time.Second)); hasFinding(fs, "SQ-002", watch.ConnectorParticipant) == dropped {
				t.Fatalf("query dropped %v: expected SQ-002 %v, actual %v", dropped, !dropped, fs)
			}
		}
	})
	t.Run("registration", func(t *testing.T) {
		const (
			start = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t%[1]d","sigSessID":"s%[1]d","fromTopic":"/rtcomm/carol","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
			relay = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t%[1]d","sigSessID":"s%[1]d","fromTopic":"/rtcomm/connector","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
		)
		call := func(f *feed, n int, at time.Duration, topic string) []watch.Finding {
			f.pub(at, "carol", "/rtcomm/connector/carol", fmt.Sprintf(start, n))
			return f.pub(at+10*time.Millisecond, "conn", topic, fmt.Sprintf(relay, n))
		}
		doc := func(addr string) string {
			return fmt.Sprintf(`{"rtcommVer":"v1.0.0","method":"DOCUMENT","type":"ENDPOINT","appContext":"rtcomm","addressTopic":%q,"state":"available","fromTopic":null}`, addr)
		}
		f := newFeed(t)
		f.c.Subscribed("conn", "/rtcomm/management/#")
		f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
		f.doc(time.Second, "b2", "bob", "rtcomm", "/rtcomm/b2")
		drop(f, "conn", "/rtcomm/sphere/bob", doc("/rtcomm/b2")) // the connector still has b1
		if fs := call(f, 1, 2*time.Second, "/rtcomm/b1/carol"); len(fs) != 0 {
			t.Fatalf("the connector never got bob's new address: expected no finding, actual %v", fs)
		}
		if fs := f.c.Finish(f.t0.Add(8 * time.Second)); len(fs) != 0 {
			t.Fatalf("the connector never got the replacement: expected no REG-007, actual %v", fs)
		}
		// The next registration it gets makes the registry sure again.
		f.doc(9*time.Second, "b3", "bob", "rtcomm", "/rtcomm/b3")
		f.pub(9100*time.Millisecond, "conn", "/rtcomm/b2/conn", `{"rtcommVer":"v1.0.0","method":"DOCUMENT_REPLACED"}`)
		if fs := call(f, 2, 10*time.Second, "/rtcomm/b2/carol"); !hasFinding(fs, "REG-006", watch.ConnectorParticipant) {
			t.Fatalf("expected REG-006 after the registration the connector got, actual %v", fs)
		}
	})
	t.Run("through the hook", func(t *testing.T) {
		h := &watch.Hook{Checker: watch.New(watch.Config{FromStart: true})}
		if !h.Provides(mqtt.OnPublishDropped) {
			t.Fatal("expected the hook to provide OnPublishDropped")
		}
		h.OnSubscribe(&mqtt.Client{ID: "conn"}, packets.Packet{Filters: packets.Subscriptions{{Filter: "/rtcomm/management/#"}}})
		q := packets.Packet{TopicName: "/rtcomm/management/alice", Payload: []byte(`{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","transID":"q1","fromTopic":"/rtcomm/alice"}`)}
		_, _ = h.OnPublish(&mqtt.Client{ID: "alice"}, q)
		h.OnPublishDropped(&mqtt.Client{ID: "conn"}, q)
		if fs := h.Checker.Finish(time.Now().Add(10 * time.Second)); len(fs) != 0 || h.Checker.DroppedToConnectors() != 1 {
			t.Fatalf("the broker dropped the query to the connector: expected no finding and 1 drop, actual %v, %d", fs, h.Checker.DroppedToConnectors())
		}
	})
}
