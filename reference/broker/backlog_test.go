package broker_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
)

// backlog has a subscriber that reads nothing (a 4 KB receive buffer) while a publisher sends
// n QoS 0 messages of size bytes, numbered, to its topic; it returns once the broker has
// handled every PUBLISH (the publisher's UNSUBACK follows them), with the subscriber's
// connection still unread.
func backlog(t *testing.T, b *broker.Broker, n, size int) net.Conn {
	t.Helper()
	topic := uniquePath() + "backlog"
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	sub, err := d.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if rc := rawHandshake(t, sub, rawConnect{protoName: "MQTT", level: 4, clientID: "slow-sub", keepalive: 60}); rc != 0 {
		t.Fatalf("subscriber CONNACK %d", rc)
	}
	_ = sub.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := sub.Write(rawSubscribe(topic)); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := readPacket(sub); err != nil || typ != 0x90 {
		t.Fatalf("Expected SUBACK, Actual type 0x%02x, %v", typ, err)
	}
	pub, err := net.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	if rc := rawHandshake(t, pub, rawConnect{protoName: "MQTT", level: 4, clientID: "fast-pub", keepalive: 60}); rc != 0 {
		t.Fatalf("publisher CONNACK %d", rc)
	}
	_ = pub.SetDeadline(time.Now().Add(20 * time.Second))
	w := bufio.NewWriter(pub)
	for i := range n {
		p := fmt.Sprintf("%06d:", i)
		if _, err := w.Write(rawPublish0(topic, false, p+string(bytesOf(size-len(p))))); err != nil {
			t.Fatal(err)
		}
	}
	unsub := append([]byte{0xa2}, varint(2+len(mqttString("none/x")))...)
	unsub = append(append(unsub, 0, 2), mqttString("none/x")...)
	if _, err := w.Write(unsub); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := readPacket(pub); err != nil || typ != 0xb0 {
		t.Fatalf("Expected UNSUBACK after the publishes, Actual type 0x%02x, %v", typ, err)
	}
	return sub
}

// drain reads the subscriber's PUBLISHes until n arrived or the connection goes quiet, and
// fails on any message out of order or seen twice; it returns the sequence numbers read.
func drain(t *testing.T, sub net.Conn, n int) []int {
	t.Helper()
	r := bufio.NewReaderSize(sub, 64<<10)
	var got []int
	for len(got) < n {
		_ = sub.SetReadDeadline(time.Now().Add(2 * time.Second))
		typ, body, err := readPacket(r)
		if err != nil {
			break // quiet: the rest was dropped (or lost, which the caller's count shows)
		}
		if typ&0xf0 != 0x30 || len(body) < 2 {
			t.Fatalf("Expected PUBLISH, Actual type 0x%02x", typ)
		}
		tl := int(binary.BigEndian.Uint16(body))
		var seq int
		if _, err := fmt.Sscanf(string(body[2+tl:2+tl+6]), "%06d", &seq); err != nil {
			t.Fatalf("payload %q: %v", body[2+tl:min(len(body), 2+tl+16)], err)
		}
		if len(got) > 0 && seq <= got[len(got)-1] {
			t.Fatalf("Expected deliveries in publish order, Actual %d after %d", seq, got[len(got)-1])
		}
		got = append(got, seq)
	}
	return got
}

// A subscriber that stops reading gets a backlog far beyond socket buffers: the per-client
// queue (patched mochi, mochipatch/outbound.go) grows from 8 slots to hold it, and delivers
// every message, in order, once the subscriber reads again.
func TestSlowSubscriberBacklogDelivered(t *testing.T) {
	t.Parallel()
	const n, size = 3000, 4096 // 12 MB: more than loopback's send and receive buffers hold
	b := startBroker(t, broker.Config{WSAddr: broker.Off})
	sub := backlog(t, b, n, size)
	if d := b.Stats().MessagesDropped; d != 0 {
		t.Fatalf("Expected 0 deliveries dropped with a queue of %d, Actual %d", broker.DefaultMaxPendingWrites, d)
	}
	got := drain(t, sub, n)
	if len(got) != n {
		t.Fatalf("Expected all %d messages delivered, Actual %d (broker dropped %d)", n, len(got), b.Stats().MessagesDropped)
	}
}

// The queue still ends at MaxPendingWrites: with 16 slots the same backlog drops deliveries,
// counts each drop, and what it does deliver stays in order.
func TestSlowSubscriberQueueLimit(t *testing.T) {
	t.Parallel()
	const n, size = 3000, 4096
	b := startBroker(t, broker.Config{WSAddr: broker.Off, MaxPendingWrites: 16})
	sub := backlog(t, b, n, size)
	dropped := b.Stats().MessagesDropped
	if dropped == 0 {
		t.Fatalf("Expected deliveries dropped with a queue of 16, Actual none")
	}
	got := drain(t, sub, n)
	if int64(len(got))+dropped != n {
		t.Fatalf("Expected delivered + dropped = %d, Actual %d + %d", n, len(got), dropped)
	}
}

// A retained message whose MQTT 5 Message Expiry Interval has passed leaves the store: mochi's
// once-a-second scan (patched to select in place, mochipatch/PATCHED.md) removes it; one
// without expiry stays.
func TestRetainedMessageExpires(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{WSAddr: broker.Off})
	conn, err := net.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if rc := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 5, clientID: "expiring", keepalive: 60}); rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	path := uniquePath()
	body := append(mqttString(path+"short"), 5, 0x02, 0, 0, 0, 1) // properties: Message Expiry Interval 1 s
	body = append(body, "gone soon"...)
	expiring := append(append([]byte{0x31}, varint(len(body))...), body...)
	body = append(mqttString(path+"long"), 0) // no properties
	body = append(body, "stays"...)
	lasting := append(append([]byte{0x31}, varint(len(body))...), body...)
	if _, err := conn.Write(append(expiring, lasting...)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Retained != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Expected 2 retained messages after the publishes, Actual %d", b.Stats().Retained)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for b.Stats().Retained != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Expected the expired retained message removed within 5 s, Actual %d retained", b.Stats().Retained)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
