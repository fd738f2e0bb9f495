package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// recordHook notes, per hook, which client IDs (and users) the broker reported.
type recordHook struct {
	mqtt.HookBase
	mu        sync.Mutex
	published map[string]int // client ID -> PUBLISHes seen by OnPublish
	users     map[string]string
	subscribe map[string][]string
	sent      map[string]int // client ID -> PUBLISHes seen by OnPacketSent
	gone      map[string]int
}

func newRecordHook() *recordHook {
	return &recordHook{published: map[string]int{}, users: map[string]string{}, subscribe: map[string][]string{},
		sent: map[string]int{}, gone: map[string]int{}}
}

func (h *recordHook) ID() string { return "record" }
func (h *recordHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnSubscribe || b == mqtt.OnPacketSent || b == mqtt.OnDisconnect
}
func (h *recordHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published[cl.ID]++
	h.users[cl.ID] = string(cl.Properties.Username)
	return pk, nil
}
func (h *recordHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range pk.Filters {
		h.subscribe[cl.ID] = append(h.subscribe[cl.ID], f.Filter)
	}
	return pk
}
func (h *recordHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.mu.Lock()
		h.sent[cl.ID]++
		h.mu.Unlock()
	}
}
func (h *recordHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	h.gone[cl.ID]++
	h.mu.Unlock()
}
func (h *recordHook) count(m map[string]int, id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return m[id]
}

// sharesPacket reports whether topic's bytes lie just before payload's in one buffer, as mochi
// decodes a PUBLISH (topic, packet ID, payload) without copying.
func sharesPacket(topic string, payload []byte) bool {
	if len(topic) == 0 || len(payload) == 0 {
		return false
	}
	end := uintptr(unsafe.Pointer(unsafe.StringData(topic))) + uintptr(len(topic))
	start := uintptr(unsafe.Pointer(&payload[0]))
	return end <= start && start-end <= 2
}

func startLocalTest(t *testing.T, cfg Config) *Broker {
	t.Helper()
	cfg.WSAddr = Off
	b, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("expected %s within 10s", what)
}

// TestLocalClientRelay: a socket client publishes 3,000 QoS 1 messages to the in-process
// client, which relays each to a socket subscriber from its handler (publishing into the
// broker from the delivering goroutine, as the connector does). Every message arrives once,
// in order, in both directions; the hooks see the in-process client under its own client ID
// (OnPublish, OnSubscribe, OnPacketSent), and no QoS 1 delivery is left in flight.
func TestLocalClientRelay(t *testing.T) {
	t.Parallel()
	rec := newRecordHook()
	b := startLocalTest(t, Config{Hooks: []mqtt.Hook{rec}})
	ctx := ctxFor(t)
	lc, err := b.DialLocal(ctx, mqttc.Options{ClientID: "relay-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	const n = 3000
	var relayErr error
	var once, alias sync.Once
	aliased := false
	if err := lc.Subscribe(ctx, "in/#", 1, func(m mqttc.Message) {
		alias.Do(func() { aliased = sharesPacket(m.Topic, m.Payload) })
		if err := lc.Publish(ctx, "out/"+m.Topic, 1, false, m.Payload); err != nil {
			once.Do(func() { relayErr = err })
		}
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, n)
	if err := sub.Subscribe(ctx, "out/#", 1, func(m mqttc.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	pub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: "pub-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		pub.PublishAsync("in/a", 1, false, []byte(fmt.Sprint(i)))
	}
	for i := range n {
		select {
		case p := <-got:
			if p != fmt.Sprint(i) {
				t.Fatalf("message %d: expected payload %d (in order), actual %s", i, i, p)
			}
		case <-ctx.Done():
			t.Fatalf("expected %d relayed messages, actual %d", n, i)
		}
	}
	if relayErr != nil {
		t.Fatalf("relay publish: %v", relayErr)
	}
	if aliased {
		t.Error("expected the delivered topic in its own memory, actual a view into the packet buffer " +
			"(a kept sender level would keep the whole packet alive)")
	}
	if got := rec.count(rec.published, "relay-1"); got != n {
		t.Errorf("OnPublish: expected %d publishes by relay-1, actual %d", n, got)
	}
	if got := rec.count(rec.sent, "relay-1"); got != n {
		t.Errorf("OnPacketSent: expected %d deliveries to relay-1, actual %d", n, got)
	}
	rec.mu.Lock()
	subs := rec.subscribe["relay-1"]
	rec.mu.Unlock()
	if len(subs) != 1 || subs[0] != "in/#" {
		t.Errorf("OnSubscribe: expected relay-1 subscribing in/#, actual %v", subs)
	}
	waitUntil(t, "no QoS 1 delivery to the in-process client left in flight", func() bool {
		return lc.session().State.Inflight.Len() == 0
	})
	if d := b.Stats().MessagesDropped; d != 0 {
		t.Errorf("expected no dropped message, actual %d", d)
	}
}

// TestLocalClientRetainedAndWill: retained messages reach a new in-process subscription; the
// will is published when the session ends without DISCONNECT (Kill) and not after Close.
func TestLocalClientRetainedAndWill(t *testing.T) {
	t.Parallel()
	b := startLocalTest(t, Config{})
	ctx := ctxFor(t)
	pub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range 3 {
		if err := pub.Publish(ctx, fmt.Sprintf("sphere/%d", i), 1, true, []byte("doc")); err != nil {
			t.Fatal(err)
		}
	}
	wills := make(chan mqttc.Message, 4)
	if err := pub.Subscribe(ctx, "will/#", 1, func(m mqttc.Message) { wills <- m }); err != nil {
		t.Fatal(err)
	}
	for _, kill := range []bool{false, true} {
		lc, err := b.DialLocal(ctx, mqttc.Options{ClientID: fmt.Sprint("w-", kill), Will: &mqttc.Will{Topic: "will/x", QoS: 1}})
		if err != nil {
			t.Fatal(err)
		}
		retained := make(chan string, 8)
		if err := lc.Subscribe(ctx, "sphere/#", 1, func(m mqttc.Message) {
			if m.Retained {
				retained <- m.Topic
			}
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			select {
			case <-retained:
			case <-time.After(5 * time.Second):
				t.Fatalf("expected 3 retained messages on subscribing, actual %d", i)
			}
		}
		if kill {
			lc.Kill()
		} else {
			lc.Close()
		}
		select {
		case m := <-wills:
			if !kill {
				t.Fatalf("expected no will after a clean Close, actual one at %s", m.Topic)
			}
		case <-time.After(500 * time.Millisecond):
			if kill {
				t.Fatal("expected the will after Kill, actual none")
			}
		}
		if lc.Connected() {
			t.Error("expected Connected false after Close/Kill")
		}
		if err := lc.Publish(ctx, "x", 0, false, nil); !errors.Is(err, mqttc.ErrClosed) {
			t.Errorf("publish after close: expected ErrClosed, actual %v", err)
		}
	}
}

// TestLocalClientTakeoverReconnects: a socket CONNECT with the in-process client's ID takes
// its session over, as for any client (open mode); the in-process client is told (connection
// lost), reconnects, taking the ID back, and OnConnect runs so it can resubscribe.
func TestLocalClientTakeoverReconnects(t *testing.T) {
	t.Parallel()
	b := startLocalTest(t, Config{})
	ctx := ctxFor(t)
	lost, reconnected := make(chan error, 4), make(chan struct{}, 4)
	lc, err := b.DialLocal(ctx, mqttc.Options{ClientID: "conn-take", AutoReconnect: true, ReconnectJitter: 10 * time.Millisecond,
		OnConnectionLost: func(err error) { lost <- err }, OnConnect: func(*mqttc.Client) { reconnected <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	thief, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: "conn-take"})
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("expected the in-process client to see its session taken over")
	}
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("expected the in-process client to reconnect and run OnConnect")
	}
	if !lc.Connected() {
		t.Error("expected Connected after the reconnect")
	}
}

// TestLocalClientSecure: in secure mode the in-process client authenticates like any other
// (a wrong password is refused) and the identity ACLs apply to it: an ordinary user cannot
// publish under another sender's level through the link (acknowledged and discarded, as over
// a socket, ID-005), while the connector user may.
func TestLocalClientSecure(t *testing.T) {
	t.Parallel()
	path := "/sec/"
	b := startLocalTest(t, Config{Secure: true, TopicPath: path, ConnectorUser: "connector",
		Credentials: map[string]string{"connector": "pw-c", "alice": "pw-a", "bob": "pw-b"}})
	ctx := ctxFor(t)
	if _, err := b.DialLocal(ctx, mqttc.Options{ClientID: "connector:1", Username: "connector", Password: "wrong"}); err == nil {
		t.Fatal("expected a wrong password refused on the in-process link")
	}
	if _, err := b.DialLocal(ctx, mqttc.Options{ClientID: "connector:2", Username: "alice", Password: "pw-a"}); err == nil {
		t.Fatal("expected alice refused a client ID naming the connector user")
	}
	bob, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), ClientID: "bob", Username: "bob", Password: "pw-b"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	got := make(chan string, 4)
	if err := bob.Subscribe(ctx, path+"bob/#", 1, func(m mqttc.Message) { got <- m.Topic }); err != nil {
		t.Fatal(err)
	}
	alice, err := b.DialLocal(ctx, mqttc.Options{ClientID: "alice", Username: "alice", Password: "pw-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Publish(ctx, path+"bob/carol", 1, false, []byte("x")); err != nil {
		t.Fatalf("expected alice's publish as carol acknowledged (and discarded), actual %v", err)
	}
	conn, err := b.DialLocal(ctx, mqttc.Options{ClientID: "connector:3", Username: "connector", Password: "pw-c"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Publish(ctx, path+"bob/connector:3", 1, false, []byte("y")); err != nil {
		t.Fatal(err)
	}
	select {
	case tp := <-got:
		if tp != path+"bob/connector:3" {
			t.Fatalf("expected only the connector's message at bob, actual one at %s", tp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("expected the connector's message at bob")
	}
}
