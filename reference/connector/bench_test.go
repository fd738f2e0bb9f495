package connector

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// benchWindow is how many messages may be in flight: enough to pipeline, few
// enough that no QoS 0 message is dropped by a full client buffer.
const benchWindow = 64

// pump publishes b.N copies of payload to topic from pub, at most benchWindow
// unacknowledged by the receiver subscribed (by the caller) with release, and
// returns msgs/s. It fails the benchmark if delivery stalls.
func pump(b *testing.B, pub *mqttc.Client, topic string, payload []byte, sem chan struct{}, received *atomic.Int64) {
	b.Helper()
	received.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		select {
		case sem <- struct{}{}:
		case <-time.After(5 * time.Second):
			b.Fatalf("delivery stalled: %d of %d received", received.Load(), i)
		}
		pub.PublishAsync(topic, 0, false, payload)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("expected %d messages, received %d", b.N, received.Load())
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// receiver subscribes filter on a new client and counts deliveries, freeing a window slot each.
func receiver(b *testing.B, e *env, filter string, sem chan struct{}, received *atomic.Int64) {
	b.Helper()
	r := e.client("receiver")
	if err := r.c.Subscribe(e.ctx, filter, 0, func(mqttc.Message) {
		received.Add(1)
		<-sem
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRouting: in-session MESSAGEs (ICE candidates) relayed by the
// connector through the embedded broker: caller -> broker -> connector ->
// broker -> callee. allocs/op counts the whole process (broker, clients, connector).
func BenchmarkRouting(b *testing.B) {
	e := newEnv(b)
	c := e.connector(func(cfg *Config) { cfg.RatePerClient = -1 }) // one caller at full speed: the per-client limit would be the bottleneck
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(b, c, 2)
	start, sid := call(b, c, alice, bob)
	answer(b, c, alice, bob, start)
	// The test endpoints decode what they get; only the bare receiver may listen now.
	if err := bob.c.Unsubscribe(e.ctx, bob.address+"/#"); err != nil {
		b.Fatal(err)
	}

	sem := make(chan struct{}, benchWindow)
	var received atomic.Int64
	receiver(b, e, spec.Join(bob.address, "alice"), sem, &received)
	payload := []byte(candidate(alice.address, sid, "1"))
	pump(b, alice.c, spec.Join(c.SessionTopic(), "alice"), payload, sem, &received)
	if got := c.Stats().Routed["MESSAGE"]; got < uint64(b.N) {
		b.Fatalf("connector routed %d MESSAGEs, expected at least %d", got, b.N)
	}
}

// BenchmarkRawRelay is the baseline: the same messages published straight to
// the callee's inbox (one broker hop, no connector).
func BenchmarkRawRelay(b *testing.B) {
	e := newEnv(b)
	alice := e.endpoint("alice")
	sem := make(chan struct{}, benchWindow)
	var received atomic.Int64
	topic := spec.Join(e.topics.Inbox("bob"), "alice")
	receiver(b, e, topic, sem, &received)
	pump(b, alice.c, topic, []byte(candidate(alice.address, "sid", "1")), sem, &received)
}

// BenchmarkRelayParse is the connector's own per-message work on the relay
// path, without MQTT: the validating scan and the fromTopic splice.
func BenchmarkRelayParse(b *testing.B) {
	raw := []byte(candidate("/rtcomm/alice", "5f0c7e0e-7a53-4b71-9d0c-2b8a4d1f3e11", "1"))
	from := []byte(`"/rtcomm/connector/rtcconn-abcdefghijklmno"`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		var in inbound
		if !in.scan(raw) || len(in.sigSessID) == 0 {
			b.Fatal("fast path refused a plain candidate")
		}
		_ = splice(raw, &in.s, from)
	}
}

// BenchmarkRelayParseDecode is the same work done with spec.Decode (the slow
// path, and what the relay path cost before the scanner).
func BenchmarkRelayParseDecode(b *testing.B) {
	raw := []byte(candidate("/rtcomm/alice", "5f0c7e0e-7a53-4b71-9d0c-2b8a4d1f3e11", "1"))
	from := []byte(`"/rtcomm/connector/rtcconn-abcdefghijklmno"`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		m, err := spec.Decode(raw)
		if err != nil || m.SigSessID == "" {
			b.Fatal(err)
		}
		if _, err := setFromTopic(raw, from); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardBaseline is the two-hop ceiling: a bare client that
// republishes every message it receives, unparsed, to the callee's inbox
// (what the connector does, minus everything rtcomm).
func BenchmarkForwardBaseline(b *testing.B) {
	e := newEnv(b)
	alice := e.endpoint("alice")
	fwd := e.client("forwarder")
	out := spec.Join(e.topics.Inbox("bob"), "alice")
	if err := fwd.c.Subscribe(e.ctx, e.topics.Path+"fwd/+", 1, func(m mqttc.Message) {
		fwd.c.PublishAsync(out, m.QoS, false, m.Payload)
	}); err != nil {
		b.Fatal(err)
	}
	sem := make(chan struct{}, benchWindow)
	var received atomic.Int64
	receiver(b, e, out, sem, &received)
	pump(b, alice.c, e.topics.Path+"fwd/alice", []byte(candidate(alice.address, "sid", "1")), sem, &received)
}
