package broker_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	paho "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// rtcommJSClientID has the shape of rtcomm.js's generated client ID
// (MqttConnection.js, generateClientID: 22 characters from A-Y and 0-9).
const rtcommJSClientID = "K3Q9X1BD7M0PLV2RTA8C4Y"

// persistent connects a clean=false MQTT 3.1.1 client (mqttc is always clean) whose
// inbox messages go to the returned channel.
func persistent(t *testing.T, url, clientID, user, pw, inbox string) (pahomqtt.Client, <-chan pahomqtt.Message, error) {
	t.Helper()
	ch := make(chan pahomqtt.Message, 64)
	o := pahomqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(false).
		SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ pahomqtt.Client, m pahomqtt.Message) { ch <- m })
	c := pahomqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, nil, errors.Join(errors.New("connect "+clientID+" as "+user), tok.Error())
	}
	if inbox != "" {
		if tok := c.Subscribe(inbox, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			c.Disconnect(0)
			return nil, nil, errors.Join(errors.New("subscribe "+inbox), tok.Error())
		}
	}
	return c, ch, nil
}

// ID-010: a CONNECT with another user's client ID is refused at CONNECT, and the
// holder of that ID notices nothing: still connected, no will fired, presence kept.
func TestSecureClientIDTakeoverRefused(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	mon := dial(t, ctx, f.opts(f.b.TCPURL(), "connector"))
	sphere := subscribe(t, ctx, mon, p+"sphere/#", 1)
	inbox := subscribe(t, ctx, mon, p+"connector/#", 1)

	ao := f.opts(f.b.TCPURL(), "alice")
	ao.ClientID = rtcommJSClientID
	ao.ProtocolVersion = 3
	ao.Will = &mqttc.Will{Topic: p + "sphere/alice", Retained: true, QoS: 1}
	alice := dial(t, ctx, ao)
	publish(t, ctx, alice, p+"sphere/alice", 1, true, "doc")
	expect(t, sphere, p+"sphere/alice", "doc")

	for _, url := range []string{f.b.TCPURL(), f.b.WSURL()} {
		for _, v := range []uint{3, 4} {
			bo := f.opts(url, "bob")
			bo.ClientID, bo.ProtocolVersion = rtcommJSClientID, v
			c, err := mqttc.Dial(ctx, bo)
			if err == nil {
				c.Close()
				t.Fatalf("bob with alice's client ID over %s (v%d): Expected CONNECT refused, Actual accepted", url, v)
			}
			errIs(t, err, paho.ErrorRefusedIDRejected, "bob with alice's client ID")
		}
	}
	// MQTT 5: CONNACK 0x85.
	conn, err := net.Dial("tcp", f.b.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 5, clientID: rtcommJSClientID, keepalive: 30,
		username: strPtr("bob"), password: strPtr("bob-pw")}); code != 0x85 {
		t.Errorf("MQTT 5 takeover: Expected CONNACK 0x85, Actual 0x%02x", code)
	}

	// No side effect: no will, alice still connected and publishing, presence retained.
	expectNone(t, sphere, "alice's will after refused takeovers")
	if !alice.Connected() {
		t.Fatal("Expected alice still connected, Actual disconnected")
	}
	publish(t, ctx, alice, p+"connector/alice", 1, false, "still here")
	expect(t, inbox, p+"connector/alice", "still here")
	late := dial(t, ctx, f.opts(f.b.TCPURL(), "bob"))
	kept := subscribe(t, ctx, late, p+"sphere/alice", 1)
	expect(t, kept, p+"sphere/alice", "doc")

	// The same user may take its own session over (a reload of the page).
	ao.Will = nil
	dial(t, ctx, ao)
}

// ID-010, ID-012: client IDs that name a user are that user's even when nobody holds them;
// that is what keeps the connector's identity free for the connector.
func TestSecureNamedClientIDs(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		user, clientID string
		ok             bool
	}{
		{"bob", "alice", false},
		{"bob", "alice:phone", false},
		{"bob", f.path + "alice", false}, // rtcomm.js with myTopic = its inbox
		{"bob", "connector", false},
		{"bob", "connector:rtcconn-1", false},
		{"bob", "sip:carol@example.com:2", false}, // longest match: carol, not a user "sip"
		{"alice", "alice:phone", true},
		{"alice", f.path + "alice", true},
		{"sip:carol@example.com", "sip:carol@example.com:tab1", true},
		{"connector", "connector:rtcconn-1", true},
		{"alice", "Alice", true}, // IDs are case-sensitive: "Alice" names nobody
	} {
		o := f.opts(f.b.TCPURL(), tc.user)
		o.ClientID = tc.clientID
		c, err := mqttc.Dial(ctx, o)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s as %q: Expected accepted, Actual %v", tc.user, tc.clientID, err)
		case !tc.ok && err == nil:
			t.Errorf("%s as %q: Expected refused, Actual accepted", tc.user, tc.clientID)
		case !tc.ok:
			errIs(t, err, paho.ErrorRefusedIDRejected, tc.user+" as "+tc.clientID)
		}
		if c != nil {
			c.Close()
		}
	}
}

// ID-010 with ClientIDsUser: only IDs that name the connecting user.
func TestSecureClientIDRuleUser(t *testing.T) {
	t.Parallel()
	path := uniquePath()
	b := startBroker(t, broker.Config{Secure: true, TopicPath: path, ClientIDs: broker.ClientIDsUser,
		Credentials: map[string]string{"connector": "conn-pw", "alice": "alice-pw"}, ConnectorUser: "connector"})
	ctx := testCtx(t)
	for id, ok := range map[string]bool{"alice": true, "alice:x": true, path + "alice": true, rtcommJSClientID: false, "": false} {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: id, Username: "alice", Password: "alice-pw"})
		if id == "" {
			// mqttc fills in a random ID: send an empty one by hand.
			conn, derr := net.Dial("tcp", b.TCPAddr())
			if derr != nil {
				t.Fatal(derr)
			}
			code := rawHandshake(t, conn, rawConnect{protoName: "MQTT", level: 4, keepalive: 30,
				username: strPtr("alice"), password: strPtr("alice-pw")})
			conn.Close()
			if code != 0x02 {
				t.Errorf("empty client ID: Expected CONNACK 0x02, Actual 0x%02x", code)
			}
			continue
		}
		if (err == nil) != ok {
			t.Errorf("alice as %q: Expected accepted=%v, Actual error %v", id, ok, err)
		}
		if c != nil {
			c.Close()
		}
	}
	if _, err := broker.Start(context.Background(), broker.Config{Secure: true, ClientIDs: "anything",
		Credentials: map[string]string{"a": "b"}}); err == nil || !strings.Contains(err.Error(), "client-ID rule") {
		t.Errorf("unknown rule: Expected a config error naming the client-ID rule, Actual %v", err)
	}
}

// ID-011: a persistent session's queued messages go to nobody but its user. bob
// cannot resume alice's clean=false session; alice can, and gets what was queued
// (the control: there was a queue to steal).
func TestSecurePersistentSessionTheft(t *testing.T) {
	t.Parallel()
	f := startSecure(t)
	ctx := testCtx(t)
	p := f.path
	const cid = "alice-persistent-1" // names no user: bound to its holder
	a, _, err := persistent(t, f.b.TCPURL(), cid, "alice", "alice-pw", p+"alice/#")
	if err != nil {
		t.Fatal(err)
	}
	a.Disconnect(100)
	conn := dial(t, ctx, f.opts(f.b.TCPURL(), "connector"))
	publish(t, ctx, conn, p+"alice/connector", 1, false, "queued for alice")

	if c, _, err := persistent(t, f.b.TCPURL(), cid, "bob", "bob-pw", ""); err == nil {
		c.Disconnect(0)
		t.Fatal("bob resuming alice's session: Expected CONNECT refused, Actual accepted")
	}
	c, ch, err := persistent(t, f.b.TCPURL(), cid, "alice", "alice-pw", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	select {
	case m := <-ch:
		if string(m.Payload()) != "queued for alice" {
			t.Errorf("Expected the queued message, Actual %q on %q", m.Payload(), m.Topic())
		}
	case <-time.After(5 * time.Second):
		t.Error("alice resuming: Expected the queued message, Actual nothing in 5s")
	}
}

// Roles in the credentials file: "+call-controller <user>" lines (REF: serve
// --credentials); bad role lines are errors naming the line.
func TestLoadCredentialsRoles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f, err := broker.LoadCredentialsFile(write("ok", "connector:c\nops:o\nsip:bob@x:b\n+call-controller ops\n  +call-controller sip:bob@x \n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Roles[broker.RoleCallController]; len(got) != 2 || got[0] != "ops" || got[1] != "sip:bob@x" {
		t.Errorf("Expected call controllers [ops sip:bob@x], Actual %q", got)
	}
	for name, text := range map[string]string{
		"unknown role": "a:b\n+admin a\n",
		"unknown user": "a:b\n+call-controller nobody\n",
	} {
		if _, err := broker.LoadCredentialsFile(write(name, text)); err == nil || !strings.Contains(err.Error(), ":2:") {
			t.Errorf("%s: Expected an error naming line 2, Actual %v", name, err)
		}
	}
}

// ID-012: no user may be named like one of the connector's client IDs.
func TestConnectorClientIDSpaceReserved(t *testing.T) {
	t.Parallel()
	_, err := broker.Start(context.Background(), broker.Config{Secure: true, ConnectorUser: "connector",
		Credentials: map[string]string{"connector": "c", "connector:replica-9": "x"}})
	if err == nil || !strings.Contains(err.Error(), "connector:replica-9") {
		t.Errorf("Expected a config error naming user connector:replica-9, Actual %v", err)
	}
}
