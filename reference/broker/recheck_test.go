package broker

import (
	"context"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// ID-011, second line: a persistent session about to be resumed loses the queued messages
// and subscriptions the resuming user's ACL refuses (recheckInherited), and keeps the rest.
func TestRecheckInherited(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, Config{Secure: true, TopicPath: "/rc/", ConnectorUser: "connector",
		Credentials: map[string]string{"connector": "c", "alice": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := pahomqtt.NewClientOptions().AddBroker(b.TCPURL()).SetClientID("keep-1").SetCleanSession(false).
		SetUsername("alice").SetPassword("a").SetAutoReconnect(false)
	a := pahomqtt.NewClient(o)
	if tok := a.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for _, f := range []string{"/rc/alice/#", "/rc/sphere/#"} {
		if tok := a.Subscribe(f, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	a.Disconnect(100)
	c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Username: "connector", Password: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, topic := range []string{"/rc/alice/x", "/rc/sphere/bob"} {
		if err := c.Publish(ctx, topic, 1, false, []byte("q")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl, ok := b.srv.Clients.Get("keep-1")
		if ok && cl.State.Inflight.Len() == 2 {
			// Pretend the ACL now refuses presence: what lies there must go, the inbox stays.
			recheckInherited(b.srv, cl, func(topic string) bool { return topic == "/rc/alice/x" || topic == "/rc/alice/#" })
			if n := cl.State.Inflight.Len(); n != 1 {
				t.Errorf("queued messages after the recheck: Expected 1 (the inbox one), Actual %d", n)
			}
			if _, ok := cl.State.Subscriptions.Get("/rc/sphere/#"); ok {
				t.Error("Expected the refused subscription removed, Actual still there")
			}
			if _, ok := cl.State.Subscriptions.Get("/rc/alice/#"); !ok {
				t.Error("Expected the allowed subscription kept, Actual removed")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Expected alice's persisted session with 2 queued messages, Actual found=%v", ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A persistent session left behind is dropped after SessionExpiry, not kept for ever.
func TestPersistentSessionsExpire(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, Config{SessionExpiry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := pahomqtt.NewClient(pahomqtt.NewClientOptions().AddBroker(b.TCPURL()).SetClientID("left-behind").
		SetCleanSession(false).SetAutoReconnect(false))
	if tok := a.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	a.Disconnect(100)
	if _, ok := b.srv.Clients.Get("left-behind"); !ok {
		t.Fatal("Expected the persistent session kept right after the disconnect, Actual gone")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := b.srv.Clients.Get("left-behind"); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Expected the session dropped after SessionExpiry (1 s), Actual still there after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
