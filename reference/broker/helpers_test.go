package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// quiet is how long a test waits to be reasonably sure a message is NOT coming.
const quiet = 300 * time.Millisecond

func startBroker(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniquePath is a topic path of its own for one test: "/t-<random>/".
func uniquePath() string { return fmt.Sprintf("/t-%08x/", rand.Uint32()) }

func dial(t *testing.T, ctx context.Context, o mqttc.Options) *mqttc.Client {
	t.Helper()
	c, err := mqttc.Dial(ctx, o)
	if err != nil {
		t.Fatalf("dial %s as %q: %v", o.BrokerURL, o.Username, err)
	}
	t.Cleanup(c.Close)
	return c
}

// subscribe returns a channel that receives every message for filter.
func subscribe(t *testing.T, ctx context.Context, c *mqttc.Client, filter string, qos byte) <-chan mqttc.Message {
	t.Helper()
	ch := make(chan mqttc.Message, 4096)
	if err := c.Subscribe(ctx, filter, qos, func(m mqttc.Message) { ch <- m }); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	settle(t, ctx, c)
	return ch
}

// settle waits until the broker has finished the client's earlier packets. mochi
// sends retained messages for a new subscription after the SUBACK, so a retained
// message published right after the SUBACK can arrive twice (live and as retained);
// mochi handles one client's packets in order, so an UNSUBACK for a filter nobody
// uses marks the end of that scan. See NOTES.md.
func settle(t *testing.T, ctx context.Context, c *mqttc.Client) {
	t.Helper()
	if err := c.Unsubscribe(ctx, "$barrier/none"); err != nil {
		t.Fatalf("unsubscribe barrier: %v", err)
	}
}

func publish(t *testing.T, ctx context.Context, c *mqttc.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	if err := c.Publish(ctx, topic, qos, retained, []byte(payload)); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
	if retained {
		// mochi acknowledges a QoS 1 PUBLISH before fanning it out: without this, a
		// subscription made right after could receive it twice (see settle).
		settle(t, ctx, c)
	}
}

// expect waits for the next message and checks its topic and payload.
func expect(t *testing.T, ch <-chan mqttc.Message, topic, payload string) mqttc.Message {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic != topic || string(m.Payload) != payload {
			t.Fatalf("Expected message %q on %q, Actual %q (%d bytes) on %q", payload, topic, m.Payload, len(m.Payload), m.Topic)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("Expected message %q on %q, Actual: nothing within 5s", payload, topic)
	}
	return mqttc.Message{}
}

// expectNone checks that nothing arrives for a short while.
func expectNone(t *testing.T, ch <-chan mqttc.Message, why string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("%s: Expected no message, Actual %q (%d bytes) on %q (retained=%v)", why, m.Payload, len(m.Payload), m.Topic, m.Retained)
	case <-time.After(quiet):
	}
}

// Raw MQTT, for what paho cannot send (MQTT 5, hand-made CONNECTs).

func mqttString(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

func varint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// rawConnect is one CONNECT packet, built field by field.
type rawConnect struct {
	protoName  string // "MQTT" or "MQIsdp"
	level      byte   // 3, 4, 5
	clientID   string
	keepalive  uint16
	will       bool
	willQoS    byte
	willRetain bool
	willProps  []byte // MQTT 5 will properties (without their length)
	willTopic  string
	willMsg    []byte
	username   *string
	password   *string
}

func (c rawConnect) bytes() []byte {
	flags := byte(0x02) // clean session
	if c.will {
		flags |= 0x04 | c.willQoS<<3
		if c.willRetain {
			flags |= 0x20
		}
	}
	if c.username != nil {
		flags |= 0x80
	}
	if c.password != nil {
		flags |= 0x40
	}
	var body []byte
	body = append(body, mqttString(c.protoName)...)
	body = append(body, c.level, flags)
	body = binary.BigEndian.AppendUint16(body, c.keepalive)
	if c.level == 5 {
		body = append(body, 0) // no CONNECT properties
	}
	body = append(body, mqttString(c.clientID)...)
	if c.will {
		if c.level == 5 {
			body = append(body, varint(len(c.willProps))...)
			body = append(body, c.willProps...)
		}
		body = append(body, mqttString(c.willTopic)...)
		body = append(body, mqttString(string(c.willMsg))...)
	}
	if c.username != nil {
		body = append(body, mqttString(*c.username)...)
	}
	if c.password != nil {
		body = append(body, mqttString(*c.password)...)
	}
	return append(append([]byte{0x10}, varint(len(body))...), body...)
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r io.Reader) (byte, []byte, error) {
	var h [1]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		var d [1]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return 0, nil, err
		}
		n += int(d[0]&0x7f) * mult
		mult *= 128
		if d[0]&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return h[0], body, err
}

// rawHandshake sends the CONNECT on conn and returns the CONNACK return/reason code.
func rawHandshake(t *testing.T, conn net.Conn, c rawConnect) byte {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(c.bytes()); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	typ, body, err := readPacket(conn)
	if err != nil {
		t.Fatalf("Expected CONNACK, Actual read error %v", err)
	}
	if typ != 0x20 || len(body) < 2 {
		t.Fatalf("Expected CONNACK (0x20, >= 2 bytes), Actual type 0x%02x body % x", typ, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return body[1]
}

func strPtr(s string) *string { return &s }

// bytesOf makes a payload of n bytes with a recognisable pattern.
func bytesOf(n int) []byte {
	return bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
}
