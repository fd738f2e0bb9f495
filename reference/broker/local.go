package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// InProcessListener is the listener ID the broker's hooks see on in-process clients (DialLocal).
const InProcessListener = "in-process"

// LocalClient is an MQTT client inside the broker's own process (DialLocal): the reference
// connector of `serve`, `load` and the embedded test target talks to its broker through it
// instead of a loopback socket. It offers what the connector uses of *mqttc.Client, with the
// same contract: handlers run one at a time in arrival order; Publish returns once the broker
// has taken the message (QoS 0) or acknowledged it (QoS 1).
//
// What the broker sees is what it sees of a socket client (mochipatch/local.go): a CONNECT with
// the client ID, username, password and will of Options, authenticated and checked by the same
// hooks, every PUBLISH, SUBSCRIBE and UNSUBSCRIBE through OnPacketRead, the ACLs and OnPublish,
// deliveries through the client's queue (and OnPacketSent). Nothing is bypassed: in secure mode
// the connector still authenticates as ConnectorUser. What it saves per message, each way: the
// encode and decode, a write and a read syscall, and paho's goroutine hand-offs
// (docs/PERFORMANCE.md, "In-process connector link").
type LocalClient struct {
	b   *Broker
	o   mqttc.Options
	log *slog.Logger

	subs atomic.Pointer[[]localSub] // copy on write: Deliver reads it without a lock

	mu     sync.Mutex // guards cl, ended, closed, subsMu's writers
	cl     *mqtt.Client
	ended  <-chan struct{} // closed once the current session's end is processed
	closed bool
	done   chan struct{} // closed by Close and Kill: ends a reconnect wait

	// inject serialises the client's packets into the broker, as a connection's one read
	// loop does; ack is the answer to the packet being injected (Control runs synchronously
	// inside the inject, in the same goroutine, for everything but a takeover's DISCONNECT).
	inject sync.Mutex
	ackMu  sync.Mutex
	ackID  uint16
	ackTyp byte
	ack    *packets.Packet
	nextID uint16
}

// localSub is one subscription's handler; match is the filter without a $share/<group>/ prefix.
type localSub struct {
	filter, match string
	h             mqttc.Handler
}

// closedCh is returned by PublishAsync: the message was handed over before it returned.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// DialLocal connects an in-process client to the broker with o's client ID, username,
// password, will, protocol version (default 4, MQTT 3.1.1) and reconnect settings; BrokerURL
// and TLSConfig are not used. With AutoReconnect, a session the broker ends (a takeover by a
// CONNECT with the same client ID, a refused packet) is re-established after a random delay of
// up to ReconnectJitter (default 1 s), then OnConnect runs, as paho does; the broker closing
// ends it for good.
func (b *Broker) DialLocal(ctx context.Context, o mqttc.Options) (*LocalClient, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("in-process dial: %w", err)
	}
	if o.ClientID == "" {
		o.ClientID = mqttc.RandomClientID("c")
	}
	if o.ProtocolVersion == 0 {
		o.ProtocolVersion = 4
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ReconnectJitter == 0 {
		o.ReconnectJitter = time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lc := &LocalClient{b: b, o: o, log: log, done: make(chan struct{})}
	lc.subs.Store(&[]localSub{})
	if err := lc.connect(); err != nil {
		return nil, fmt.Errorf("in-process connect as %q: %w", o.ClientID, err)
	}
	b.addLocal(lc)
	return lc, nil
}

// connect attaches a new session to the broker.
func (lc *LocalClient) connect() error {
	if lc.b.closing.Load() {
		return mqttc.ErrClosed
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: byte(lc.o.ProtocolVersion)}
	pk.Connect.ProtocolName = []byte("MQTT")
	if lc.o.ProtocolVersion == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	pk.Connect.Clean = !lc.o.Persistent
	pk.Connect.ClientIdentifier = lc.o.ClientID
	pk.Connect.Keepalive = uint16(lc.o.KeepAlive / time.Second)
	if lc.o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(lc.o.Username)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(lc.o.Password)
	}
	if w := lc.o.Will; w != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, w.Topic, w.Payload
		pk.Connect.WillQos, pk.Connect.WillRetain = w.QoS, w.Retained
	}
	lc.inject.Lock()
	defer lc.inject.Unlock()
	cl, ended, err := lc.b.srv.ConnectLocal(InProcessListener, pk, localSink{lc})
	if err != nil {
		return err
	}
	lc.mu.Lock()
	lc.cl, lc.ended = cl, ended
	lc.mu.Unlock()
	go lc.watch(cl, ended)
	return nil
}

// watch waits for a session's end; with AutoReconnect it reconnects unless Close ended it.
func (lc *LocalClient) watch(cl *mqtt.Client, ended <-chan struct{}) {
	<-ended
	lc.mu.Lock()
	closed := lc.closed
	lc.mu.Unlock()
	if closed {
		return
	}
	err := cl.StopCause()
	lc.log.Debug("in-process connection lost", "client", lc.o.ClientID, "err", err)
	if lc.o.OnConnectionLost != nil {
		lc.o.OnConnectionLost(fmt.Errorf("in-process session ended: %w", err))
	}
	if !lc.o.AutoReconnect {
		return
	}
	for backoff := time.Second; ; backoff = min(2*backoff, 5*time.Second) {
		if lc.o.ReconnectJitter > 0 && !lc.wait(rand.N(lc.o.ReconnectJitter)) {
			return
		}
		err := lc.connect()
		if err == nil {
			break
		}
		if errors.Is(err, mqttc.ErrClosed) {
			return
		}
		lc.log.Debug("in-process reconnect failed", "client", lc.o.ClientID, "err", err)
		if !lc.wait(backoff) {
			return
		}
	}
	if lc.o.OnConnect != nil {
		go lc.o.OnConnect(nil) // paho runs it in its own goroutine too; its *mqttc.Client is paho's
	}
}

// wait sleeps d or until Close; false means closed.
func (lc *LocalClient) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-lc.done:
		return false
	}
}

// session returns the current session, nil when there is none.
func (lc *LocalClient) session() *mqtt.Client {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.closed || lc.cl == nil || lc.cl.Closed() {
		return nil
	}
	return lc.cl
}

// ID returns the MQTT client ID.
func (lc *LocalClient) ID() string { return lc.o.ClientID }

// Connected reports whether the session is up.
func (lc *LocalClient) Connected() bool { return lc.session() != nil }

// send injects pk (a packet ID is assigned when it needs one) and, when want is not zero,
// returns the broker's answer of that type.
func (lc *LocalClient) send(pk packets.Packet, want byte) (packets.Packet, error) {
	lc.inject.Lock()
	defer lc.inject.Unlock()
	cl := lc.session()
	if cl == nil {
		return packets.Packet{}, mqttc.ErrClosed
	}
	if want != 0 {
		lc.nextID++
		if lc.nextID == 0 {
			lc.nextID = 1
		}
		pk.PacketID = lc.nextID
		lc.ackMu.Lock()
		lc.ackID, lc.ackTyp, lc.ack = pk.PacketID, want, nil
		lc.ackMu.Unlock()
	}
	err := lc.b.srv.InjectLocal(cl, pk)
	if want == 0 {
		return packets.Packet{}, err
	}
	lc.ackMu.Lock()
	ack := lc.ack
	lc.ackTyp, lc.ack = 0, nil
	lc.ackMu.Unlock()
	if err != nil {
		return packets.Packet{}, err
	}
	if ack == nil {
		return packets.Packet{}, errors.New("the broker did not answer (session ended)")
	}
	return *ack, nil
}

// Publish sends one message; with QoS 1 it returns after the broker's PUBACK.
func (lc *LocalClient) Publish(_ context.Context, topic string, qos byte, retained bool, payload []byte) error {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retained},
		TopicName: topic, Payload: payload}
	if qos > 1 {
		return fmt.Errorf("publish %s: QoS %d: the in-process link offers QoS 0 and 1 (what the connector uses)", topic, qos)
	}
	var want byte
	if qos == 1 {
		want = packets.Puback
	}
	if _, err := lc.send(pk, want); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// PublishAsync publishes; the broker has the message when it returns, so the channel is
// already closed. An error is logged, as paho's asynchronous token would carry it.
func (lc *LocalClient) PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{} {
	if err := lc.Publish(context.Background(), topic, qos, retained, payload); err != nil {
		lc.log.Debug("in-process publish failed", "client", lc.o.ClientID, "err", err)
	}
	return closedCh
}

// Subscribe adds a subscription and returns after SUBACK; a refusal (0x80) is
// mqttc.ErrSubscriptionRefused. QoS 2 is asked as 1 (the link has no QoS 2 handshake). The handler is in place before the SUBSCRIBE, so retained
// messages the broker sends right after the SUBACK reach it.
func (lc *LocalClient) Subscribe(_ context.Context, filter string, qos byte, h mqttc.Handler) error {
	match := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			match = f
		}
	}
	qos = min(qos, 1)
	lc.setSub(filter, &localSub{filter: filter, match: match, h: h})
	ack, err := lc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}, packets.Suback)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] >= 0x80 {
		return fmt.Errorf("subscribe %s: %w", filter, mqttc.ErrSubscriptionRefused)
	}
	return nil
}

// Unsubscribe removes subscriptions and returns after UNSUBACK.
func (lc *LocalClient) Unsubscribe(_ context.Context, filters ...string) error {
	subs := make(packets.Subscriptions, len(filters))
	for i, f := range filters {
		subs[i] = packets.Subscription{Filter: f}
	}
	if _, err := lc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
		Filters: subs}, packets.Unsuback); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", strings.Join(filters, ","), err)
	}
	for _, f := range filters {
		lc.setSub(f, nil)
	}
	return nil
}

// setSub replaces (s nil: removes) the handler of filter, keeping subscription order.
func (lc *LocalClient) setSub(filter string, s *localSub) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	old := *lc.subs.Load()
	subs := make([]localSub, 0, len(old)+1)
	for _, o := range old {
		if o.filter != filter {
			subs = append(subs, o)
		}
	}
	if s != nil {
		subs = append(subs, *s)
	}
	lc.subs.Store(&subs)
}

// Close disconnects cleanly (DISCONNECT: the broker discards the will) and returns once the
// broker has ended the session.
func (lc *LocalClient) Close() {
	if !lc.markClosed() {
		return
	}
	lc.inject.Lock()
	lc.mu.Lock()
	cl, ended := lc.cl, lc.ended
	lc.mu.Unlock()
	if cl != nil && !cl.Closed() {
		_ = lc.b.srv.InjectLocal(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	}
	lc.inject.Unlock()
	lc.awaitEnd(ended)
	lc.b.removeLocal(lc)
}

// Kill ends the session without DISCONNECT, as a crashed client would: the broker publishes
// the will.
func (lc *LocalClient) Kill() {
	if !lc.markClosed() {
		return
	}
	lc.mu.Lock()
	cl, ended := lc.cl, lc.ended
	lc.mu.Unlock()
	if cl != nil {
		cl.Stop(errors.New("in-process client killed"))
	}
	lc.awaitEnd(ended)
	lc.b.removeLocal(lc)
}

// markClosed marks the client closed; false if it already was.
func (lc *LocalClient) markClosed() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.closed {
		return false
	}
	lc.closed = true
	close(lc.done)
	return true
}

// awaitEnd waits (boundedly) until the broker has processed the session's end (will, hooks).
func (lc *LocalClient) awaitEnd(ended <-chan struct{}) {
	if ended == nil {
		return
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		lc.log.Warn("in-process session did not end within 5s", "client", lc.o.ClientID)
	}
}

// stopByBroker ends the session because the broker is closing (no reconnect: connect refuses).
func (lc *LocalClient) stopByBroker() {
	lc.mu.Lock()
	cl, ended := lc.cl, lc.ended
	lc.mu.Unlock()
	if cl != nil {
		cl.Stop(packets.ErrServerShuttingDown)
	}
	lc.awaitEnd(ended)
}

// localSink is what the broker writes to a LocalClient.
type localSink struct{ lc *LocalClient }

// Deliver runs the handlers of every subscription matching the topic (as paho's router
// does), then acknowledges a QoS 1 delivery, as paho does once its handler returned.
func (s localSink) Deliver(cl *mqtt.Client, pk packets.Packet) {
	lc := s.lc
	// The topic is cloned: mochi decodes it without a copy, so it points into the buffer of the
	// whole packet it was read in, and a handler that keeps any part of it (the connector keys
	// its rate limiter and sessions by the sender level) would keep that buffer, payload and
	// all, alive (an SDP of 5 KB per stored sender in the first measurement). The payload is
	// shared with the other subscribers' deliveries, never written to (mochipatch/local.go).
	m := mqttc.Message{Topic: strings.Clone(pk.TopicName), Payload: pk.Payload, Retained: pk.FixedHeader.Retain, QoS: pk.FixedHeader.Qos}
	routed := false
	for _, sub := range *lc.subs.Load() {
		if mqttc.Match(sub.match, pk.TopicName) {
			routed = true
			sub.h(m)
		}
	}
	if !routed {
		if lc.o.OnUnrouted != nil {
			lc.o.OnUnrouted(m)
		} else {
			lc.log.Debug("in-process message without a handler", "client", lc.o.ClientID, "topic", pk.TopicName)
		}
	}
	if pk.FixedHeader.Qos == 0 {
		return
	}
	lc.inject.Lock()
	if !cl.Closed() { // QoS 1 at most: Subscribe asks for no more
		_ = lc.b.srv.InjectLocal(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	lc.inject.Unlock()
}

// Control records the broker's answer to the packet being injected.
func (s localSink) Control(_ *mqtt.Client, pk packets.Packet) {
	lc := s.lc
	lc.ackMu.Lock()
	defer lc.ackMu.Unlock()
	if lc.ackTyp != 0 && pk.FixedHeader.Type == lc.ackTyp && pk.PacketID == lc.ackID {
		lc.ack = &pk
	}
}

// addLocal and removeLocal track the in-process clients, so Close can end them.
func (b *Broker) addLocal(lc *LocalClient) {
	b.localMu.Lock()
	defer b.localMu.Unlock()
	if b.locals == nil {
		b.locals = map[*LocalClient]bool{}
	}
	b.locals[lc] = true
}

func (b *Broker) removeLocal(lc *LocalClient) {
	b.localMu.Lock()
	defer b.localMu.Unlock()
	delete(b.locals, lc)
}

// closeLocals ends every in-process client's session (Close): they see the connection lost.
func (b *Broker) closeLocals() {
	b.closing.Store(true)
	b.localMu.Lock()
	locals := make([]*LocalClient, 0, len(b.locals))
	for lc := range b.locals {
		locals = append(locals, lc)
	}
	b.localMu.Unlock()
	for _, lc := range locals {
		lc.stopByBroker()
	}
}
