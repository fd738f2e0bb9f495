package watch_test

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

func brokerFinding(fs []watch.Finding, req string) bool {
	for _, f := range fs {
		if f.Requirement == req && f.Participant == watch.BrokerParticipant {
			return true
		}
	}
	return false
}

func TestTopicMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"/r/a/#", "/r/a", true}, {"/r/a/#", "/r/a/b/c", true}, {"/r/a/+", "/r/a/b", true},
		{"/r/a/+", "/r/a/b/c", false}, {"/r/a/+", "/r/a", false}, {"/r/a", "/r/a", true},
		{"/r/a", "/r/a/b", false}, {"#", "/r/a", true}, {"#", "$SYS/x", false}, {"+/r/#", "/r/x", true},
		{"/r/a b/+", "/r/a b/c", true}, {"/r/a/b", "/r/a", false},
	} {
		if got := watch.TopicMatches(c.filter, c.topic); got != c.want {
			t.Errorf("TopicMatches(%q, %q): expected %v, actual %v", c.filter, c.topic, c.want, got)
		}
	}
}

// BRK-007: a delivery below min(publish QoS, granted QoS) is the broker's; at it, none.
func TestBrokerQoSDowngrade(t *testing.T) {
	b := watch.NewBroker("/r/")
	now := time.Now()
	b.Subscribing("sub1", []string{"/r/bob/#"})
	b.Subscribed("sub1", []string{"/r/bob/#"}, []byte{1})
	b.Subscribing("sub0", []string{"/r/bob/#"})
	b.Subscribed("sub0", []string{"/r/bob/#"}, []byte{0})
	b.Published(watch.Observation{Topic: "/r/bob/x", Payload: []byte(`{"q":1}`), Client: "pub", Time: now}, 1)
	b.Published(watch.Observation{Topic: "/r/bob/x", Payload: []byte(`{"q":0}`), Client: "pub", Time: now}, 0)
	// Right: QoS 1 to the QoS 1 subscriber, QoS 0 otherwise.
	for _, d := range []struct {
		client, payload string
		qos             byte
	}{{"sub1", `{"q":1}`, 1}, {"sub1", `{"q":0}`, 0}, {"sub0", `{"q":1}`, 0}, {"sub0", `{"q":0}`, 0}} {
		if fs := b.Delivered(d.client, "/r/bob/x", []byte(d.payload), d.qos, false, now); len(fs) > 0 {
			t.Errorf("%s %s at QoS %d: expected no finding, actual %v", d.client, d.payload, d.qos, fs)
		}
	}
	// Planted: the QoS 1 message to the QoS 1 subscriber at QoS 0.
	fs := b.Delivered("sub1", "/r/bob/x", []byte(`{"q":1}`), 0, false, now)
	if !brokerFinding(fs, "BRK-007") {
		t.Fatalf("expected BRK-007 blamed on the broker, actual %v", fs)
	}
	// Outside the path, or a publish never seen: not judged.
	if fs := b.Delivered("sub1", "/other/x", []byte(`{"q":1}`), 0, false, now); len(fs) > 0 {
		t.Errorf("outside the path: expected no finding, actual %v", fs)
	}
	if fs := b.Delivered("sub1", "/r/bob/x", []byte(`unseen`), 0, false, now); len(fs) > 0 {
		t.Errorf("unseen publish: expected no finding, actual %v", fs)
	}
	// A clean session's subscriptions go with its connection (not another connection's).
	conn, old := new(int), new(int)
	b.Connected(old, "sub1", true, nil)
	b.Connected(conn, "sub1", false, nil) // takes the ID over, session kept
	b.Subscribing("sub1", []string{"/r/bob/#"})
	b.Subscribed("sub1", []string{"/r/bob/#"}, []byte{1})
	b.Disconnected(old, "sub1")
	if fs := b.Delivered("sub1", "/r/bob/x", []byte(`{"q":1}`), 0, false, now); !brokerFinding(fs, "BRK-007") {
		t.Errorf("after the old connection went: expected the subscription kept (BRK-007), actual %v", fs)
	}
	b.Connected(conn, "sub1", true, nil)
	b.Disconnected(conn, "sub1")
	if fs := b.Delivered("sub1", "/r/bob/x", []byte(`{"q":1}`), 0, false, now); len(fs) > 0 {
		t.Errorf("after the clean session ended: expected its subscription forgotten, actual %v", fs)
	}
}

// BRK-010: each publish reaches one member of a share group; judged from the filters as
// the clients asked (a broker that rewrites them applies others).
func TestBrokerShareGroup(t *testing.T) {
	b := watch.NewBroker("/r/")
	now := time.Now()
	for _, c := range []string{"a0", "a1", "a2"} {
		b.Subscribing(c, []string{"$share/g//r/queue/#"})
		b.Subscribed(c, []string{"/r/queue/#"}, []byte{1}) // what a faulty broker applied
	}
	b.Subscribing("mon", []string{"/r/queue/#"})
	b.Subscribed("mon", []string{"/r/queue/#"}, []byte{1})
	// A plain subscriber and one member each get it; a redelivery to a member is not a second one.
	b.Published(watch.Observation{Topic: "/r/queue/c1", Payload: []byte("1"), Time: now}, 1)
	for _, c := range []string{"mon", "a1"} {
		if fs := b.Delivered(c, "/r/queue/c1", []byte("1"), 1, false, now); len(fs) > 0 {
			t.Fatalf("%s: expected no finding, actual %v", c, fs)
		}
	}
	if fs := b.Delivered("a1", "/r/queue/c1", []byte("1"), 1, true, now); len(fs) > 0 {
		t.Fatalf("redelivery: expected no finding, actual %v", fs)
	}
	// Published twice: two members may get it.
	b.Published(watch.Observation{Topic: "/r/queue/c2", Payload: []byte("2"), Time: now}, 1)
	b.Published(watch.Observation{Topic: "/r/queue/c2", Payload: []byte("2"), Time: now}, 1)
	for _, c := range []string{"a0", "a2"} {
		if fs := b.Delivered(c, "/r/queue/c2", []byte("2"), 1, false, now); len(fs) > 0 {
			t.Fatalf("twice published, %s: expected no finding, actual %v", c, fs)
		}
	}
	// Planted: a second member gets c1.
	fs := b.Delivered("a2", "/r/queue/c1", []byte("1"), 1, false, now)
	if !brokerFinding(fs, "BRK-010") || !strings.Contains(fs[0].Actual, "a1, a2") {
		t.Fatalf("expected BRK-010 blamed on the broker naming a1 and a2, actual %v", fs)
	}
}

// BRK-002: a will is published on the topic its CONNECT declared, and an empty will
// declared retained is published retained; a non-empty will may lose its retain flag
// (a retention policy, ID-016), a discarded will is not judged.
func TestBrokerWills(t *testing.T) {
	b := watch.NewBroker("/r/")
	now := time.Now()
	declared := &watch.Will{Topic: "/r/sphere/alice", Retained: true, QoS: 1}
	conns := make([]*int, 6)
	for i := range conns {
		conns[i] = new(int)
		if i < 5 {
			b.Connected(conns[i], "alice", true, declared)
		}
	}
	right := watch.Will{Topic: "/r/sphere/alice", Payload: []byte{}, Retained: true, QoS: 1}
	if fs := b.WillSent(conns[0], "alice", right, now); len(fs) > 0 {
		t.Errorf("right will: expected no finding, actual %v", fs)
	}
	if fs := b.WillSent(conns[1], "alice", watch.Will{Topic: "$faulty/lost-will", Retained: true}, now); !brokerFinding(fs, "BRK-002") {
		t.Errorf("will on another topic: expected BRK-002 blamed on the broker, actual %v", fs)
	}
	if fs := b.WillSent(conns[2], "alice", watch.Will{Topic: "/r/sphere/alice"}, now); !brokerFinding(fs, "BRK-002") {
		t.Errorf("empty will not retained: expected BRK-002 blamed on the broker, actual %v", fs)
	}
	if fs := b.WillSent(conns[3], "alice", watch.Will{Topic: "/r/sphere/alice", Payload: []byte("x")}, now); len(fs) > 0 {
		t.Errorf("non-empty will not retained: expected no finding, actual %v", fs)
	}
	b.Disconnected(conns[4], "alice") // clean DISCONNECT: the will is gone
	if fs := b.WillSent(conns[4], "alice", watch.Will{Topic: "/x"}, now); len(fs) > 0 {
		t.Errorf("after the disconnect: expected no finding, actual %v", fs)
	}
	// A will declared outside the path is not judged.
	b.Connected(conns[5], "carol", true, &watch.Will{Topic: "/other/carol", Retained: true})
	if fs := b.WillSent(conns[5], "carol", watch.Will{Topic: "/elsewhere"}, now); len(fs) > 0 {
		t.Errorf("outside the path: expected no finding, actual %v", fs)
	}
}

// BRK-009: every MQTT 3.1/3.1.1 CONNECT the broker read gets a CONNACK, and not one
// refusing the protocol version; other refusals and MQTT 5 are not judged.
func TestBrokerConnack(t *testing.T) {
	b := watch.NewBroker("/r/")
	at := time.Now()
	ok, auth, v5, refused, silent := new(int), new(int), new(int), new(int), new(int)
	b.ConnectRead(ok, "a", 3, at)
	b.ConnectRead(auth, "b", 4, at)
	b.ConnectRead(v5, "c", 5, at)
	b.ConnectRead(refused, "d", 3, at)
	b.ConnectRead(silent, "e", 3, at)
	if fs := b.ConnackSent(ok, 0, at); len(fs) > 0 {
		t.Errorf("CONNACK 0: expected no finding, actual %v", fs)
	}
	if fs := b.ConnackSent(auth, 5, at); len(fs) > 0 {
		t.Errorf("CONNACK 5 (not authorised): expected no finding, actual %v", fs)
	}
	if fs := b.ConnackSent(refused, 1, at); !brokerFinding(fs, "BRK-009") {
		t.Errorf("CONNACK 1 to MQTT 3.1: expected BRK-009 blamed on the broker, actual %v", fs)
	}
	if due := b.Due(); !due.Equal(at.Add(5 * time.Second)) {
		t.Errorf("expected the silent CONNECT due 5 s after it, actual %v", due)
	}
	if fs := b.Finish(at.Add(4 * time.Second)); len(fs) > 0 {
		t.Errorf("before 5 s: expected no finding, actual %v", fs)
	}
	fs := b.Finish(at.Add(5 * time.Second))
	if len(fs) != 1 || !brokerFinding(fs, "BRK-009") || !strings.Contains(fs[0].Expected, "e's MQTT 3.1") {
		t.Errorf("after 5 s: expected one BRK-009 for e's CONNECT (not v5's), actual %v", fs)
	}
}

// ID-017: with the broker's limits known, a filter it grants or a will topic it accepts
// beyond them is its fault; one it refuses, one within the limits, or a judge without
// limits gives none.
func TestBrokerTopicLimits(t *testing.T) {
	limits := watch.TopicLimits{MaxLength: 1024, MaxLevels: 32}
	deep := "/r/alice" + strings.Repeat("/x", 30)   // 33 levels: the leading empty one counts
	ok := "/r/alice" + strings.Repeat("/x", 29)     // 32 levels
	long := "/r/alice/" + strings.Repeat("y", 1100) // 1,109 bytes
	b := watch.NewBroker("/r/")
	b.SetLimits(limits)

	// SUBSCRIBE: granted within, refused beyond, then granted beyond.
	b.Subscribing("c1", []string{ok, deep})
	if fs := b.Subscribed("c1", []string{ok, deep}, []byte{1, 0x80}); len(fs) > 0 {
		t.Errorf("within the limits granted, beyond refused: expected no finding, actual %v", fs)
	}
	b.Subscribing("c1", []string{deep, long})
	fs := b.Subscribed("c1", []string{deep, long}, []byte{0, 1})
	if len(fs) != 2 || !brokerFinding(fs, "ID-017") {
		t.Fatalf("two filters beyond the limits granted: expected 2 ID-017 findings blamed on the broker, actual %v", fs)
	}
	if !strings.Contains(fs[0].Actual, "more than 32 levels") || !strings.Contains(fs[1].Actual, "1109 bytes") || len(fs[0].Evidence) != 1 {
		t.Errorf("expected the levels and bytes as evidence, actual %v / %v", fs[0], fs[1])
	}

	// CONNECT: a will beyond the limits refused (CONNACK 5), then accepted (CONNACK 0);
	// a will within them accepted.
	connA, connB, connC := new(int), new(int), new(int)
	b.Connected(connA, "a", true, &watch.Will{Topic: deep})
	if fs := b.ConnackSent(connA, 5, time.Now()); len(fs) > 0 {
		t.Errorf("will beyond the limits refused: expected no finding, actual %v", fs)
	}
	b.Connected(connC, "c", true, &watch.Will{Topic: ok})
	if fs := b.ConnackSent(connC, 0, time.Now()); len(fs) > 0 {
		t.Errorf("will within the limits accepted: expected no finding, actual %v", fs)
	}
	b.Connected(connB, "b", true, &watch.Will{Topic: long})
	if fs := b.ConnackSent(connB, 0, time.Now()); !brokerFinding(fs, "ID-017") {
		t.Fatalf("will beyond the limits accepted: expected ID-017 blamed on the broker, actual %v", fs)
	}

	// Without limits (the open broker of the fault runs): nothing judged.
	open := watch.NewBroker("/r/")
	open.Subscribing("c1", []string{deep})
	if fs := open.Subscribed("c1", []string{deep}, []byte{0}); len(fs) > 0 {
		t.Errorf("no limits configured: expected no finding, actual %v", fs)
	}
	open.Connected(connB, "b", true, &watch.Will{Topic: long})
	if fs := open.ConnackSent(connB, 0, time.Now()); len(fs) > 0 {
		t.Errorf("no limits configured: expected no finding, actual %v", fs)
	}
}

// ID-005/008/009: a secured broker that let a client publish beyond the identity rule is
// blamed; the owner's own topics, the exempt connector user, an open broker's judge (no
// SetSecure) and topics outside the path give no finding.
func TestBrokerIdentityRule(t *testing.T) {
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	now := time.Now()
	pub := func(user, topic string) []watch.Finding {
		return b.PublishedBy(user, watch.Observation{Topic: topic, Payload: []byte(`{"method":"START_SESSION"}`), Client: "c-" + user, Time: now})
	}
	for _, c := range []struct{ user, topic string }{
		{"alice", "/r/bob/alice"}, {"alice", "/r/sphere/alice"}, {"alice", "/r/management/alice"},
		{"alice", "/r/connector/alice"}, {"connector", "/r/alice/connector-1"}, {"connector", "/r/event/session/started/alice/bob"},
		{"alice", "/elsewhere/bob"},
	} {
		if fs := pub(c.user, c.topic); len(fs) > 0 {
			t.Errorf("%s at %s: expected no finding, actual %v", c.user, c.topic, fs)
		}
	}
	for _, c := range []struct{ user, topic, req string }{
		{"mallory", "/r/bob/alice", "ID-005"}, {"", "/r/bob/alice", "ID-005"},
		{"mallory", "/r/sphere/alice", "ID-008"}, {"alice", "/r/sphere/alice/x/alice", "ID-008"},
		{"alice", "/r/event/session/started/bob/alice", "ID-009"},
	} {
		fs := pub(c.user, c.topic)
		if !brokerFinding(fs, c.req) || len(fs) != 1 || len(fs[0].Evidence) != 1 {
			t.Errorf("%q at %s let through: expected %s blamed on the broker with the publish as evidence, actual %v", c.user, c.topic, c.req, fs)
		}
	}
	open := watch.NewBroker("/r/")
	if fs := open.PublishedBy("mallory", watch.Observation{Topic: "/r/bob/alice", Time: now}); len(fs) > 0 {
		t.Errorf("open broker (no SetSecure): expected no finding, actual %v", fs)
	}
}

// ID-014: on a secured broker the connector's RESPONSE goes into the requester's own
// inbox; one into another's inbox (mallory's SERVICE_QUERY naming alice's) is the
// connector's fault; a RESPONSE no request here asked for is not judged.
func TestBrokerConfusedDeputy(t *testing.T) {
	b := watch.NewBroker("/") // deliveries judged on every path; the secured one is /r/
	b.SetSecure("/r/", "connector")
	now := time.Now()
	pub := func(user, topic, payload string) []watch.Finding {
		return b.PublishedBy(user, watch.Observation{Topic: topic, Payload: []byte(payload), Client: "c-" + user, Time: now})
	}
	pub("alice", "/r/management/alice", `{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","transID":"t1","fromTopic":"/r/alice"}`)
	pub("mallory", "/r/management/mallory", `{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","transID":"t2","fromTopic":"/r/alice"}`)
	if fs := pub("connector", "/r/alice", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"SERVICE_QUERY","transID":"t1","result":"SUCCESS"}`); len(fs) > 0 {
		t.Errorf("answer in the requester's inbox: expected no finding, actual %v", fs)
	}
	if fs := pub("connector", "/r/somebody", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"SERVICE_QUERY","transID":"t9","result":"SUCCESS"}`); len(fs) > 0 {
		t.Errorf("answer to no request seen: expected no finding, actual %v", fs)
	}
	fs := pub("connector", "/r/alice", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"SERVICE_QUERY","transID":"t2","result":"SUCCESS"}`)
	if len(fs) != 1 || fs[0].Requirement != "ID-014" || fs[0].Participant != watch.ConnectorParticipant || len(fs[0].Evidence) != 2 {
		t.Fatalf("mallory's request answered into alice's inbox: expected ID-014 blamed on the connector with request and answer as evidence, actual %v", fs)
	}
}

// The hook (serve --secure --check) hands the broker judge the authenticated user mochi
// keeps for the client: a publish mallory's connection made as alice is the broker's fault.
func TestHookPassesAuthenticatedUser(t *testing.T) {
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	var got []watch.Finding
	h := &watch.Hook{Checker: watch.New(watch.Config{TopicPath: "/r/"}), Broker: b, OnFinding: func(f watch.Finding) { got = append(got, f) }}
	pub := func(user, topic string) {
		cl := &mqtt.Client{ID: "c-" + user}
		cl.Properties.Username = []byte(user)
		_, _ = h.OnPublish(cl, packets.Packet{TopicName: topic, Payload: []byte(`{"rtcommVer":"v1.0.0","method":"MESSAGE","sigSessID":"s","payload":{}}`)})
	}
	pub("alice", "/r/bob/alice")
	if brokerFinding(got, "ID-005") {
		t.Fatalf("alice as alice: expected no ID-005, actual %v", got)
	}
	pub("mallory", "/r/bob/alice")
	if !brokerFinding(got, "ID-005") {
		t.Fatalf("mallory as alice let through: expected ID-005 blamed on the broker, actual %v", got)
	}
}
