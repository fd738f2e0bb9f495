// Package endpoint is a Go rtcomm endpoint that behaves like the official rtcomm.js
// client: it registers in presence, queries services, places and answers calls,
// trickles ICE candidates, handles REFER and DOCUMENT_REPLACED. The conformance
// scenarios drive it one at a time; the load generator runs ten thousand in one
// process, so an endpoint costs no goroutine of its own beyond paho's: all inbound
// work runs on paho's ordered receive goroutine, timeouts are runtime timers, and
// per-session state is a few small channels that die with the session.
package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Config configures one endpoint. Zero values give rtcomm.js defaults.
type Config struct {
	BrokerURL string
	ClientID  string // MQTT client ID; empty: 23 random characters, like rtcomm.js
	Username  string
	Password  string
	TLSConfig *tls.Config
	// ProtocolVersion 3 is MQTT 3.1 (what rtcomm.js speaks), 4 (default) is MQTT 3.1.1.
	ProtocolVersion uint
	// QoS of every publish and of the inbox subscription; rtcomm.js uses 0 (default).
	// With 1, callbacks (OnInvite, OnRefer, OnSessionMessage) must not call blocking
	// methods: they run on paho's receive goroutine, which also delivers the PUBACKs.
	QoS byte
	// KeepAlive of the MQTT connection; default 60 s like rtcomm.js.
	KeepAlive time.Duration

	TopicPath string // default spec.DefaultTopicPath
	ID        string // endpoint ID, checked with spec.ValidateEndpointID
	// AddressFromClientID makes the address topic <path><MQTT client ID> as rtcomm.js
	// does, instead of <path><ID>: a connector must then route by the DOCUMENT's address.
	AddressFromClientID bool
	AppContext          string // default "rtcomm"
	// ConnectorTopic is where START_SESSION goes (sender ID appended); default
	// <path>connector. ServiceQuery replaces it with the connector service's topic.
	ConnectorTopic string
	// Direct calls without a connector, like rtcomm.js's peer-to-peer fallback: the
	// callee's address is read from its retained DOCUMENT in presence.
	Direct        bool
	LookupTimeout time.Duration // Direct: how long to wait for the callee's DOCUMENT; default 2 s
	Protocols     []string      // default ["webrtc"]

	PranswerTimeout time.Duration // first reply to START_SESSION; default 5 s
	AnswerTimeout   time.Duration // final RESPONSE after a PRANSWER without holdTimeout; default 30 s
	// InviteTimeout drops an inbound call never accepted or rejected; default
	// AnswerTimeout + 5 s (a PRANSWER's holdTimeout + 5 s once one is sent).
	InviteTimeout time.Duration
	ReferTimeout  time.Duration // an inbound REFER older than this cannot be accepted; default 30 s
	QueryTimeout  time.Duration // ServiceQuery's wait for the answer; default 5 s

	// SendEarly sends in-session MESSAGEs of an outgoing call at once. By default they
	// are queued, like rtcomm.js, until a PRANSWER without holdTimeout/queuePosition or
	// the answer arrives.
	SendEarly bool
	// KeepRegistrationOnReplace skips the empty retained publish rtcomm.js makes on
	// its presence topic when it receives DOCUMENT_REPLACED.
	KeepRegistrationOnReplace bool
	// NoWill connects without the empty retained Last Will (testing only).
	NoWill bool
	// Reconnect keeps the endpoint alive across a lost connection: paho reconnects
	// with exponential backoff (1 s doubling to 5 s, each attempt after up to 1 s of
	// random jitter so endpoints dropped together return spread out); live sessions and queries end
	// with ErrConnectionLost at the loss; after the reconnect the inbox is
	// resubscribed, the last DOCUMENT re-published (the broker may have lost its
	// retained store, and the will cleared it anyway) and a STOP_SESSION sent for
	// every session the loss ended. Off (rtcomm.js's behaviour): a lost connection ends the endpoint.
	Reconnect bool

	// Buffers of the delivery channels. A full Incoming or Refers channel makes the
	// endpoint answer FAILURE "busy"; a full session channel spills into a queue.
	IncomingBuffer int // default 8
	RefersBuffer   int // default 4
	EventBuffer    int // per session; default 16

	// OnInvite, when set, receives inbound calls instead of Incoming().
	OnInvite func(*Invite)
	// OnRefer, when set, receives REFERs instead of Refers().
	OnRefer func(*Refer)
	// OnSessionMessage, when set, receives every session's in-session messages
	// instead of Session.Events() (no channel is allocated): the cheap form for
	// thousands of endpoints. It runs on the receive goroutine and must not block.
	OnSessionMessage func(*Session, *spec.Message)
	// OnMessage sees every inbound publish on the inbox before it is processed (m is
	// nil when the payload does not parse). Scenarios record traces with it.
	OnMessage func(topic string, m *spec.Message, raw []byte, at time.Time)
	// DropPayloads keeps a session's received START_SESSION, PRANSWER and RESPONSE without
	// their payload (spec.Message.Envelope) once OnMessage has seen them whole: Session.Start
	// (inbound), Pranswer, Response and Await's result then have a nil Payload; the Invite
	// handed to OnInvite or Incoming keeps the whole message. For the load generator, whose
	// thousands of held calls would otherwise each keep two SDPs it has already checked.
	DropPayloads bool

	// Shape chooses the wire shapes: ShapeNative (default) or ShapeRtcommJS.
	Shape Shape
	// PresenceGroup registers at <path>sphere/<group>/<id> (with its will there too), as
	// rtcomm.js does when configured with presence.topic (EndpointConnection.js
	// getMyPresenceTopic); "" is <path>sphere/<id>.
	PresenceGroup string

	// Dial opens the MQTT connection; nil is mqttc.Dial (paho). The load generator's
	// simulated endpoints pass a lighter client (loadgen/mqttlite); scenarios keep paho.
	Dial func(ctx context.Context, o mqttc.Options) (Conn, error)

	Logger *slog.Logger
}

// Conn is the MQTT connection an endpoint speaks through, as *mqttc.Client offers it:
// handlers of one connection run one at a time in arrival order; Publish returns once the
// message is handed to the connection (QoS 0) or acknowledged (QoS 1); Close sends
// DISCONNECT, Kill drops the socket so the broker publishes the will.
type Conn interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
	PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{}
	Subscribe(ctx context.Context, filter string, qos byte, h mqttc.Handler) error
	Unsubscribe(ctx context.Context, filters ...string) error
	Close()
	Kill()
}

// Shape is how an endpoint's messages look on the wire.
type Shape int

const (
	// ShapeNative sends every field the written spec lists and nothing it does not.
	ShapeNative Shape = iota
	// ShapeRtcommJS sends what rtcomm.js 1.0.x sends, read from WASdev/lib.rtcomm.clientjs:
	// toEndpointID and protocols on every session message and the START_SESSION's transID
	// on those sent before the answer (SigSession.js createMessage, send); an explicit
	// "fromTopic": null on RESPONSEs and "payload": null when there is none (MessageFactory.js
	// templates, SigSession.js respond); STOP_SESSION without a reason (stop); an inbound call
	// PRANSWERed at once, twice with a webrtc offer, the second {type: pranswer, sdp: ""}
	// (Chat.js _processMessage, WebRTCConnection.js _processMessage); a second inbound call
	// refused "Busy" (RtcommEndpoint.js newSession); a REFER answered only once the referred
	// session is answered or failed (SigSession.js start); no STOP_SESSION after a call times
	// out unanswered; and, 500 ms after DOCUMENT_REPLACED, its sessions stopped, its presence
	// cleared and its connection closed (EndpointProvider.js reset, destroy).
	ShapeRtcommJS
)

// jsResetDelay is how long rtcomm.js waits after DOCUMENT_REPLACED before destroying
// itself (EndpointProvider.js reset: setTimeout(destroy, 500)).
const jsResetDelay = 500 * time.Millisecond

// Errors, for errors.Is.
var (
	ErrTimeout            = errors.New("timed out")
	ErrClosed             = errors.New("endpoint closed")
	ErrConnectionLost     = errors.New("connection to the broker lost")
	ErrNotRegistered      = errors.New("callee not registered in presence")
	ErrMultipleConnectors = errors.New("a SERVICE_QUERY answer nobody waits for (second or late): two connectors share the topic path")
	ErrNoConnectorService = errors.New("service query answer has no " + spec.ServiceConnector)
	ErrSessionEnded       = errors.New("session ended")
	ErrAnswered           = errors.New("already answered")
	ErrReplaced           = errors.New("registration replaced (DOCUMENT_REPLACED): endpoint reset, as rtcomm.js does")
)

// Rejected is the error of a call the callee (or the connector) answered with FAILURE.
type Rejected struct{ Reason string }

func (r *Rejected) Error() string { return "call rejected: " + r.Reason }

// Stopped is the end of a session by STOP_SESSION; Remote tells who sent it.
type Stopped struct {
	Reason string
	Remote bool
}

func (s *Stopped) Error() string {
	if s.Remote {
		return "session stopped by peer: " + s.Reason
	}
	return "session stopped: " + s.Reason
}

// Stats counts what the endpoint saw; all fields are totals since Dial.
type Stats struct {
	Received           uint64 // inbound publishes on the inbox
	Unparseable        uint64 // not a JSON object (or empty)
	Malformed          uint64 // a JSON object with wrongly typed fields (processed leniently)
	UnmatchedResponses uint64 // RESPONSEs for no transaction of ours
	MultipleConnectors uint64 // SERVICE_QUERY answers beyond the first
	UnknownSession     uint64 // in-session messages for no live session
	Unexpected         uint64 // unknown methods, duplicates, messages in the wrong state
	BusyRejected       uint64 // invites and REFERs refused because nobody was reading
	Sessions           uint64 // sessions created (both directions)
	Reconnects         uint64 // connections re-established (Config.Reconnect)
	ActiveSessions     int    // sessions in the table now
}

var discard = slog.New(slog.DiscardHandler)

// Endpoint is one connected rtcomm endpoint.
type Endpoint struct {
	cfg    Config
	topics spec.Topics
	addr   string
	sphere string // presence topic: <path>sphere/[<group>/]<id>
	client Conn
	log    *slog.Logger

	mu         sync.Mutex
	connector  string
	sessions   map[string]*Session           // live sessions by sigSessID
	calls      map[string]*Session           // outgoing calls awaiting the final RESPONSE, by transID
	queries    map[string]chan *spec.Message // SERVICE_QUERY transactions, by transID
	closed     bool                          // ended: closed, killed or connection lost
	userClosed bool                          // Close or Kill was called
	endErr     error
	replaced   bool
	lookupMu   sync.Mutex // Direct lookups share one subscription at a time
	replacedCh chan struct{}
	done       chan struct{}

	incoming chan *Invite
	refers   chan *Refer
	errs     chan error

	nReceived, nUnparseable, nMalformed, nUnmatched, nMulti atomic.Uint64
	nUnknownSess, nUnexpected, nBusy, nSessions             atomic.Uint64
	nConnects, nReconnects                                  atomic.Uint64

	doc  []byte     // the last DOCUMENT registered (nil when unregistered), re-published on reconnect
	lost []lostSess // sessions ended by a lost connection, told STOP_SESSION after the reconnect
}

// lostSess is a session a lost connection ended: its peer is told after the reconnect.
type lostSess struct{ id, peerTopic string }

// Dial validates cfg, connects with the Last Will (an empty retained message on the
// presence topic) and subscribes to the inbox <address>/#.
func Dial(ctx context.Context, cfg Config) (*Endpoint, error) {
	if err := spec.ValidateEndpointID(cfg.ID); err != nil {
		return nil, fmt.Errorf("endpoint dial: %w", err)
	}
	if cfg.QoS > 1 {
		return nil, fmt.Errorf("endpoint dial %s: QoS %d unsupported (0 or 1)", cfg.ID, cfg.QoS)
	}
	applyDefaults(&cfg)
	if cfg.AddressFromClientID {
		if err := spec.ValidateEndpointID(cfg.ClientID); err != nil {
			return nil, fmt.Errorf("endpoint dial %s: client ID as address level: %w", cfg.ID, err)
		}
	}
	e := &Endpoint{
		cfg:        cfg,
		topics:     spec.NewTopics(cfg.TopicPath),
		log:        cfg.Logger,
		replacedCh: make(chan struct{}),
		done:       make(chan struct{}),
		errs:       make(chan error, 4),
	}
	e.connector = e.topics.Resolve(cfg.ConnectorTopic)
	if e.connector == "" {
		e.connector = e.topics.Connector()
	}
	e.sphere = e.topics.SphereIn(cfg.PresenceGroup, cfg.ID)
	if cfg.AddressFromClientID {
		e.addr = e.topics.Inbox(cfg.ClientID)
	} else {
		e.addr = e.topics.Inbox(cfg.ID)
	}
	if cfg.OnInvite == nil {
		e.incoming = make(chan *Invite, cfg.IncomingBuffer)
	}
	if cfg.OnRefer == nil {
		e.refers = make(chan *Refer, cfg.RefersBuffer)
	}
	o := mqttc.Options{
		BrokerURL:       cfg.BrokerURL,
		ClientID:        cfg.ClientID,
		Username:        cfg.Username,
		Password:        cfg.Password,
		ProtocolVersion: cfg.ProtocolVersion,
		KeepAlive:       cfg.KeepAlive,
		TLSConfig:       cfg.TLSConfig,
		Logger:          cfg.Logger,
		OnConnectionLost: func(err error) {
			if cfg.Reconnect {
				e.connectionLost(err)
				return
			}
			e.shutdown(fmt.Errorf("%w: %v", ErrConnectionLost, err))
		},
		AutoReconnect: cfg.Reconnect,
		OnConnect: func(*mqttc.Client) {
			if e.nConnects.Add(1) > 1 {
				e.reconnected()
			}
		},
	}
	if !cfg.NoWill {
		o.Will = &mqttc.Will{Topic: e.sphere, Payload: nil, QoS: cfg.QoS, Retained: true}
	}
	dial := cfg.Dial
	if dial == nil {
		dial = func(ctx context.Context, o mqttc.Options) (Conn, error) { return mqttc.Dial(ctx, o) }
	}
	c, err := dial(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", cfg.ID, err)
	}
	e.client = c
	if err := c.Subscribe(ctx, e.addr+"/#", cfg.QoS, e.handle); err != nil {
		c.Close()
		return nil, fmt.Errorf("endpoint %s: inbox: %w", cfg.ID, err)
	}
	return e, nil
}

func applyDefaults(c *Config) {
	if c.ClientID == "" {
		c.ClientID = mqttc.RandomClientID("rtc")
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.TopicPath == "" {
		c.TopicPath = spec.DefaultTopicPath
	}
	if c.AppContext == "" {
		c.AppContext = "rtcomm"
	}
	if len(c.Protocols) == 0 {
		c.Protocols = defaultProtocols
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = 2 * time.Second
	}
	if c.PranswerTimeout == 0 {
		c.PranswerTimeout = 5 * time.Second
	}
	if c.AnswerTimeout == 0 {
		c.AnswerTimeout = 30 * time.Second
	}
	if c.InviteTimeout == 0 {
		c.InviteTimeout = c.AnswerTimeout + 5*time.Second
	}
	if c.ReferTimeout == 0 {
		c.ReferTimeout = 30 * time.Second
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 5 * time.Second
	}
	if c.IncomingBuffer <= 0 {
		c.IncomingBuffer = 8
	}
	if c.RefersBuffer <= 0 {
		c.RefersBuffer = 4
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 16
	}
	if c.Logger == nil {
		c.Logger = discard
	}
}

var defaultProtocols = []string{spec.ProtoWebRTC}

// ID is the endpoint ID.
func (e *Endpoint) ID() string { return e.cfg.ID }

// Topics is the topic layout under the endpoint's topic path.
func (e *Endpoint) Topics() spec.Topics { return e.topics }

// Address is the endpoint's address topic (its fromTopic); it subscribes to Address()+"/#".
func (e *Endpoint) Address() string { return e.addr }

// Client is the raw MQTT client, for scenarios that publish by hand; nil when
// Config.Dial opened another kind of connection.
func (e *Endpoint) Client() *mqttc.Client {
	c, _ := e.client.(*mqttc.Client)
	return c
}

// ConnectorTopic is where calls go now (after a ServiceQuery, the connector's topic).
func (e *Endpoint) ConnectorTopic() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.connector
}

// Incoming delivers inbound calls (nil when Config.OnInvite is set).
func (e *Endpoint) Incoming() <-chan *Invite { return e.incoming }

// Refers delivers inbound REFERs (nil when Config.OnRefer is set).
func (e *Endpoint) Refers() <-chan *Refer { return e.refers }

// Replaced is closed when a DOCUMENT_REPLACED arrives.
func (e *Endpoint) Replaced() <-chan struct{} { return e.replacedCh }

// Errors reports protocol errors the endpoint detected on its own, such as
// ErrMultipleConnectors. It holds the first few; Stats keeps counting.
func (e *Endpoint) Errors() <-chan error { return e.errs }

// Done is closed when the endpoint is closed, killed or loses its connection.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Err says why the endpoint ended (ErrClosed, ErrConnectionLost...); nil while it runs.
func (e *Endpoint) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.endErr
}

// Stats returns the counters.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	active := len(e.sessions)
	e.mu.Unlock()
	return Stats{
		Received:           e.nReceived.Load(),
		Unparseable:        e.nUnparseable.Load(),
		Malformed:          e.nMalformed.Load(),
		UnmatchedResponses: e.nUnmatched.Load(),
		MultipleConnectors: e.nMulti.Load(),
		UnknownSession:     e.nUnknownSess.Load(),
		Unexpected:         e.nUnexpected.Load(),
		BusyRejected:       e.nBusy.Load(),
		Sessions:           e.nSessions.Load(),
		Reconnects:         e.nReconnects.Load(),
		ActiveSessions:     active,
	}
}

// reportError hands err to Errors() without ever blocking the receive goroutine.
func (e *Endpoint) reportError(err error) {
	e.log.Warn("rtcomm protocol error", "endpoint", e.cfg.ID, "err", err)
	select {
	case e.errs <- err:
	default:
	}
}

// Close ends the endpoint cleanly: STOP_SESSION for every live session, an empty
// retained message on the presence topic (as rtcomm.js does on disconnect, unless a
// newer registration replaced this one), then DISCONNECT, so the will does not fire.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.userClosed {
		e.mu.Unlock()
		return nil
	}
	e.userClosed = true
	ended := e.closed // the connection was lost: nothing to say to anyone
	live := e.liveSessionsLocked()
	replaced := e.replaced
	e.mu.Unlock()

	var errs []error
	if !ended {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range live {
			if err := s.Stop(ctx, "endpoint closed"); err != nil {
				errs = append(errs, err)
			}
		}
		if !replaced {
			if err := e.client.Publish(ctx, e.sphere, e.cfg.QoS, true, nil); err != nil {
				errs = append(errs, fmt.Errorf("unregister: %w", err))
			}
		}
	}
	e.shutdown(ErrClosed)
	e.client.Close()
	if len(errs) > 0 {
		return fmt.Errorf("close %s: %w", e.cfg.ID, errors.Join(errs...))
	}
	return nil
}

// Kill drops the connection without DISCONNECT, as a crash would: the broker
// publishes the will (empty retained on the presence topic).
func (e *Endpoint) Kill() {
	e.mu.Lock()
	e.userClosed = true
	e.mu.Unlock()
	e.shutdown(ErrClosed)
	e.client.Kill()
}

func (e *Endpoint) liveSessionsLocked() []*Session {
	out := make([]*Session, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, s)
	}
	return out
}

// connectionLost (Config.Reconnect) ends what cannot survive the loss: live
// sessions (their messages are gone with the connection) and pending queries.
// The endpoint itself stays; paho is reconnecting.
func (e *Endpoint) connectionLost(cause error) {
	err := fmt.Errorf("%w: %v", ErrConnectionLost, cause)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	live := e.liveSessionsLocked()
	queries := e.queries
	e.queries = nil
	e.mu.Unlock()
	e.log.Warn("connection lost; reconnecting", "endpoint", e.cfg.ID, "err", cause, "sessionsEnded", len(live))
	for _, s := range live {
		s.mu.Lock()
		peer := s.peerTopic
		s.mu.Unlock()
		if s.end(err) && peer != "" {
			e.mu.Lock()
			if len(e.lost) < 1024 { // bounded: a peer that is never told times out on its own
				e.lost = append(e.lost, lostSess{id: s.id, peerTopic: peer})
			}
			e.mu.Unlock()
		}
	}
	for _, ch := range queries {
		close(ch)
	}
}

// reconnected (Config.Reconnect) restores what a clean session lost: the inbox
// subscription, the registration, and tells the peers of lost sessions.
func (e *Endpoint) reconnected() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	doc, lost := e.doc, e.lost
	e.lost = nil
	c := e.client
	e.mu.Unlock()
	if c == nil {
		return
	}
	e.nReconnects.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Subscribe(ctx, e.addr+"/#", e.cfg.QoS, e.handle); err != nil {
		e.log.Error("resubscribe inbox after reconnect", "endpoint", e.cfg.ID, "err", err)
		return
	}
	if doc != nil {
		if err := c.Publish(ctx, e.sphere, e.cfg.QoS, true, doc); err != nil {
			e.log.Error("re-register after reconnect", "endpoint", e.cfg.ID, "err", err)
		}
	}
	for _, l := range lost {
		m := &spec.Message{Method: spec.MethodStopSession, FromTopic: e.addr, SigSessID: l.id, Reason: "connection lost"}
		if err := e.publish(ctx, spec.Join(l.peerTopic, e.cfg.ID), m); err != nil {
			e.log.Warn("STOP_SESSION for a lost session", "endpoint", e.cfg.ID, "sigSessID", l.id, "err", err)
		}
	}
	e.log.Info("reconnected", "endpoint", e.cfg.ID, "registered", doc != nil, "lostSessions", len(lost))
}

// shutdown marks the endpoint ended and ends every session with err.
func (e *Endpoint) shutdown(err error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.endErr = err
	live := e.liveSessionsLocked()
	queries := e.queries
	e.queries = nil
	e.mu.Unlock()
	for _, s := range live {
		s.end(err)
	}
	for _, ch := range queries {
		close(ch)
	}
	close(e.done)
}

// publish encodes m and publishes it, waiting for paho (QoS 0: written; QoS 1: acknowledged).
func (e *Endpoint) publish(ctx context.Context, topic string, m *spec.Message) error {
	b, err := spec.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Method, err)
	}
	return e.client.Publish(ctx, topic, e.cfg.QoS, false, b)
}

// publishAsync is for the receive goroutine, which must never wait on paho.
func (e *Endpoint) publishAsync(topic string, m *spec.Message) {
	b, err := spec.Encode(m)
	if err != nil {
		e.log.Error("encode", "method", m.Method, "err", err)
		return
	}
	e.client.PublishAsync(topic, e.cfg.QoS, false, b)
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// handle runs on paho's receive goroutine for every inbox message, in arrival order.
func (e *Endpoint) handle(mm mqttc.Message) {
	at := time.Now()
	defer func() {
		// A bug, most likely in a callback, must not take down every endpoint of
		// the process with paho's goroutine.
		if p := recover(); p != nil {
			e.nUnexpected.Add(1)
			e.reportError(fmt.Errorf("panic handling %s: %v", mm.Topic, p))
		}
	}()
	e.nReceived.Add(1)
	var (
		m   *spec.Message
		err error
	)
	if len(mm.Payload) == 0 {
		err = spec.ErrEmpty
	} else if mm.Owned {
		m, err = spec.DecodeOwned(mm.Payload) // the client's own slice: no second copy
	} else {
		m, err = spec.Decode(mm.Payload)
	}
	if e.cfg.OnMessage != nil {
		e.cfg.OnMessage(mm.Topic, m, mm.Payload, at)
	}
	if m == nil {
		e.nUnparseable.Add(1)
		e.log.Warn("unparseable inbound message", "endpoint", e.cfg.ID, "topic", mm.Topic, "err", err)
		return
	}
	if err != nil {
		e.nMalformed.Add(1)
		e.log.Warn("malformed inbound message, processed leniently", "endpoint", e.cfg.ID, "topic", mm.Topic, "err", err)
	}
	from := ""
	if mm.Topic != e.addr {
		from = spec.Sender(mm.Topic)
	}
	switch m.Method {
	case spec.MethodResponse:
		e.onResponse(from, m)
	case spec.MethodStartSession:
		e.onStartSession(from, m)
	case spec.MethodPranswer, spec.MethodMessage, spec.MethodStopSession:
		e.onInSession(from, m)
	case spec.MethodRefer:
		e.onRefer(from, m)
	case spec.MethodDocumentReplaced:
		e.onReplaced()
	default:
		e.nUnexpected.Add(1)
		e.log.Warn("unexpected method on inbox", "endpoint", e.cfg.ID, "method", m.Method, "topic", mm.Topic)
	}
}

func (e *Endpoint) onResponse(from string, m *spec.Message) {
	if m.TransID == "" {
		e.nUnmatched.Add(1)
		return
	}
	e.mu.Lock()
	if ch, ok := e.queries[m.TransID]; ok && (m.Orig == spec.MethodServiceQuery || m.Orig == "") {
		delete(e.queries, m.TransID)
		e.mu.Unlock()
		ch <- m // buffered 1, exactly one send: the entry is gone now
		return
	}
	s, ok := e.calls[m.TransID]
	if ok && (m.Orig == spec.MethodStartSession || m.Orig == "") {
		delete(e.calls, m.TransID)
		e.mu.Unlock()
		s.onResponse(from, m)
		return
	}
	e.mu.Unlock()
	e.nUnmatched.Add(1)
	if m.Orig == spec.MethodServiceQuery {
		// rtcomm.js reads any SERVICE_QUERY answer it is not waiting for as a second connector.
		e.nMulti.Add(1)
		e.reportError(fmt.Errorf("%w (transID %s)", ErrMultipleConnectors, m.TransID))
		return
	}
	e.log.Warn("RESPONSE for no transaction of ours", "endpoint", e.cfg.ID, "orig", m.Orig, "transID", m.TransID)
}

func (e *Endpoint) onInSession(from string, m *spec.Message) {
	e.mu.Lock()
	s := e.sessions[m.SigSessID]
	e.mu.Unlock()
	if s == nil || m.SigSessID == "" {
		e.nUnknownSess.Add(1)
		e.log.Debug("in-session message for no live session", "endpoint", e.cfg.ID, "method", m.Method, "sigSessID", m.SigSessID)
		return
	}
	s.onInSession(from, m)
}

func (e *Endpoint) onReplaced() {
	e.mu.Lock()
	already := e.replaced
	e.replaced = true
	e.doc = nil // replaced: a reconnect must not take the registration back
	closed := e.closed
	e.mu.Unlock()
	if already {
		e.nUnexpected.Add(1)
		return
	}
	switch {
	case e.cfg.Shape == ShapeRtcommJS && !closed:
		time.AfterFunc(jsResetDelay, e.jsReset)
	case !e.cfg.KeepRegistrationOnReplace && !closed:
		// rtcomm.js destroys itself and publishes an empty retained on its presence topic.
		e.client.PublishAsync(e.sphere, e.cfg.QoS, true, nil)
	}
	close(e.replacedCh)
}

// jsReset is what rtcomm.js does 500 ms after DOCUMENT_REPLACED (EndpointProvider.js reset,
// destroy; EndpointConnection.js disconnect): stop its sessions, clear its presence topic
// (the one the newcomer registered on) and disconnect.
func (e *Endpoint) jsReset() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.userClosed = true
	live := e.liveSessionsLocked()
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range live {
		_ = s.Stop(ctx, "") // best effort: the endpoint is going away
	}
	if !e.cfg.KeepRegistrationOnReplace {
		if err := e.client.Publish(ctx, e.sphere, e.cfg.QoS, true, nil); err != nil {
			e.log.Warn("clear presence after DOCUMENT_REPLACED", "endpoint", e.cfg.ID, "err", err)
		}
	}
	e.shutdown(ErrReplaced)
	e.client.Close()
}

// Presence is the endpoint's presence topic, <path>sphere/[<group>/]<id>.
func (e *Endpoint) Presence() string { return e.sphere }

// JoinQueue subscribes to a call queue's advertised topic as rtcomm.js does
// (EndpointProvider.js joinQueue, Queues.js): as given, "#" or "/#" appended when it has no
// "#". A START_SESSION the queue hands to this endpoint arrives like any other call.
func (e *Endpoint) JoinQueue(ctx context.Context, advertised string) error {
	f := spec.QueueFilter(advertised)
	if err := spec.ValidateFilter(f); err != nil {
		return fmt.Errorf("join queue %q: %w", advertised, err)
	}
	if err := e.client.Subscribe(ctx, f, e.cfg.QoS, e.handle); err != nil {
		return fmt.Errorf("join queue %q: %w", advertised, err)
	}
	return nil
}

// withNulls adds "name": null for each absent field of an encoded message: rtcomm.js's
// templates send null for what they do not set (MessageFactory.js), which spec.Message
// cannot express.
func withNulls(b []byte, names ...string) []byte {
	for _, n := range names {
		if bytes.Contains(b, []byte(`"`+n+`":`)) || len(b) < 2 {
			continue
		}
		b = append(b[:len(b)-1], `,"`+n+`":null}`...)
	}
	return b
}

// encode encodes m in the endpoint's shape; nulls names the fields rtcomm.js sends as null.
func (e *Endpoint) encode(m *spec.Message, nulls ...string) ([]byte, error) {
	b, err := spec.Encode(m)
	if err != nil || e.cfg.Shape != ShapeRtcommJS {
		return b, err
	}
	return withNulls(b, nulls...), nil
}

// addSession puts s in the table; false if the endpoint is closed or the ID is taken.
func (e *Endpoint) addSession(s *Session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	if _, dup := e.sessions[s.id]; dup {
		return false
	}
	if e.sessions == nil {
		e.sessions = make(map[string]*Session)
	}
	e.sessions[s.id] = s
	if s.outbound {
		if e.calls == nil {
			e.calls = make(map[string]*Session)
		}
		e.calls[s.transID] = s
	}
	e.nSessions.Add(1)
	return true
}

func (e *Endpoint) removeSession(s *Session) {
	e.mu.Lock()
	if e.sessions[s.id] == s {
		delete(e.sessions, s.id)
	}
	if s.outbound && e.calls[s.transID] == s {
		delete(e.calls, s.transID)
	}
	e.mu.Unlock()
}
