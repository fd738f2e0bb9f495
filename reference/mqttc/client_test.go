package mqttc_test

import (
	"context"
	"io"
	"net"
	"sync"
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

// TestReconnectJitterSpreadsClients cuts the connections of 20 auto-reconnecting clients at
// once (a proxy between them and the broker drops every socket and keeps accepting): with
// ReconnectJitter their reconnects spread over the jitter window; without it paho reconnects
// them all within milliseconds, which the test checks too so that it can tell the two apart.
func TestReconnectJitterSpreadsClients(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	spans := map[time.Duration]time.Duration{}
	for _, jitter := range []time.Duration{-1, time.Second} {
		spans[jitter] = reconnectSpread(t, b.TCPAddr(), jitter)
	}
	t.Logf("reconnect spread: %s without jitter, %s with 1s jitter", spans[-1], spans[time.Second])
	if s := spans[-1]; s > 250*time.Millisecond {
		t.Errorf("without jitter: expected reconnects within 250ms of each other (what the test compares with), actual %s", s)
	}
	// 20 uniform draws over 1 s all within 400 ms of each other: probability below 1e-6.
	if s := spans[time.Second]; s < 400*time.Millisecond {
		t.Errorf("with 1s jitter: expected reconnects spread over the window, actual all within %s", s)
	}
}

// reconnectSpread connects 20 clients through a cuttable proxy, cuts every connection at
// once and returns the time between the first and the last reconnect.
func reconnectSpread(t *testing.T, brokerAddr string, jitter time.Duration) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	px := startCutProxy(t, brokerAddr)
	const n = 20
	reconnected := make(chan time.Time, n)
	for i := range n {
		connects := 0
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: "tcp://" + px.addr(), AutoReconnect: true, ReconnectJitter: jitter,
			OnConnect: func(*mqttc.Client) {
				if connects++; connects > 1 { // OnConnect never runs concurrently for one client
					reconnected <- time.Now()
				}
			}})
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
	}
	px.cut()
	var first, last time.Time
	for i := range n {
		select {
		case at := <-reconnected:
			if i == 0 || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		case <-ctx.Done():
			t.Fatalf("jitter %s: %d of %d clients reconnected", jitter, i, n)
		}
	}
	return last.Sub(first)
}

// cutProxy relays TCP connections to a broker; cut drops every relayed connection at once
// while the listener keeps accepting, as a network failure between clients and broker would.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
