package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func TestConfigDefaultsAndURLs(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	if !strings.HasPrefix(b.TCPAddr(), "127.0.0.1:") || strings.HasSuffix(b.TCPAddr(), ":0") {
		t.Errorf("TCPAddr: Expected 127.0.0.1:<random port>, Actual %q", b.TCPAddr())
	}
	if want := "tcp://" + b.TCPAddr(); b.TCPURL() != want {
		t.Errorf("TCPURL: Expected %q, Actual %q", want, b.TCPURL())
	}
	if !strings.HasPrefix(b.WSAddr(), "127.0.0.1:") || b.WSAddr() == b.TCPAddr() {
		t.Errorf("WSAddr: Expected 127.0.0.1:<another random port>, Actual %q (tcp %q)", b.WSAddr(), b.TCPAddr())
	}
	if want := "ws://" + b.WSAddr() + "/mqtt"; b.WSURL() != want {
		t.Errorf("WSURL: Expected %q, Actual %q", want, b.WSURL())
	}

	wsOnly := startBroker(t, broker.Config{TCPAddr: "off"})
	if wsOnly.TCPAddr() != "" || wsOnly.TCPURL() != "" || wsOnly.WSURL() == "" {
		t.Errorf("TCPAddr off: Expected no TCP URL and a WS URL, Actual tcp %q ws %q", wsOnly.TCPURL(), wsOnly.WSURL())
	}
	tcpOnly := startBroker(t, broker.Config{WSAddr: "off"})
	if tcpOnly.WSAddr() != "" || tcpOnly.WSURL() != "" || tcpOnly.TCPURL() == "" {
		t.Errorf("WSAddr off: Expected no WS URL and a TCP URL, Actual tcp %q ws %q", tcpOnly.TCPURL(), tcpOnly.WSURL())
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  broker.Config
		want string
	}{
		{"both listeners off", broker.Config{TCPAddr: "off", WSAddr: "off"}, "both"},
		{"payload limit below 64 KiB", broker.Config{MaxPayload: 60000}, "MaxPayload"},
		{"cert without key", broker.Config{TLSCertFile: "x.pem"}, "TLS"},
		{"secure without credentials", broker.Config{Secure: true}, "Credentials"},
		{"connector not in credentials", broker.Config{Secure: true, Credentials: map[string]string{"alice": "pw"}, ConnectorUser: "conn"}, "ConnectorUser"},
		{"user with slash", broker.Config{Secure: true, Credentials: map[string]string{"a/b": "pw"}}, "endpoint ID"},
		{"empty password", broker.Config{Secure: true, Credentials: map[string]string{"alice": ""}}, "empty password"},
		{"reserved user", broker.Config{Secure: true, Credentials: map[string]string{"sphere": "pw"}}, "reserved"},
		{"wildcard path", broker.Config{TopicPath: "/a/+/"}, "wildcard"},
		{"bad address", broker.Config{TCPAddr: "127.0.0.1:notaport"}, "listen tcp"},
		{"missing cert file", broker.Config{TLSCertFile: "/nonexistent/c.pem", TLSKeyFile: "/nonexistent/k.pem"}, "TLS key pair"},
	}
	for _, tc := range cases {
		b, err := broker.Start(context.Background(), tc.cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: Expected an error containing %q, Actual success", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Expected an error containing %q, Actual %q", tc.name, tc.want, err)
		}
	}
}

// BRK-008: paho over ws:// connects and does pub/sub, also across transports.
func TestWebSocketPubSub(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	wsSub := dial(t, ctx, mqttc.Options{BrokerURL: b.WSURL()})
	tcpSub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	wsPub := dial(t, ctx, mqttc.Options{BrokerURL: b.WSURL()})
	got := subscribe(t, ctx, wsSub, path+"alice/#", 1)
	gotTCP := subscribe(t, ctx, tcpSub, path+"alice/#", 1)
	publish(t, ctx, wsPub, path+"alice/bob", 1, false, `{"method":"MESSAGE"}`)
	expect(t, got, path+"alice/bob", `{"method":"MESSAGE"}`)
	expect(t, gotTCP, path+"alice/bob", `{"method":"MESSAGE"}`)

	// A large message spans many WebSocket frames on the way in and out.
	big := bytesOf(70 << 10)
	if err := wsPub.Publish(ctx, path+"alice/bob", 1, false, big); err != nil {
		t.Fatal(err)
	}
	m := expect(t, got, path+"alice/bob", string(big))
	if !bytes.Equal(m.Payload, big) {
		t.Fatalf("Expected the 70 KiB payload intact over WebSocket")
	}
}

// BRK-008: the subprotocol a client asks for is echoed, "mqttv3.1" (Paho JS 1.0.x,
// rtcomm.js) as well as "mqtt"; other paths are 404.
func TestWebSocketSubprotocolEcho(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	for _, proto := range []string{"mqttv3.1", "mqtt"} {
		d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial(b.WSURL(), nil)
		if err != nil {
			t.Fatalf("dial asking for %q: %v", proto, err)
		}
		if conn.Subprotocol() != proto || resp.Header.Get("Sec-WebSocket-Protocol") != proto {
			t.Errorf("Expected subprotocol %q echoed, Actual %q (header %q)", proto, conn.Subprotocol(), resp.Header.Get("Sec-WebSocket-Protocol"))
		}
		conn.Close()
	}

	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws://"+b.WSAddr()+"/other", nil)
	if err == nil {
		conn.Close()
		t.Fatalf("Expected path /other to be refused, Actual upgrade succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("path /other: Expected HTTP 404, Actual %v (%v)", resp, err)
	}
}

// BRK-008, BRK-009, BRK-002: what rtcomm.js sends, byte for byte: subprotocol
// mqttv3.1, an MQTT 3.1 (MQIsdp) CONNECT with an empty retained will, here split
// over two WebSocket messages; then the socket dies and the will clears presence.
func TestWebSocketRawMQIsdpConnectWithEmptyWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	id := "rtcommjs-abcdefghijklmn" // 23 characters, like rtcomm.js's random IDs
	mon := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	sphere := subscribe(t, ctx, mon, path+"sphere/+", 0)

	d := websocket.Dialer{Subprotocols: []string{"mqttv3.1"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(b.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	connect := rawConnect{protoName: "MQIsdp", level: 3, clientID: id, keepalive: 60,
		will: true, willRetain: true, willTopic: path + "sphere/" + id}.bytes()
	half := len(connect) / 2
	for _, part := range [][]byte{connect[:half], connect[half:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("Expected CONNACK, Actual %v", err)
	}
	if typ != websocket.BinaryMessage || !bytes.Equal(msg, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Fatalf("Expected binary CONNACK 20 02 00 00, Actual type %d % x", typ, msg)
	}
	// Register as rtcomm.js does: a retained DOCUMENT (QoS 0 PUBLISH, retain flag).
	doc := `{"method":"DOCUMENT"}`
	pub := append([]byte{0x31}, varint(2+len(path+"sphere/"+id)+len(doc))...)
	pub = append(append(pub, mqttString(path+"sphere/"+id)...), doc...)
	if err := ws.WriteMessage(websocket.BinaryMessage, pub); err != nil {
		t.Fatal(err)
	}
	expect(t, sphere, path+"sphere/"+id, doc)

	ws.UnderlyingConn().Close() // the browser tab dies
	expect(t, sphere, path+"sphere/"+id, "")
	late := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	expectNone(t, subscribe(t, ctx, late, path+"sphere/#", 0), "presence after the will")
}

// A text frame is a protocol error for MQTT over WebSocket: the connection is closed.
func TestWebSocketTextFrameClosesConnection(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(b.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, rawConnect{protoName: "MQTT", level: 4, clientID: "txt"}.bytes()); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if typ, msg, err := ws.ReadMessage(); err == nil {
		t.Fatalf("Expected the connection closed, Actual message type %d % x", typ, msg)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("Expected the connection closed, Actual still open after 5s")
	}
}

// BRK-009: MQTT 3.1 (MQIsdp, level 3) clients with 23-character IDs and a 60 s
// keepalive work over TCP and WebSocket.
func TestMQTT31Clients(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	for _, url := range []string{b.TCPURL(), b.WSURL()} {
		sub := dial(t, ctx, mqttc.Options{BrokerURL: url, ProtocolVersion: 3, ClientID: mqttc.RandomClientID("s"), KeepAlive: 60 * time.Second})
		pub := dial(t, ctx, mqttc.Options{BrokerURL: url, ProtocolVersion: 3, ClientID: mqttc.RandomClientID("p"), KeepAlive: 60 * time.Second})
		got := subscribe(t, ctx, sub, path+"alice/#", 0)
		publish(t, ctx, pub, path+"alice/bob", 0, false, "hello over "+url)
		expect(t, got, path+"alice/bob", "hello over "+url)
		publish(t, ctx, pub, path+"alice/bob", 1, false, "qos1 over "+url)
		expect(t, got, path+"alice/bob", "qos1 over "+url)
	}
}

// BRK-002: a client with an empty retained will is killed: a monitor subscribed
// beforehand gets an empty PUBLISH on the sphere topic, and the retained DOCUMENT is
// cleared. MQTT 3.1 and 3.1.1, over TCP and WebSocket.
func TestEmptyWillOnAbruptDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	for _, tc := range []struct {
		url     string
		version uint
	}{{b.TCPURL(), 3}, {b.TCPURL(), 4}, {b.WSURL(), 3}, {b.WSURL(), 4}} {
		t.Run(fmt.Sprintf("%s/v%d", strings.SplitN(tc.url, ":", 2)[0], tc.version), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			path := uniquePath()
			mon := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
			sphere := subscribe(t, ctx, mon, path+"sphere/+", 1)
			topic := path + "sphere/alice"
			c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: tc.url, ProtocolVersion: tc.version,
				Will: &mqttc.Will{Topic: topic, Payload: nil, QoS: 1, Retained: true}})
			if err != nil {
				t.Fatalf("Expected a CONNECT with an empty will accepted, Actual %v", err)
			}
			publish(t, ctx, c, topic, 1, true, `{"method":"DOCUMENT"}`)
			expect(t, sphere, topic, `{"method":"DOCUMENT"}`)
			c.Kill()
			m := expect(t, sphere, topic, "")
			if len(m.Payload) != 0 {
				t.Fatalf("Expected an empty will payload, Actual %d bytes", len(m.Payload))
			}
			late := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
			expectNone(t, subscribe(t, ctx, late, path+"sphere/#", 1), "late subscriber after the will")
		})
	}
}

// BRK-002 with the MQTT 5 CONNECT layout (properties and will properties), which
// paho cannot send: the empty will is accepted and fires empty.
func TestEmptyWillMQTT5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	mon := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	sphere := subscribe(t, ctx, mon, path+"sphere/+", 1)
	conn, err := net.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 5, clientID: "v5client", keepalive: 60,
		will: true, willQoS: 1, willRetain: true, willTopic: path + "sphere/v5client",
		willProps: []byte{0x01, 0x01, 0x03, 0x00, 0x10, 'a', 'p', 'p', 'l', 'i', 'c', 'a', 't', 'i', 'o', 'n', '/', 'j', 's', 'o', 'n'}})
	if code != 0 {
		t.Fatalf("Expected CONNACK reason 0x00, Actual 0x%02x", code)
	}
	conn.Close()
	expect(t, sphere, path+"sphere/v5client", "")
}

// A non-empty will is passed through unchanged, and a clean DISCONNECT discards it.
func TestWillPayloadKeptAndCleanCloseDiscards(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	mon := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	got := subscribe(t, ctx, mon, path+"sphere/+", 1)
	c1, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Will: &mqttc.Will{Topic: path + "sphere/one", Payload: []byte("gone"), QoS: 1}})
	if err != nil {
		t.Fatal(err)
	}
	c1.Kill()
	expect(t, got, path+"sphere/one", "gone")
	c2, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Will: &mqttc.Will{Topic: path + "sphere/two", QoS: 1, Retained: true}})
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	expectNone(t, got, "will after a clean DISCONNECT")
}

// MQTT 3.1.1 allows a zero-length password; mochi alone refuses it.
func TestEmptyPasswordAccepted(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	conn, err := net.Dial("tcp", b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 4, clientID: "nopw", keepalive: 30,
		username: strPtr("someone"), password: strPtr("")})
	if code != 0 {
		t.Fatalf("Expected CONNACK 0 for an empty password, Actual %d", code)
	}
}

// BRK-001, REG: clean unregister: an empty retained publish clears the DOCUMENT and
// subscribers receive the empty message.
func TestCleanUnregister(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	topic := path + "sphere/sip:alice@example.com"
	mon := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	got := subscribe(t, ctx, mon, path+"sphere/#", 1)
	alice := dial(t, ctx, mqttc.Options{BrokerURL: b.WSURL(), ProtocolVersion: 3})
	publish(t, ctx, alice, topic, 0, true, `{"method":"DOCUMENT"}`)
	expect(t, got, topic, `{"method":"DOCUMENT"}`)
	if n := b.Stats().Retained; n != 1 {
		t.Errorf("Stats.Retained after registering: Expected 1, Actual %d", n)
	}
	publish(t, ctx, alice, topic, 0, true, "")
	expect(t, got, topic, "")
	late := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	expectNone(t, subscribe(t, ctx, late, path+"sphere/#", 1), "late subscriber after unregister")
	if n := b.Stats().Retained; n != 0 {
		t.Errorf("Stats.Retained after unregister: Expected 0, Actual %d", n)
	}
}

// BRK-001: retained set, replace, clear.
func TestRetainedSetReplaceClear(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	topic := path + "sphere/bob"
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	lateSub := func() <-chan mqttc.Message {
		c := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
		return subscribe(t, ctx, c, path+"sphere/+", 1)
	}
	publish(t, ctx, pub, topic, 1, true, "v1")
	m := expect(t, lateSub(), topic, "v1")
	if !m.Retained {
		t.Errorf("Expected the late subscriber's copy flagged retained, Actual not")
	}
	publish(t, ctx, pub, topic, 1, true, "v2")
	ch := lateSub()
	expect(t, ch, topic, "v2")
	expectNone(t, ch, "only the replacement is retained")
	publish(t, ctx, pub, topic, 1, true, "")
	expectNone(t, lateSub(), "retained after clear")
}

// BRK-003: '#' matches the parent and everything below, '+' exactly one level.
func TestWildcards(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	c := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	hash := subscribe(t, ctx, c, path+"event/#", 1)
	c2 := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	plus := subscribe(t, ctx, c2, path+"event/+/started/#", 1)
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	for _, topic := range []string{path + "event", path + "event/session/started/alice/bob", path + "event/session/stopped/alice/bob", path + "eventual/x"} {
		publish(t, ctx, pub, topic, 1, false, topic)
	}
	expect(t, hash, path+"event", path+"event")
	expect(t, hash, path+"event/session/started/alice/bob", path+"event/session/started/alice/bob")
	expect(t, hash, path+"event/session/stopped/alice/bob", path+"event/session/stopped/alice/bob")
	expectNone(t, hash, "'#' must not match a sibling level name")
	expect(t, plus, path+"event/session/started/alice/bob", path+"event/session/started/alice/bob")
	expectNone(t, plus, "'+' matches exactly one level")
}

// BRK-004: levels with @ : . - _ and spaces, and an empty first level, are literal.
func TestTopicLevels(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath() // starts with "/": the empty first level
	sub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	ids := []string{"sip:alice@example.com", "John Smith", "a.b-c_d", "x y:z@w.q-r_s"}
	for _, id := range ids {
		got := subscribe(t, ctx, sub, path+id+"/#", 1)
		publish(t, ctx, pub, path+id+"/"+id, 1, false, id)
		expect(t, got, path+id+"/"+id, id)
	}
	// "/x" and "x" are different topics: the empty first level is a real level.
	noSlash := subscribe(t, ctx, sub, strings.TrimPrefix(path, "/")+"#", 1)
	publish(t, ctx, pub, path+"alice/bob", 1, false, "slash")
	expectNone(t, noSlash, "topic without the leading slash")
	empty := subscribe(t, ctx, sub, "+"+path+"alice/+", 1)
	publish(t, ctx, pub, path+"alice/bob", 1, false, "slash")
	expect(t, empty, path+"alice/bob", "slash")
}

// BRK-005: a 64 KiB payload is delivered intact at the minimum limit; one byte more
// is refused: the publisher is disconnected (its will fires) and nothing is delivered.
func TestPayloadLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{MaxPayload: broker.MinMaxPayload})
	ctx := testCtx(t)
	path := uniquePath()
	sub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	got := subscribe(t, ctx, sub, path+"#", 1)
	lost := make(chan error, 1)
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: "bigpub",
		Will:             &mqttc.Will{Topic: path + "sphere/bigpub", QoS: 1},
		OnConnectionLost: func(err error) { lost <- err }})
	exact := bytesOf(broker.MinMaxPayload)
	if err := pub.Publish(ctx, path+"alice/bigpub", 1, false, exact); err != nil {
		t.Fatal(err)
	}
	m := expect(t, got, path+"alice/bigpub", string(exact))
	if !bytes.Equal(m.Payload, exact) {
		t.Fatal("Expected the 64 KiB payload intact")
	}

	pub.PublishAsync(path+"alice/bigpub", 0, false, bytesOf(broker.MinMaxPayload+1))
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("Expected the publisher disconnected after an oversize payload, Actual still connected")
	}
	expect(t, got, path+"sphere/bigpub", "") // the will, not the oversize message
	expectNone(t, got, "oversize payload must not be delivered")
}

// BRK-007: QoS 0 and 1 both work; delivery QoS is the minimum of publish and subscribe.
func TestQoS0And1(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	s0 := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	s1 := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	got0 := subscribe(t, ctx, s0, path+"q/#", 0)
	got1 := subscribe(t, ctx, s1, path+"q/#", 1)
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	for _, qos := range []byte{0, 1} {
		payload := fmt.Sprintf("qos%d", qos)
		publish(t, ctx, pub, path+"q/x", qos, false, payload)
		if m := expect(t, got0, path+"q/x", payload); m.QoS != 0 {
			t.Errorf("QoS 0 subscriber, publish QoS %d: Expected delivery QoS 0, Actual %d", qos, m.QoS)
		}
		if m := expect(t, got1, path+"q/x", payload); m.QoS != qos {
			t.Errorf("QoS 1 subscriber, publish QoS %d: Expected delivery QoS %d, Actual %d", qos, qos, m.QoS)
		}
	}
}

// BRK-006: 1,000 messages of one publisher arrive in publish order, at QoS 0 and 1.
func TestPerPublisherOrdering(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	const n = 1000
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			path := uniquePath()
			sub := dial(t, ctx, mqttc.Options{BrokerURL: b.WSURL()})
			got := subscribe(t, ctx, sub, path+"alice/#", qos)
			pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
			var last <-chan struct{}
			for i := range n {
				last = pub.PublishAsync(path+"alice/bob", qos, false, fmt.Appendf(nil, "%d", i))
			}
			select {
			case <-last:
			case <-ctx.Done():
				t.Fatal("publishing did not finish")
			}
			for i := range n {
				select {
				case m := <-got:
					if want := fmt.Sprint(i); string(m.Payload) != want {
						t.Fatalf("message %d: Expected payload %q, Actual %q (order broken)", i, want, m.Payload)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("Expected %d messages, Actual %d", n, i)
				}
			}
		})
	}
}

// BRK-010: of three agents in one $share group, exactly one receives each message,
// and all messages are received.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	path := uniquePath()
	const n = 60
	var mu sync.Mutex
	seen := map[string][]int{} // payload -> agents that received it
	all := make(chan struct{}, 3*n)
	for agent := range 3 {
		c := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
		if err := c.Subscribe(ctx, "$share/agents/"+path+"queue/#", 1, func(m mqttc.Message) {
			mu.Lock()
			seen[string(m.Payload)] = append(seen[string(m.Payload)], agent)
			mu.Unlock()
			all <- struct{}{}
		}); err != nil {
			t.Fatalf("agent %d subscribe: %v", agent, err)
		}
	}
	pub := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	for i := range n {
		publish(t, ctx, pub, path+"queue/caller", 1, false, fmt.Sprint(i))
	}
	for i := range n {
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			t.Fatalf("Expected %d deliveries, Actual %d", n, i)
		}
	}
	select { // a duplicate would be a delivery beyond n
	case <-all:
	case <-time.After(quiet):
	}
	mu.Lock()
	defer mu.Unlock()
	perAgent := map[int]int{}
	for i := range n {
		agents := seen[fmt.Sprint(i)]
		if len(agents) != 1 {
			t.Errorf("message %d: Expected exactly 1 agent to receive it, Actual %d (%v)", i, len(agents), agents)
			continue
		}
		perAgent[agents[0]]++
	}
	if len(seen) != n {
		t.Errorf("Expected %d distinct messages, Actual %d", n, len(seen))
	}
	t.Logf("deliveries per agent: %v", perAgent)
}

func TestStatsClients(t *testing.T) {
	t.Parallel()
	b := startBroker(t, broker.Config{})
	ctx := testCtx(t)
	c1 := dial(t, ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	dial(t, ctx, mqttc.Options{BrokerURL: b.WSURL()})
	if n := b.Stats().ClientsConnected; n != 2 {
		t.Errorf("ClientsConnected: Expected 2, Actual %d", n)
	}
	c1.Close()
	deadline := time.Now().Add(2 * time.Second)
	for b.Stats().ClientsConnected != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.Stats().ClientsConnected; n != 1 {
		t.Errorf("ClientsConnected after one Close: Expected 1, Actual %d", n)
	}
}

// errIs is errors.Is with a readable failure.
func errIs(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: Expected error %v, Actual %v", what, target, err)
	}
}
