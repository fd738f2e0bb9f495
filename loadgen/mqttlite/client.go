// Package mqttlite is a small MQTT 3.1/3.1.1 client for the load generator's simulated
// endpoints: one goroutine per connection (the reader, which also runs the handlers),
// writes batched through a buffer that the sending goroutine flushes once nothing more is
// queued, QoS 0 and 1, keepalive, and no reconnect. Packets are encoded and decoded by
// mochi-mqtt's packets package (the broker's own codec).
//
// It offers what reference/endpoint needs of a connection (endpoint.Conn), so a simulated
// endpoint keeps the reference endpoint's session logic and the generator's accounting;
// only the transport under it changes. paho (reference/mqttc) remains the client of the
// scenarios, the reference connector and `load --client paho`: it has ~10 goroutines and a
// write syscall per packet per connection, which is what this package exists to avoid.
package mqttlite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// Options configure a connection: the MQTT options every client of the harness takes, plus
// the local address to dial from.
type Options struct {
	mqttc.Options
	// LocalIP, when set, is the source address of the TCP connection (e.g. 127.0.0.2):
	// loopback gives each source address its own ~28,000 ephemeral ports.
	LocalIP net.IP
}

// Errors a caller can test for.
var (
	// ErrClosed: the client was closed or killed.
	ErrClosed = errors.New("mqttlite: client closed")
	// ErrConnectionLost: the connection ended without Close (read or write error, keepalive).
	ErrConnectionLost = errors.New("mqttlite: connection lost")
	// ErrUnsupported: an option or broker URL this client does not implement.
	ErrUnsupported = errors.New("mqttlite: unsupported")
)

const (
	// readBufferSize: a connection's one long-lived buffer. Candidates, PRANSWERs and
	// STOP_SESSIONs (200-600 bytes) fit; a START_SESSION or RESPONSE with its SDP (~6 KB) is
	// read past it into its own slice whatever the size, so 2 KB bought nothing over 1 KB
	// but 1 KB more per endpoint (issue 16).
	readBufferSize = 1024
	// maxQueued bounds the bytes waiting for the socket; a sender beyond it waits.
	maxQueued = 4 << 20
	// writeTimeout bounds one socket write, as paho's SetWriteTimeout(10 s) in mqttc.
	writeTimeout = 10 * time.Second
	// keepBuffer: write buffers larger than this go back to the garbage collector, so an
	// idle connection never holds a burst-sized buffer.
	keepBuffer = 64 << 10
)

// bufPool holds write buffers: a connection holds one only while it has bytes to send.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type sub struct {
	filter string
	h      mqttc.Handler
}

// waiter is one packet identifier in use: a QoS 1 PUBLISH, SUBSCRIBE or UNSUBSCRIBE.
type waiter struct {
	ch    chan error // nil for PublishAsync
	async chan struct{}
}

// Client is one MQTT connection.
type Client struct {
	id      string
	conn    net.Conn
	version byte
	ka      time.Duration
	onLost  func(error)

	wmu      sync.Mutex
	wcond    *sync.Cond
	wbuf     *bytes.Buffer // queued bytes; nil when none
	flushing bool          // a sender is writing; it flushes what others queue meanwhile

	mu      sync.Mutex
	subs    atomic.Pointer[[]sub]
	nextID  uint16
	waiters map[uint16]waiter
	closed  bool  // Close, Kill or a lost connection
	err     error // why it ended
	done    chan struct{}

	readSince, wroteSince atomic.Bool // activity since the last keepalive tick
	pingOut               atomic.Bool // a PINGREQ awaits its answer
	closing               atomic.Bool // Close sent DISCONNECT: the broker may hang up first
	kaTimer               *time.Timer
	readerDone            chan struct{}
}

// Dial connects (TCP only: tcp:// or mqtt://), sends CONNECT with o's will and credentials
// and returns once the broker accepted it (CONNACK 0), or ctx ends.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.BrokerURL == "" {
		return nil, errors.New("mqttlite dial: no broker URL")
	}
	u, err := url.Parse(o.BrokerURL)
	if err != nil {
		return nil, fmt.Errorf("mqttlite dial: broker URL %q: %w", o.BrokerURL, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt":
	default:
		return nil, fmt.Errorf("mqttlite dial %s: %w: scheme %q (tcp:// and mqtt:// only; use the paho client for TLS and WebSocket)", o.BrokerURL, ErrUnsupported, u.Scheme)
	}
	if o.Persistent || o.AutoReconnect || o.TLSConfig != nil {
		return nil, fmt.Errorf("mqttlite dial %s: %w: persistent sessions, reconnect and TLS are paho's (reference/mqttc)", o.BrokerURL, ErrUnsupported)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1883")
	}
	if o.ClientID == "" {
		o.ClientID = mqttc.RandomClientID("c")
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	version := byte(4)
	switch o.ProtocolVersion {
	case 0, 4:
	case 3:
		version = 3
	default:
		return nil, fmt.Errorf("mqttlite dial %s: %w: protocol version %d (3 or 4)", o.BrokerURL, ErrUnsupported, o.ProtocolVersion)
	}

	dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	d := net.Dialer{}
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
		d.Control = bindNoPort
	}
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("mqttlite connect %s as %q: %w", o.BrokerURL, o.ClientID, err)
	}
	c := &Client{id: o.ClientID, conn: conn, version: version, ka: o.KeepAlive, onLost: o.OnConnectionLost,
		waiters: map[uint16]waiter{}, done: make(chan struct{}), readerDone: make(chan struct{})}
	c.wcond = sync.NewCond(&c.wmu)
	c.subs.Store(&[]sub{})
	r := bufio.NewReaderSize(conn, readBufferSize)
	if err := c.handshake(dctx, r, o); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mqttlite connect %s as %q: %w", o.BrokerURL, o.ClientID, err)
	}
	c.kaTimer = time.AfterFunc(c.ka/2, c.keepalive)
	go c.readLoop(r)
	if o.OnConnect != nil {
		o.OnConnect(nil) // the callback's *mqttc.Client is paho's; this client has none
	}
	return c, nil
}

// handshake sends CONNECT and reads CONNACK under ctx's deadline.
func (c *Client) handshake(ctx context.Context, r *bufio.Reader, o Options) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: c.version}
	pk.Connect.ProtocolName = []byte("MQTT")
	if c.version == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	pk.Connect.Clean = true
	pk.Connect.Keepalive = uint16(min(c.ka/time.Second, 65535))
	pk.Connect.ClientIdentifier = o.ClientID
	if w := o.Will; w != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, w.Topic, w.Payload
		pk.Connect.WillQos, pk.Connect.WillRetain = w.QoS, w.Retained
	}
	if o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.Username)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.Password)
	}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		return fmt.Errorf("encode CONNECT: %w", err)
	}
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	fh, body, err := readPacket(r)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for CONNACK: %w", ctx.Err())
		}
		return fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if fh.Type != packets.Connack {
		return fmt.Errorf("expected CONNACK, got packet type %d", fh.Type)
	}
	ack := packets.Packet{FixedHeader: fh, ProtocolVersion: c.version}
	if err := ack.ConnackDecode(body); err != nil {
		return fmt.Errorf("decode CONNACK: %w", err)
	}
	if ack.ReasonCode != 0 {
		return fmt.Errorf("broker refused the connection: CONNACK return code %d (%s)", ack.ReasonCode, connackReason(ack.ReasonCode))
	}
	return nil
}

// connackReason names an MQTT 3.1.1 CONNACK return code (section 3.2.2.3).
func connackReason(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown"
}

// readPacket reads one packet: fixed header, remaining length, body (a fresh slice: a
// PUBLISH's topic and payload point into it and are handed to handlers that may keep them).
func readPacket(r *bufio.Reader) (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	hb, err := r.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(hb); err != nil {
		return fh, nil, fmt.Errorf("fixed header 0x%02x: %w", hb, err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return fh, nil, fmt.Errorf("remaining length: %w", err)
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fh, nil, fmt.Errorf("packet body (%d bytes): %w", n, err)
	}
	return fh, body, nil
}

// ID returns the MQTT client ID.
func (c *Client) ID() string { return c.id }

// Done is closed when the connection has ended (Close, Kill or lost).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// readLoop reads packets until the connection ends and runs handlers in arrival order.
func (c *Client) readLoop(r *bufio.Reader) {
	defer close(c.readerDone)
	for {
		fh, body, err := readPacket(r)
		if err != nil {
			c.end(fmt.Errorf("%w: read: %v", ErrConnectionLost, err))
			return
		}
		c.readSince.Store(true)
		c.pingOut.Store(false)
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: c.version}
		switch fh.Type {
		case packets.Publish:
			if err := pk.PublishDecode(body); err != nil {
				c.end(fmt.Errorf("%w: PUBLISH: %v", ErrConnectionLost, err))
				return
			}
			if fh.Qos > 1 {
				c.end(fmt.Errorf("%w: PUBLISH with QoS 2 (this client subscribes with QoS 0 or 1)", ErrConnectionLost))
				return
			}
			// mochi's decoder returns the topic as a view of the packet body: a handler
			// that keeps the topic (a session keeps its peer's) would keep the whole body.
			topic := strings.Clone(pk.TopicName)
			// The payload is a view of this packet's own body (readPacket): the handler's to keep.
			c.dispatch(mqttc.Message{Topic: topic, Payload: pk.Payload, Retained: fh.Retain, QoS: fh.Qos, Owned: true})
			if fh.Qos == 1 {
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ProtocolVersion: c.version}
				_ = c.send(ack.PubackEncode)
			}
		case packets.Puback:
			if err := pk.PubackDecode(body); err == nil {
				c.settle(pk.PacketID, nil)
			}
		case packets.Suback:
			if err := pk.SubackDecode(body); err != nil {
				c.end(fmt.Errorf("%w: SUBACK: %v", ErrConnectionLost, err))
				return
			}
			var serr error
			for _, code := range pk.ReasonCodes {
				if code >= 0x80 {
					serr = mqttc.ErrSubscriptionRefused
				}
			}
			c.settle(pk.PacketID, serr)
		case packets.Unsuback:
			if err := pk.UnsubackDecode(body); err == nil {
				c.settle(pk.PacketID, nil)
			}
		case packets.Pingresp:
		default:
			c.end(fmt.Errorf("%w: unexpected packet type %d from the broker", ErrConnectionLost, fh.Type))
			return
		}
	}
}

// dispatch runs every handler whose filter matches the topic.
func (c *Client) dispatch(m mqttc.Message) {
	for _, s := range *c.subs.Load() {
		if Match(s.filter, m.Topic) {
			s.h(m)
		}
	}
}

// Match reports whether an MQTT topic filter (with + and # wildcards) matches a topic name
// (mqttc.Match).
func Match(filter, topic string) bool { return mqttc.Match(filter, topic) }

// settle completes the waiter of a packet identifier.
func (c *Client) settle(id uint16, err error) {
	c.mu.Lock()
	w, ok := c.waiters[id]
	delete(c.waiters, id)
	c.mu.Unlock()
	if !ok {
		return
	}
	if w.ch != nil {
		w.ch <- err
	}
	if w.async != nil {
		close(w.async)
	}
}

// send queues an encoded packet and, unless another sender is already writing, writes the
// queue until it is empty: packets queued while a write is in progress go out together in
// the next write. The writer may be the reader goroutine (a handler that publishes); the
// broker reads independently of its own writes (mochi, mosquitto), and the write deadline
// turns a connection where neither side reads into a clear error instead of a hang.
func (c *Client) send(encode func(*bytes.Buffer) error) error {
	c.wmu.Lock()
	for c.wbuf != nil && c.wbuf.Len() > maxQueued && c.Err() == nil {
		c.wcond.Wait()
	}
	if err := c.Err(); err != nil {
		c.wmu.Unlock()
		return err
	}
	if c.wbuf == nil {
		c.wbuf = bufPool.Get().(*bytes.Buffer)
	}
	if err := encode(c.wbuf); err != nil {
		c.wmu.Unlock()
		return fmt.Errorf("mqttlite: encode: %w", err)
	}
	if c.flushing {
		c.wmu.Unlock()
		return nil
	}
	c.flushing = true
	for {
		b := c.wbuf
		c.wbuf = nil
		c.wmu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := c.conn.Write(b.Bytes())
		if b.Cap() <= keepBuffer {
			b.Reset()
			bufPool.Put(b)
		}
		c.wroteSince.Store(true)
		c.wmu.Lock()
		if err != nil {
			c.flushing = false
			c.wcond.Broadcast()
			c.wmu.Unlock()
			err = fmt.Errorf("%w: write: %v", ErrConnectionLost, err)
			c.end(err)
			return err
		}
		c.wcond.Broadcast()
		if c.wbuf == nil || c.wbuf.Len() == 0 {
			c.flushing = false
			c.wmu.Unlock()
			return nil
		}
	}
}

// newID reserves a packet identifier for w.
func (c *Client) newID(w waiter) (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, c.err
	}
	for range 65535 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.waiters[c.nextID]; !used {
			c.waiters[c.nextID] = w
			return c.nextID, nil
		}
	}
	return 0, errors.New("mqttlite: 65,535 packets awaiting acknowledgement")
}

// await waits for the acknowledgement of id (or the end of ctx or of the connection).
func (c *Client) await(ctx context.Context, id uint16, ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Publish sends one message; with QoS 0 it returns once the message is queued for the
// socket, with QoS 1 after PUBACK. Do not call it with QoS 1 from a handler: handlers run on
// the goroutine that reads the PUBACK (use PublishAsync there).
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retained},
		TopicName: topic, Payload: payload, ProtocolVersion: c.version}
	switch qos {
	case 0:
		if err := c.send(pk.PublishEncode); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	case 1:
	default:
		return fmt.Errorf("publish %s: %w: QoS %d", topic, ErrUnsupported, qos)
	}
	ch := make(chan error, 1)
	id, err := c.newID(waiter{ch: ch})
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	pk.PacketID = id
	if err := c.send(pk.PublishEncode); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	if err := c.await(ctx, id, ch); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// PublishAsync sends one message without waiting; the channel is closed once it is queued
// (QoS 0) or acknowledged (QoS 1), or the connection ended.
func (c *Client) PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{} {
	done := make(chan struct{})
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(qos, 1), Retain: retained},
		TopicName: topic, Payload: payload, ProtocolVersion: c.version}
	if pk.FixedHeader.Qos == 1 {
		id, err := c.newID(waiter{async: done})
		if err != nil {
			close(done)
			return done
		}
		pk.PacketID = id
		if c.send(pk.PublishEncode) != nil {
			c.settle(id, nil)
		}
		return done
	}
	_ = c.send(pk.PublishEncode)
	close(done)
	return done
}

// Subscribe adds a subscription and returns after SUBACK; a refusal (0x80) is
// mqttc.ErrSubscriptionRefused. Messages matching filter go to h from the moment the
// SUBSCRIBE is sent (retained messages may precede the SUBACK).
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h mqttc.Handler) error {
	c.mu.Lock()
	old := *c.subs.Load()
	subs := make([]sub, 0, len(old)+1)
	for _, s := range old {
		if s.filter != filter {
			subs = append(subs, s)
		}
	}
	subs = append(subs, sub{filter: filter, h: h})
	c.subs.Store(&subs)
	c.mu.Unlock()
	ch := make(chan error, 1)
	id, err := c.newID(waiter{ch: ch})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
		ProtocolVersion: c.version, Filters: packets.Subscriptions{{Filter: filter, Qos: min(qos, 1)}}}
	err = c.send(pk.SubscribeEncode)
	if err == nil {
		err = c.await(ctx, id, ch)
	}
	if err != nil {
		c.removeSub(filter)
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return nil
}

func (c *Client) removeSub(filters ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.subs.Load()
	subs := make([]sub, 0, len(old))
	for _, s := range old {
		keep := true
		for _, f := range filters {
			keep = keep && s.filter != f
		}
		if keep {
			subs = append(subs, s)
		}
	}
	c.subs.Store(&subs)
}

// Unsubscribe removes subscriptions and returns after UNSUBACK.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	c.removeSub(filters...)
	ch := make(chan error, 1)
	id, err := c.newID(waiter{ch: ch})
	if err != nil {
		return fmt.Errorf("unsubscribe %s: %w", strings.Join(filters, ","), err)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: id, ProtocolVersion: c.version}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f})
	}
	err = c.send(pk.UnsubscribeEncode)
	if err == nil {
		err = c.await(ctx, id, ch)
	}
	if err != nil {
		return fmt.Errorf("unsubscribe %s: %w", strings.Join(filters, ","), err)
	}
	return nil
}

// keepalive runs every half keepalive interval: it sends PINGREQ when the connection was
// quiet in either direction, and ends it when an earlier PINGREQ got no packet back.
func (c *Client) keepalive() {
	select {
	case <-c.done:
		return
	default:
	}
	read, wrote := c.readSince.Swap(false), c.wroteSince.Swap(false)
	if c.pingOut.Load() && !read {
		c.end(fmt.Errorf("%w: keepalive: no answer to PINGREQ within %s", ErrConnectionLost, c.ka/2))
		_ = c.conn.Close()
		return
	}
	if !read || !wrote {
		c.pingOut.Store(true)
		ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
		_ = c.send(ping.PingreqEncode)
	}
	c.kaTimer.Reset(c.ka / 2)
}

// end marks the connection over for err (the first reason wins), fails every waiter and,
// when nobody closed it, tells OnConnectionLost.
func (c *Client) end(err error) {
	if c.closing.Load() {
		err = ErrClosed // the broker closing after our DISCONNECT is no loss
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, err
	waiters := c.waiters
	c.waiters = map[uint16]waiter{}
	close(c.done)
	c.mu.Unlock()
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	c.wmu.Lock()
	c.wcond.Broadcast()
	c.wmu.Unlock()
	for _, w := range waiters {
		if w.async != nil {
			close(w.async)
		}
	}
	if !errors.Is(err, ErrClosed) && c.onLost != nil {
		c.onLost(err)
	}
}

// Close disconnects cleanly: what is queued, then DISCONNECT (the broker discards the will),
// then it closes the socket; the reader ends on its own.
func (c *Client) Close() {
	if c.Err() != nil {
		return
	}
	dis := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: c.version}
	c.closing.Store(true)
	_ = c.send(dis.DisconnectEncode)
	// Another sender may be writing what was queued before the DISCONNECT (send returns at
	// once then): wait for it, or closing the socket would cut it off and fire the will.
	c.wmu.Lock()
	for c.flushing && c.Err() == nil {
		c.wcond.Wait()
	}
	c.wmu.Unlock()
	c.end(ErrClosed)
	_ = c.conn.Close()
}

// Kill drops the socket without DISCONNECT, as a crashed client would: the broker
// publishes the will.
func (c *Client) Kill() {
	if c.Err() != nil {
		return
	}
	c.end(ErrClosed)
	_ = c.conn.Close()
}
