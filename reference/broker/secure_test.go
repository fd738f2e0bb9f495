package broker_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

type secureFixture struct {
	b    *broker.Broker
	path string
}

func startSecure(t *testing.T) secureFixture {
	t.Helper()
	path := uniquePath()
	b := startBroker(t, broker.Config{
		Secure:    true,
		TopicPath: path,
		Credentials: map[string]string{
			"connector":             "conn-pw",
			"alice":                 "alice-pw",
			"bob":                   "bob-pw",
			"sip:carol@example.com": "carol:pw-is-fine-in-config",
		},
		ConnectorUser: "connector",
	})
	return secureFixture{b: b, path: path}
}

func (f secureFixture) opts(url, user string) mqttc.Options {
	pw := map[string]string{"connector": "conn-pw", "alice": "alice-pw", "bob": "bob-pw",
		"sip:carol@example.com": "carol:pw-is-fine-in-config"}[user]
	return mqttc.Options{BrokerURL: url, Username: user, Password: pw}
}

// ID-005: authentication: bad password, unknown user and anonymous are refused with
// CONNACK "not authorized" (MQTT 3.1/3.1.1 return code 5; MQTT 5 0x86).
func TestSecureAuthentication(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name, user, pw string
		version        uint
	}{
		{"bad password", "alice", "wrong", 4},
		{"bad password 3.1", "alice", "wrong", 3},
		{"unknown user", "mallory", "alice-pw", 4},
		{"anonymous", "", "", 4},
		{"anonymous 3.1", "", "", 3},
		{"password of another user", "alice", "bob-pw", 4},
	} {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: f.b.TCPURL(), Username: tc.user, Password: tc.pw, ProtocolVersion: tc.version})
		if err == nil {
			c.Close()
			t.Errorf("%s: Expected the connection refused, Actual accepted", tc.name)
			continue
		}
		errIs(t, err, paho.ErrorRefusedNotAuthorised, tc.name)
	}
	for _, url := range []string{f.b.TCPURL(), f.b.WSURL()} {
		for _, v := range []uint{3, 4} {
			o := f.opts(url, "alice")
			o.ProtocolVersion = v
			dial(t, ctx, o)
		}
	}

	// MQTT 5: CONNACK 0x86 (bad user name or password).
	conn, err := net.Dial("tcp", f.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 5, clientID: "v5", keepalive: 30,
		username: strPtr("alice"), password: strPtr("nope")}); code != 0x86 {
		t.Errorf("MQTT 5 bad password: Expected CONNACK 0x86, Actual 0x%02x", code)
	}
}

// ID-005, ID-008, ID-009: alice may publish only to topics ending in her ID, not to
// events, and presence only at sphere/alice; denied publishes are
// dropped (QoS 1 still acknowledged: 3.1.1 has no negative PUBACK).
func TestSecurePublishIdentityRule(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	conn := dial(t, ctx, f.opts(f.b.TCPURL(), "connector"))
	all := subscribe(t, ctx, conn, "#", 1)
	for _, url := range []string{f.b.TCPURL(), f.b.WSURL()} {
		alice := dial(t, ctx, f.opts(url, "alice"))
		for _, topic := range []string{p + "bob/carol", p + "sphere/bob", p + "connector/bob", p + "bob/alice/x",
			p + "alice/bob", "/elsewhere/alice", p + "sphere/alice2", p + "sphere/alic",
			// ID-009: events are the connector's, even those ending in alice's ID;
			// ID-008: presence is exactly sphere/<id>.
			p + "event/session/started/bob/alice", p + "event/alice", p + "sphere/bob/alice",
			// The connector replicas' records (claims, session ownership, liveness).
			p + "connector/~g/alice", p + "connector/~g/own/alice", p + "connector/~g/live/alice"} {
			for _, qos := range []byte{0, 1} {
				if err := alice.Publish(ctx, topic, qos, false, []byte("spoof")); err != nil {
					t.Errorf("denied publish to %q at QoS %d: Expected it acknowledged and dropped, Actual error %v", topic, qos, err)
				}
			}
		}
		if !alice.Connected() {
			t.Fatalf("Expected alice still connected after denied publishes, Actual disconnected")
		}
		// Allowed ones; ordering makes the first allowed message a barrier: a denied
		// message would have been delivered before it.
		for _, topic := range []string{p + "sphere/alice", p + "connector/alice", p + "management/alice", p + "bob/alice", p + "sip:carol@example.com/alice"} {
			publish(t, ctx, alice, topic, 1, false, "ok")
			expect(t, all, topic, "ok")
		}
	}
	expectNone(t, all, "denied publishes")
}

// ID-005: subscriptions are limited to the own inbox, the sphere and events.
func TestSecureSubscribeIdentityRule(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	alice := dial(t, ctx, f.opts(f.b.WSURL(), "alice"))
	for _, filter := range []string{p + "bob/#", "#", p + "#", p + "+/#", p + "+/alice", p + "management/#",
		p + "connector/#", "$share/g/" + p + "bob/#", "$SYS/#", p + "alice2/#", "/other/alice/#"} {
		err := alice.Subscribe(ctx, filter, 1, func(mqttc.Message) {})
		errIs(t, err, mqttc.ErrSubscriptionRefused, "subscribe "+filter)
	}
	for _, filter := range []string{p + "alice/#", p + "alice", p + "alice/+", p + "sphere/#", p + "sphere/+",
		p + "event/#", p + "event/session/started/alice/#", "$share/g/" + p + "alice/#"} {
		if err := alice.Subscribe(ctx, filter, 1, func(mqttc.Message) {}); err != nil {
			t.Errorf("subscribe %q: Expected granted, Actual %v", filter, err)
		}
	}

	// A 3.1 client (rtcomm.js) gets the same answers.
	o := f.opts(f.b.TCPURL(), "bob")
	o.ProtocolVersion = 3
	bob := dial(t, ctx, o)
	errIs(t, bob.Subscribe(ctx, p+"alice/#", 0, func(mqttc.Message) {}), mqttc.ErrSubscriptionRefused, "3.1 subscribe to alice's inbox")
	inbox := subscribe(t, ctx, bob, p+"bob/#", 0)
	publish(t, ctx, alice, p+"bob/alice", 0, false, "hi bob")
	expect(t, inbox, p+"bob/alice", "hi bob")
}

// ID-005: the connector user may publish and subscribe anywhere.
func TestSecureConnectorMayDoAll(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	conn := dial(t, ctx, f.opts(f.b.TCPURL(), "connector"))
	all := subscribe(t, ctx, conn, "#", 1)
	subscribe(t, ctx, conn, p+"management/#", 1)
	subscribe(t, ctx, conn, "$share/conn/"+p+"connector/#", 1)
	alice := dial(t, ctx, f.opts(f.b.TCPURL(), "alice"))
	inbox := subscribe(t, ctx, alice, p+"alice/#", 1)
	for _, topic := range []string{p + "alice/connector", p + "alice/bob", p + "event/session/started/alice/bob", "/anything/else"} {
		publish(t, ctx, conn, topic, 1, true, "from connector")
		expect(t, all, topic, "from connector")
	}
	expect(t, inbox, p+"alice/connector", "from connector")
	expect(t, inbox, p+"alice/bob", "from connector") // the connector may relay on bob's behalf
}

// ID-005: the will is a publish on the client's behalf: a will breaking the rule is
// refused at CONNECT (CONNACK 5 "not authorized"); a proper one fires empty.
func TestSecureWill(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	o := f.opts(f.b.TCPURL(), "alice")
	o.Will = &mqttc.Will{Topic: p + "sphere/bob", QoS: 1, Retained: true}
	if c, err := mqttc.Dial(ctx, o); err == nil {
		c.Close()
		t.Fatalf("will on %q: Expected CONNECT refused, Actual accepted", o.Will.Topic)
	} else {
		errIs(t, err, paho.ErrorRefusedNotAuthorised, "will on another's sphere topic")
	}

	mon := dial(t, ctx, f.opts(f.b.TCPURL(), "bob"))
	sphere := subscribe(t, ctx, mon, p+"sphere/+", 1)
	o.Will.Topic = p + "sphere/alice"
	o.ProtocolVersion = 3
	alice, err := mqttc.Dial(ctx, o)
	if err != nil {
		t.Fatalf("will on own sphere topic: Expected accepted, Actual %v", err)
	}
	publish(t, ctx, alice, p+"sphere/alice", 1, true, `{"method":"DOCUMENT"}`)
	expect(t, sphere, p+"sphere/alice", `{"method":"DOCUMENT"}`)
	alice.Kill()
	expect(t, sphere, p+"sphere/alice", "")
}

func TestLoadCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", "# users\n\nconnector:c-pw\n  alice:alice-pw  \r\nsip:bob@example.com:bob-pw\nJohn Smith:js pw\n  # indented comment\n")
	creds, err := broker.LoadCredentials(good)
	if err != nil {
		t.Fatalf("good file: %v", err)
	}
	want := map[string]string{"connector": "c-pw", "alice": "alice-pw", "sip:bob@example.com": "bob-pw", "John Smith": "js pw"}
	if len(creds) != len(want) {
		t.Errorf("Expected %d users, Actual %d (%v)", len(want), len(creds), creds)
	}
	for u, pw := range want {
		if creds[u] != pw {
			t.Errorf("user %q: Expected password %q, Actual %q", u, pw, creds[u])
		}
	}

	for _, tc := range []struct{ content, want string }{
		{"alice:pw\nno colon here\n", ":2: no ':'"},
		{"# c\nalice:\n", ":2: user \"alice\": empty password"},
		{"a/b:pw\n", ":1: user \"a/b\" is not a valid endpoint ID"},
		{":pw\n", ":1: user \"\" is not a valid endpoint ID"},
		{"alice:pw\nbob:pw\nalice:pw2\n", ":3: user \"alice\" already defined on line 1"},
		{"# nothing\n\n", "no user:password lines"},
	} {
		path := write("bad", tc.content)
		_, err := broker.LoadCredentials(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q: Expected an error containing %q, Actual %v", tc.content, tc.want, err)
		}
	}
	if _, err := broker.LoadCredentials(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: Expected a not-exist error, Actual %v", err)
	}

	// A loaded file drives a secure broker.
	b := startBroker(t, broker.Config{Secure: true, Credentials: creds, ConnectorUser: "connector"})
	dial(t, testCtx(t), mqttc.Options{BrokerURL: b.TCPURL(), Username: "sip:bob@example.com", Password: "bob-pw"})
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// ID-005 for MQTT 5 clients: a denied QoS 1 publish gets PUBACK 0x87 (the client
// stays connected), and a will breaking the rule gets CONNACK 0x87.
func TestSecureMQTT5Answers(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	conn, err := net.Dial("tcp", f.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 5, clientID: "alice5", keepalive: 30,
		username: strPtr("alice"), password: strPtr("alice-pw")}); code != 0 {
		t.Fatalf("Expected CONNACK 0x00, Actual 0x%02x", code)
	}
	rawPublish := func(topic string, id uint16) (byte, []byte) {
		t.Helper()
		body := append(mqttString(topic), byte(id>>8), byte(id), 0) // packet ID, no properties
		body = append(body, "x"...)
		pk := append(append([]byte{0x32}, varint(len(body))...), body...) // PUBLISH QoS 1
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(pk); err != nil {
			t.Fatal(err)
		}
		typ, ack, err := readPacket(conn)
		if err != nil {
			t.Fatalf("publish %q: Expected PUBACK, Actual %v", topic, err)
		}
		return typ, ack
	}
	typ, ack := rawPublish(f.path+"sphere/bob", 7)
	if typ != 0x40 || len(ack) < 3 || ack[0] != 0 || ack[1] != 7 || ack[2] != 0x87 {
		t.Errorf("denied publish: Expected PUBACK (0x40) for ID 7 with reason 0x87, Actual type 0x%02x % x", typ, ack)
	}
	typ, ack = rawPublish(f.path+"sphere/alice", 8)
	if typ != 0x40 || len(ack) < 2 || ack[0] != 0 || ack[1] != 8 || (len(ack) > 2 && ack[2] != 0) {
		t.Errorf("allowed publish after a denied one: Expected PUBACK (0x40) for ID 8, success, Actual type 0x%02x % x", typ, ack)
	}

	conn2, err := net.Dial("tcp", f.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if code := rawHandshake(t, conn2, rawConnect{protoName: "MQTT", level: 5, clientID: "alice5w", keepalive: 30,
		will: true, willTopic: f.path + "sphere/bob", username: strPtr("alice"), password: strPtr("alice-pw")}); code != 0x87 {
		t.Errorf("will on another's topic: Expected CONNACK 0x87, Actual 0x%02x", code)
	}
}
