package mqttc_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestPublishSubscribeOrdered(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 100)
	if err := sub.Subscribe(ctx, "/t/inbox/#", 1, func(m mqttc.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	pub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := 0; i < 50; i++ {
		if err := pub.Publish(ctx, "/t/inbox/alice", 1, false, []byte{byte('0' + i%10)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		select {
		case p := <-got:
			if want := string([]byte{byte('0' + i%10)}); p != want {
				t.Fatalf("message %d: expected %q, actual %q (order broken)", i, want, p)
			}
		case <-ctx.Done():
			t.Fatalf("received %d of 50 messages", i)
		}
	}
}

func TestKillFiresWillCloseDoesNot(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	wills := make(chan string, 4)
	if err := mon.Subscribe(ctx, "/t/sphere/+", 1, func(m mqttc.Message) {
		if len(m.Payload) == 0 {
			wills <- m.Topic
		}
	}); err != nil {
		t.Fatal(err)
	}
	dial := func(id string) *mqttc.Client {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: id,
			Will: &mqttc.Will{Topic: "/t/sphere/" + id, QoS: 1, Retained: true}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	clean, killed := dial("clean"), dial("killed")
	clean.Close()
	killed.Kill()
	select {
	case topic := <-wills:
		if topic != "/t/sphere/killed" {
			t.Fatalf("expected the will of the killed client, actual a will on %s", topic)
		}
	case <-ctx.Done():
		t.Fatal("expected a will after Kill, none arrived")
	}
	select {
	case topic := <-wills:
		t.Fatalf("expected no will after a clean Close, actual one on %s", topic)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestRandomClientIDFitsMQTT31(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "ep", "a-very-long-prefix-indeed"} {
		if id := mqttc.RandomClientID(p); len(id) != 23 {
			t.Errorf("RandomClientID(%q) = %q: expected 23 characters, actual %d", p, id, len(id))
		}
	}
	if mqttc.RandomClientID("x") == mqttc.RandomClientID("x") {
		t.Error("expected two random IDs to differ")
	}
}
