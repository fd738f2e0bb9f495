// Package mqttc is the MQTT client everything in rtcomm-harness speaks through:
// a thin, context-aware wrapper over paho with loopback-friendly defaults and an
// abrupt Kill (close the socket without DISCONNECT) so last wills can be tested.
package mqttc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Will is the last-will message the broker publishes when the client vanishes.
type Will struct {
	Topic    string
	Payload  []byte // empty for rtcomm's "unregister" will
	QoS      byte
	Retained bool
}

// Options configure a connection. Zero values are sensible defaults.
type Options struct {
	BrokerURL string // tcp://, mqtt://, ssl://, tls://, mqtts://, ws://, wss://
	ClientID  string // empty: a random ID
	Username  string
	Password  string
	Will      *Will
	// ProtocolVersion 3 is MQTT 3.1 (MQIsdp, what rtcomm.js speaks), 4 is MQTT 3.1.1 (default).
	ProtocolVersion uint
	KeepAlive       time.Duration // default 30s
	ConnectTimeout  time.Duration // default 10s
	AutoReconnect   bool
	// ReconnectJitter (AutoReconnect) delays every reconnect attempt by a random time up to
	// this, so thousands of clients dropped by one broker restart do not all return in the
	// same instant and again at each of paho's fixed backoff steps. Default 1 s; negative: none.
	ReconnectJitter time.Duration
	TLSConfig       *tls.Config
	// OnConnect runs after every (re)connect, e.g. to resubscribe or re-register.
	OnConnect func(*Client)
	// OnConnectionLost runs when an established connection drops.
	OnConnectionLost func(error)
	// Persistent asks for a persistent session (clean session off): the broker keeps its
	// subscriptions and queues QoS 1 messages while it is away.
	Persistent bool
	// OnUnrouted receives messages no subscription handler claims: a resumed persistent
	// session's queued messages arrive before any Subscribe call.
	OnUnrouted Handler
	Logger     *slog.Logger
}

// Message is one received PUBLISH.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
	// Owned says Payload is the handler's to keep: a slice of its own that the client
	// never reuses or changes, so a handler need not copy it (loadgen/mqttlite sets it).
	Owned bool
}

// Handler receives messages for a subscription. Handlers of one client run one
// at a time in arrival order (per-publisher ordering is part of rtcomm's contract),
// so they must not block for long.
type Handler func(Message)

// ErrClosed is returned by operations on a client that was closed or killed.
var ErrClosed = errors.New("mqtt client closed")

// Client is one MQTT connection.
type Client struct {
	c      mqtt.Client
	id     string
	log    *slog.Logger
	mu     sync.Mutex
	conn   net.Conn // the live socket, for Kill
	closed bool
	done   chan struct{} // closed by Close and Kill: ends a reconnect jitter wait
}

// Dial connects and returns when the broker has accepted the session (CONNACK) or ctx ends.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.BrokerURL == "" {
		return nil, errors.New("mqtt dial: no broker URL")
	}
	if _, err := url.Parse(o.BrokerURL); err != nil {
		return nil, fmt.Errorf("mqtt dial: broker URL %q: %w", o.BrokerURL, err)
	}
	if o.ClientID == "" {
		o.ClientID = RandomClientID("c")
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.ProtocolVersion == 0 {
		o.ProtocolVersion = 4
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.ReconnectJitter == 0 {
		o.ReconnectJitter = time.Second
	}
	cl := &Client{id: o.ClientID, log: log, done: make(chan struct{})}

	po := mqtt.NewClientOptions().
		AddBroker(o.BrokerURL).
		SetClientID(o.ClientID).
		SetCleanSession(!o.Persistent).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(o.ConnectTimeout).
		SetWriteTimeout(10 * time.Second).
		SetProtocolVersion(o.ProtocolVersion).
		SetOrderMatters(true).
		SetAutoReconnect(o.AutoReconnect).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectRetry(false)
	if o.Username != "" {
		po.SetUsername(o.Username)
		po.SetPassword(o.Password)
	}
	if o.Will != nil {
		po.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retained)
	}
	if o.TLSConfig != nil {
		po.SetTLSConfig(o.TLSConfig)
	}
	po.SetCustomOpenConnectionFn(func(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		conn, err := openConn(uri, o.TLSConfig, o.ConnectTimeout)
		if err != nil {
			return nil, err
		}
		cl.mu.Lock()
		cl.conn = conn
		cl.mu.Unlock()
		return newBufferedConn(conn), nil
	})
	if o.AutoReconnect && o.ReconnectJitter > 0 {
		// paho calls this in its reconnect goroutine before each attempt.
		po.SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			cl.jitterWait(o.ReconnectJitter)
		})
	}
	po.SetOnConnectHandler(func(mqtt.Client) {
		if o.OnConnect != nil {
			o.OnConnect(cl)
		}
	})
	po.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Debug("mqtt connection lost", "client", o.ClientID, "err", err)
		if o.OnConnectionLost != nil {
			o.OnConnectionLost(err)
		}
	})
	po.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		if o.OnUnrouted != nil {
			o.OnUnrouted(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), QoS: m.Qos()})
			return
		}
		log.Debug("mqtt message without a handler", "client", o.ClientID, "topic", m.Topic())
	})
	cl.c = mqtt.NewClient(po)
	if err := wait(ctx, cl.c.Connect()); err != nil {
		cl.c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %s as %q: %w", o.BrokerURL, o.ClientID, err)
	}
	return cl, nil
}

// readBufferSize is the read buffer of every connection. paho reads each packet with
// three or four read calls (type byte, each length byte, body), one syscall each on a
// bare socket; buffered, one syscall usually fetches a whole packet or several. 4 KB per
// connection keeps 10,000 endpoints cheap; a larger body is read straight into paho's buffer.
const readBufferSize = 4096

// bufferedConn is a net.Conn whose reads go through a bufio.Reader. Only paho's single
// reader goroutine reads, so the buffer needs no lock; writes and the rest pass through.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) net.Conn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func openConn(uri *url.URL, tlsc *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	switch uri.Scheme {
	case "tcp", "mqtt":
		return d.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "tcps":
		return tls.DialWithDialer(d, "tcp", uri.Host, tlsc)
	case "ws", "wss":
		dialURI := *uri
		dialURI.User = nil
		if dialURI.Path == "" {
			dialURI.Path = "/mqtt" // rtcomm.js always uses /mqtt
		}
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = tlsc
		}
		return mqtt.NewWebsocket(dialURI.String(), tc, timeout, nil, nil)
	}
	return nil, fmt.Errorf("unsupported broker URL scheme %q (want tcp, ssl, ws or wss)", uri.Scheme)
}

// wait blocks until the token completes or ctx ends.
func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ID returns the MQTT client ID.
func (c *Client) ID() string { return c.id }

// Connected reports whether the connection is up.
func (c *Client) Connected() bool { return c.c.IsConnectionOpen() }

// Publish sends one message; with QoS 1 it returns after PUBACK.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if err := wait(ctx, c.c.Publish(topic, qos, retained, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// PublishAsync sends one message without waiting; use for QoS 0 hot paths. The
// returned channel is closed when paho has written it (QoS 0) or it is acknowledged.
func (c *Client) PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{} {
	return c.c.Publish(topic, qos, retained, payload).Done()
}

// Subscribe adds a subscription and returns after SUBACK. A broker's refusal
// (return code 0x80) is an error.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	t := c.c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) {
		h(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), QoS: m.Qos()})
	})
	if err := wait(ctx, t); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("subscribe %s: %w", f, ErrSubscriptionRefused)
			}
		}
	}
	return nil
}

// ErrSubscriptionRefused is returned when the broker answers SUBACK 0x80.
var ErrSubscriptionRefused = errors.New("broker refused the subscription")

// Unsubscribe removes subscriptions.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if err := wait(ctx, c.c.Unsubscribe(filters...)); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", strings.Join(filters, ","), err)
	}
	return nil
}

// Close disconnects cleanly (DISCONNECT: the broker discards the will).
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	c.c.Disconnect(100)
}

// jitterWait sleeps a random time in [0, upTo) or until the client is closed.
func (c *Client) jitterWait(upTo time.Duration) {
	t := time.NewTimer(rand.N(upTo))
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
	}
}

// Kill drops the socket without DISCONNECT, as a crashed client or a lost network
// would: the broker publishes the will.
func (c *Client) Kill() {
	c.mu.Lock()
	conn := c.conn
	already := c.closed
	if !already {
		c.closed = true
		close(c.done)
	}
	c.mu.Unlock()
	if already {
		return
	}
	if conn != nil {
		_ = conn.Close()
	}
	c.c.Disconnect(0) // stops paho's goroutines; the socket is already gone, so no DISCONNECT reaches the broker
}

// RandomClientID returns prefix + random characters, at most 23 characters in all
// (the MQTT 3.1 limit that rtcomm.js keeps to).
func RandomClientID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	if len(prefix) > 11 {
		prefix = prefix[:11]
	}
	b := make([]byte, 23-len(prefix))
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return prefix + string(b)
}

// Match reports whether an MQTT topic filter (with + and # wildcards) matches a topic name.
func Match(filter, topic string) bool {
	for {
		if filter == "#" {
			// # also matches the parent level itself ([MQTT-4.7.1-2]); $-topics are not
			// matched by a leading wildcard ([MQTT-4.7.2-1]).
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}
