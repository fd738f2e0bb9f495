package broker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// deepTopic has n levels: "x/x/.../x".
func deepTopic(n int) string { return strings.TrimSuffix(strings.Repeat("x/", n), "/") }

// rawSubscribe is a SUBSCRIBE (packet ID 1, QoS 0) for filter, MQTT 3.1.1.
func rawSubscribe(filter string) []byte {
	body := append([]byte{0, 1}, mqttString(filter)...)
	body = append(body, 0)
	return append(append([]byte{0x82}, varint(len(body))...), body...)
}

// rawPublish0 is a QoS 0 PUBLISH, retained or not.
func rawPublish0(topic string, retained bool, payload string) []byte {
	h := byte(0x30)
	if retained {
		h |= 1
	}
	body := append(mqttString(topic), payload...)
	return append(append([]byte{h}, varint(len(body))...), body...)
}

// deepAttack opens a connection, sends pk after CONNECT and reports whether the broker
// closed the connection (as it must) within 5 s.
func deepAttack(tb testing.TB, addr string, pk []byte) bool {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(rawConnect{protoName: "MQTT", level: 4, clientID: "deep", keepalive: 30}.bytes()); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := readPacket(conn); err != nil {
		tb.Fatalf("CONNACK: %v", err)
	}
	if _, err := conn.Write(pk); err != nil {
		return true // already closed
	}
	_, err = io.ReadAll(conn)
	return err == nil // EOF: closed by the broker; a timeout is an error
}

// ID-017: a SUBSCRIBE, PUBLISH (retained or not) or will with a topic over the
// limits is refused before any topic-tree work, in open mode; other clients carry on.
// Costs are measured by BenchmarkDeepTopicAttack, not here (shared machines).
func TestDeepTopicsRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	deep := path + deepTopic(32000)
	slashes := path + strings.Repeat("/", 31000)
	for name, pk := range map[string][]byte{
		"SUBSCRIBE 32,000 levels":        rawSubscribe(deep),
		"SUBSCRIBE 31,000 empty levels":  rawSubscribe(slashes),
		"SUBSCRIBE 2,000 bytes":          rawSubscribe(path + strings.Repeat("y", 2000)),
		"retained PUBLISH 32,000 levels": rawPublish0(deep, true, "x"),
		"PUBLISH 32,000 levels":          rawPublish0(deep, false, "x"),
		"UNSUBSCRIBE 32,000 levels":      append([]byte{0xa2}, append(varint(len(deep)+4), append([]byte{0, 2}, mqttString(deep)...)...)...),
	} {
		if !deepAttack(t, b.TCPAddr(), pk) {
			t.Errorf("%s: Expected the connection closed by the broker, Actual still open after 5s", name)
		}
	}
	// A will over the limits: CONNACK 5.
	conn, err := net.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 4, clientID: "deepwill", keepalive: 30,
		will: true, willRetain: true, willTopic: deep, willMsg: []byte("x")}); code != 5 {
		t.Errorf("will with 32,000 levels: Expected CONNACK 5, Actual %d", code)
	}
	// Nothing was stored, and the broker still serves everyone at the limits.
	if st := b.Stats(); st.Retained != 0 {
		t.Errorf("Expected no retained message, Actual %d", st.Retained)
	}
	c := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	at := path + deepTopic(broker.DefaultMaxTopicLevels-strings.Count(path, "/"))
	ch := subscribe(t, ctx, c, at, 0)
	publish(t, ctx, c, at, 0, false, "at the limit")
	expect(t, ch, at, "at the limit")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeepTopicAttack measures the process CPU one deep-topic attack costs (broker
// and attacker are both in this process; the attacker's part is a few writes). Before
// the limits, one 32,000-level SUBSCRIBE cost 5-11 CPU-seconds. Record with:
//
//	go test ./reference/broker -run XXX -bench DeepTopicAttack -benchtime 200x -count 3
func BenchmarkDeepTopicAttack(b *testing.B) {
	br, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for _, tc := range []struct {
		name string
		pk   []byte
	}{
		{"subscribe-32000-levels", rawSubscribe("/rtcomm/" + deepTopic(32000))},
		{"retained-publish-32000-levels", rawPublish0("/rtcomm/"+deepTopic(32000), true, "x")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			start := cpuTime(b)
			for i := 0; i < b.N; i++ {
				if !deepAttack(b, br.TCPAddr(), tc.pk) {
					b.Fatal("connection not closed")
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// ID-016: retained messages are kept within the per-owner quota; over it they are
// delivered live but not retained, and clearing frees the quota. (Open mode retains on any
// topic; presence-only is secure mode's, TestSecureRetainedInInbox.)
func TestRetainedWithinQuota(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{RetainedQuota: 1000})
	ctx := testCtx(t)
	p := uniquePath()
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	live := subscribe(t, ctx, pub, p+"#", 0)
	doc := strings.Repeat("d", 400)
	for _, topic := range []string{p + "sphere/alice", p + "sphere/group1/alice"} {
		publish(t, ctx, pub, topic, 1, true, doc)
		expect(t, live, topic, doc)
	}
	// Third message: 1,200 bytes would exceed the 1,000-byte quota.
	publish(t, ctx, pub, p+"bob/mallory", 1, true, doc)
	expect(t, live, p+"bob/mallory", doc) // delivered live

	late := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	got := subscribe(t, ctx, late, p+"#", 0)
	seen := map[string]bool{}
	for range 2 {
		select {
		case m := <-got:
			seen[m.Topic] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("Expected 2 retained messages, Actual %v", seen)
		}
	}
	if !seen[p+"sphere/alice"] || !seen[p+"sphere/group1/alice"] {
		t.Errorf("Expected retained sphere/alice and sphere/group1/alice, Actual %v", seen)
	}
	expectNone(t, got, "a retained message over the quota")

	// Clearing frees the quota: the third one fits now.
	publish(t, ctx, pub, p+"sphere/alice", 1, true, "")
	publish(t, ctx, pub, p+"bob/mallory", 1, true, "again")
	late2 := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	expect(t, subscribe(t, ctx, late2, p+"bob/#", 0), p+"bob/mallory", "again")
}

// ID-016 in secure mode: mallory's retained message in bob's inbox is not kept (bob
// could never clear it: its last level is mallory's), and her quota is per user, not
// per client ID.
func TestSecureRetainedInInbox(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	bob := dial(t, ctx, f.opts(f.b.TCPURL(), "bob"))
	publish(t, ctx, bob, f.path+"alice/bob", 1, true, "sticky")
	publish(t, ctx, bob, f.path+"sphere/bob", 1, true, "doc")
	alice := dial(t, ctx, f.opts(f.b.TCPURL(), "alice"))
	expect(t, subscribe(t, ctx, alice, f.path+"sphere/#", 0), f.path+"sphere/bob", "doc")
	expectNone(t, subscribe(t, ctx, alice, f.path+"alice/#", 0), "a retained message in alice's inbox")
}

// ID-017: one client holds at most MaxSubscriptions filters; a SUBSCRIBE with thousands
// of (short) filters is refused as a whole before any of them reaches the topic tree.
func TestSubscriptionCap(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{MaxSubscriptions: 16})
	ctx := testCtx(t)
	p := uniquePath()
	c := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	for i := range 16 {
		subscribe(t, ctx, c, fmt.Sprintf("%sf%d", p, i), 0)
	}
	body := []byte{0, 1}
	for i := range 5000 {
		body = append(append(body, mqttString(fmt.Sprintf("%sg%d", p, i))...), 0)
	}
	if !deepAttack(t, b.TCPAddr(), append(append([]byte{0x82}, varint(len(body))...), body...)) {
		t.Error("SUBSCRIBE with 5,000 filters: Expected the connection closed, Actual still open")
	}
	if err := c.Subscribe(ctx, p+"one-too-many", 0, func(mqttc.Message) {}); err == nil {
		t.Error("17th filter: Expected the SUBSCRIBE refused, Actual granted")
	}
}
