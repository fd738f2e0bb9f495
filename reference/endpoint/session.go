package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

type state uint8

const (
	stCalling     state = iota // outbound: START_SESSION sent, no reply yet
	stQueued                   // outbound: PRANSWER with holdTimeout or queuePosition
	stProgress                 // outbound: PRANSWER without them
	stRinging                  // inbound: not answered yet
	stEstablished              // answered
	stEnded
)

var stateNames = [...]string{"calling", "queued", "progress", "ringing", "established", "ended"}

func (s state) String() string { return stateNames[s] }

// maxEarlyQueue bounds the MESSAGEs an unanswered call holds back.
const maxEarlyQueue = 1024

// inviteGrace is how much longer than the caller's wait an unanswered invite lives.
const inviteGrace = 5 * time.Second

// Session is one signaling session (sigSessID), outbound (Call) or inbound (Invite).
// It leaves the endpoint's table when it ends; Done is closed then.
type Session struct {
	e         *Endpoint
	id        string
	transID   string // of the START_SESSION
	outbound  bool
	start     *spec.Message
	protocols []string
	handler   func(*Session, *spec.Message)

	done       chan struct{}
	answered   chan struct{} // outbound only
	pranswered chan struct{} // outbound only
	events     chan *spec.Message

	mu         sync.Mutex
	peer       string
	peerTopic  string // the peer's fromTopic: where our messages go (plus "/<myID>")
	startTopic string // outbound: where the START_SESSION went (rtcomm.js's transaction topic)
	state      state
	queue      [][]byte // encoded MESSAGEs held until the peer's first reply
	pranswer   *spec.Message
	resp       *spec.Message
	err        error
	timer      *time.Timer
	deadline   time.Time
	overflow   []*spec.Message
	draining   bool
}

func (e *Endpoint) newSession(id string, outbound bool, handler func(*Session, *spec.Message)) *Session {
	s := &Session{e: e, id: id, outbound: outbound, done: make(chan struct{}), handler: handler}
	if s.handler == nil {
		s.handler = e.cfg.OnSessionMessage
	}
	if s.handler == nil {
		s.events = make(chan *spec.Message, e.cfg.EventBuffer)
	}
	if outbound {
		s.answered = make(chan struct{})
		s.pranswered = make(chan struct{})
	}
	return s
}

// ID is the sigSessID.
func (s *Session) ID() string { return s.id }

// TransID is the transID of the START_SESSION.
func (s *Session) TransID() string { return s.transID }

// Outbound reports whether this endpoint placed the call.
func (s *Session) Outbound() bool { return s.outbound }

// Start is the START_SESSION (sent or received; a received one without its payload
// under Config.DropPayloads). Do not modify it.
func (s *Session) Start() *spec.Message { return s.start }

// Protocols are the session's sub-protocols (inbound: those in common with the caller).
func (s *Session) Protocols() []string { return s.protocols }

// Peer is the other endpoint's ID (for a call, updated to the answerer's ID).
func (s *Session) Peer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer
}

// PeerTopic is the peer's latest fromTopic: where this session's messages go.
func (s *Session) PeerTopic() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerTopic
}

// State names the session's state: calling, queued, progress, ringing, established, ended.
func (s *Session) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.String()
}

// Events delivers the in-session messages received (PRANSWER, MESSAGE,
// STOP_SESSION) in arrival order. It is nil when a session message handler is set
// (Config.OnSessionMessage, WithEventHandler). It is never closed: use Done. When
// the reader falls behind by more than Config.EventBuffer, the excess waits in a
// queue fed to the channel until the session ends.
func (s *Session) Events() <-chan *spec.Message { return s.events }

// Pranswered is closed when the first PRANSWER arrives (outbound only; nil otherwise).
func (s *Session) Pranswered() <-chan struct{} { return s.pranswered }

// Pranswer is the latest PRANSWER received, or nil (without its payload under
// Config.DropPayloads).
func (s *Session) Pranswer() *spec.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pranswer
}

// Response is the final RESPONSE SUCCESS received, or nil (without its payload under
// Config.DropPayloads).
func (s *Session) Response() *spec.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resp
}

// Done is closed when the session has ended (stopped by either side, rejected,
// timed out, or the endpoint closed).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended: *Stopped, *Rejected, ErrTimeout, ErrClosed...
// It is nil while the session lives.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Await waits for the final RESPONSE of an outbound call. A FAILURE is a *Rejected,
// no reply in time (PranswerTimeout, then AnswerTimeout or the PRANSWER's
// holdTimeout) is ErrTimeout; a STOP_SESSION before the answer is a *Stopped.
// The session goes on when ctx ends first.
func (s *Session) Await(ctx context.Context) (*spec.Message, error) {
	if !s.outbound {
		return nil, errors.New("await: session " + s.id + " is inbound")
	}
	select {
	case <-s.answered:
		return s.Response(), nil
	default:
	}
	select {
	case <-s.answered:
		return s.Response(), nil
	case <-s.done:
		select {
		case <-s.answered: // answered, then stopped at once
			return s.Response(), nil
		default:
		}
		return nil, s.Err()
	case <-ctx.Done():
		return nil, fmt.Errorf("await %s: %w", s.id, ctx.Err())
	}
}

// Send sends a MESSAGE with payload to the peer. On an outbound call not yet
// answered it is held back (like rtcomm.js) until a PRANSWER without
// holdTimeout/queuePosition or the answer arrives, unless Config.SendEarly.
func (s *Session) Send(ctx context.Context, payload json.RawMessage) error {
	m := &spec.Message{Method: spec.MethodMessage, FromTopic: s.e.addr, SigSessID: s.id, Payload: payload}
	s.mu.Lock()
	jsTopic := s.jsShapeLocked(m)
	s.mu.Unlock()
	b, err := s.e.encode(m, "payload")
	if err != nil {
		return fmt.Errorf("send %s: %w", s.id, err)
	}
	s.mu.Lock()
	switch s.state {
	case stEnded:
		err := s.err
		s.mu.Unlock()
		return fmt.Errorf("send %s: %w (%w)", s.id, ErrSessionEnded, err)
	case stCalling, stQueued:
		if !s.e.cfg.SendEarly {
			if len(s.queue) >= maxEarlyQueue {
				s.mu.Unlock()
				return fmt.Errorf("send %s: %d messages already wait for the answer", s.id, maxEarlyQueue)
			}
			s.queue = append(s.queue, b)
			s.mu.Unlock()
			return nil
		}
	}
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	if jsTopic != "" {
		topic = spec.Join(jsTopic, s.e.cfg.ID)
	}
	s.mu.Unlock()
	// Published after unlocking: a held-back queue is flushed under the lock before
	// the state changes, so it always precedes this message.
	if err := s.e.client.Publish(ctx, topic, s.e.cfg.QoS, false, b); err != nil {
		return fmt.Errorf("send %s: %w", s.id, err)
	}
	return nil
}

// jsShapeLocked adds what rtcomm.js puts on every session message (SigSession.js
// createMessage: toEndpointID, protocols) and, while the START_SESSION's transaction is
// open, its transID (SigSession.js send -> Transaction.send); it returns the topic such a
// message goes to: the transaction's, where the START_SESSION went ("" = the peer's topic).
func (s *Session) jsShapeLocked(m *spec.Message) string {
	if s.e.cfg.Shape != ShapeRtcommJS {
		return ""
	}
	m.ToEndpointID, m.Protocols = s.peer, s.protocols
	if m.Protocols == nil {
		m.Protocols = []string{}
	}
	switch {
	case s.outbound && (s.state == stCalling || s.state == stQueued || s.state == stProgress):
		m.TransID = s.transID
		return s.startTopic
	case !s.outbound && s.state == stRinging:
		m.TransID = s.transID
	}
	return ""
}

// SendCandidate trickles one ICE candidate: payload {webrtc: {type: icecandidate, candidate}}.
func (s *Session) SendCandidate(ctx context.Context, c spec.ICECandidate) error {
	return s.Send(ctx, spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.ICECandType, Candidate: &c}))
}

// Stop ends the session and sends STOP_SESSION (no transID, no reply expected) to
// the peer's fromTopic. Stopping an ended session does nothing.
func (s *Session) Stop(ctx context.Context, reason string) error {
	m := &spec.Message{Method: spec.MethodStopSession, FromTopic: s.e.addr, SigSessID: s.id, Reason: reason}
	s.mu.Lock()
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	if s.e.cfg.Shape == ShapeRtcommJS {
		// SigSession.js stop: no transID, no reason, payload null, to the latest fromTopic.
		m.ToEndpointID, m.Protocols, m.Reason = s.peer, s.protocols, ""
	}
	s.mu.Unlock()
	if !s.end(&Stopped{Reason: reason}) {
		return nil
	}
	b, err := s.e.encode(m, "payload")
	if err != nil {
		return fmt.Errorf("stop %s: %w", s.id, err)
	}
	if err := s.e.client.Publish(ctx, topic, s.e.cfg.QoS, false, b); err != nil {
		return fmt.Errorf("stop %s: %w", s.id, err)
	}
	return nil
}

// end moves the session to ended with err; false if it had already ended.
func (s *Session) end(err error) bool {
	s.mu.Lock()
	if s.state == stEnded {
		s.mu.Unlock()
		return false
	}
	s.state = stEnded
	s.err = err
	s.queue = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.e.removeSession(s) // before Done fires: whoever waits on Done sees the table without it
	close(s.done)
	return true
}

// armLocked (re)starts the session's single timer: a runtime timer, no goroutine
// until it fires. The deadline guards against a Reset racing a firing timer.
func (s *Session) armLocked(d time.Duration) {
	s.deadline = time.Now().Add(d)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.onTimer)
	} else {
		s.timer.Reset(d)
	}
}

func (s *Session) onTimer() {
	s.mu.Lock()
	if s.state == stEnded || s.state == stEstablished {
		s.mu.Unlock()
		return
	}
	if rem := time.Until(s.deadline); rem > 0 {
		s.timer.Reset(rem)
		s.mu.Unlock()
		return
	}
	st := s.state
	s.mu.Unlock()
	var what string
	switch st {
	case stCalling:
		what = fmt.Sprintf("no PRANSWER or RESPONSE within %s", s.e.cfg.PranswerTimeout)
	case stRinging:
		what = "inbound call neither accepted nor rejected in time"
	default:
		what = "no final RESPONSE in time after PRANSWER"
	}
	if !s.end(fmt.Errorf("session %s: %s: %w", s.id, what, ErrTimeout)) || st != stCalling || s.e.cfg.Shape == ShapeRtcommJS {
		return // rtcomm.js's session_failed sends nothing (SigSession.js start)
	}
	// A caller with no reply at all cancels: without it the callee may still answer, and
	// connector and callee would keep a session nobody holds. After a PRANSWER the
	// connector reaps the session itself (SESS-009); a cancel would pre-empt it.
	s.mu.Lock()
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	s.mu.Unlock()
	s.e.publishAsync(topic, &spec.Message{Method: spec.MethodStopSession, FromTopic: s.e.addr, SigSessID: s.id, Reason: "timeout"})
}

// deliver hands m to the handler or the events channel, never blocking the
// receive goroutine: when the channel is full, m waits in overflow, which a
// goroutine that lives at most as long as the session feeds to the channel.
func (s *Session) deliver(m *spec.Message) {
	if s.handler != nil {
		s.handler(s, m)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.overflow) == 0 {
		select {
		case s.events <- m:
			return
		default:
		}
	}
	s.overflow = append(s.overflow, m)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
}

func (s *Session) drain() {
	for {
		s.mu.Lock()
		if len(s.overflow) == 0 {
			s.overflow, s.draining = nil, false
			s.mu.Unlock()
			return
		}
		m := s.overflow[0]
		s.mu.Unlock()
		select {
		case s.events <- m:
			s.mu.Lock()
			s.overflow[0] = nil
			s.overflow = s.overflow[1:]
			s.mu.Unlock()
		case <-s.done:
			// Nothing more will arrive; keep what still fits, drop the rest.
			s.mu.Lock()
			for _, m := range s.overflow {
				select {
				case s.events <- m:
					continue
				default:
				}
				break
			}
			s.overflow, s.draining = nil, false
			s.mu.Unlock()
			return
		}
	}
}

// flushLocked sends the held-back MESSAGEs; called under s.mu as the call
// progresses, so a concurrent Send cannot overtake them.
func (s *Session) flushLocked() {
	if len(s.queue) == 0 {
		return
	}
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	for _, b := range s.queue {
		s.e.client.PublishAsync(topic, s.e.cfg.QoS, false, b)
	}
	s.queue = nil
}

// onResponse handles the final RESPONSE to our START_SESSION (receive goroutine).
func (s *Session) onResponse(from string, m *spec.Message) {
	s.mu.Lock()
	if s.state == stEnded {
		s.mu.Unlock()
		s.e.nUnexpected.Add(1)
		return
	}
	if m.FromTopic != "" {
		s.peerTopic = m.FromTopic
	}
	if m.Result != spec.ResultSuccess {
		s.mu.Unlock()
		reason := m.Reason
		if m.Result != spec.ResultFailure {
			reason = fmt.Sprintf("result %q: %s", m.Result, m.Reason)
		}
		s.end(&Rejected{Reason: reason})
		return
	}
	if from != "" {
		s.peer = from // a queue or a referral may be answered by someone else
	}
	s.resp = s.e.held(m)
	s.state = stEstablished
	if s.timer != nil {
		s.timer.Stop()
	}
	s.flushLocked()
	s.mu.Unlock()
	close(s.answered)
}

// onInSession handles PRANSWER, MESSAGE and STOP_SESSION (receive goroutine).
func (s *Session) onInSession(from string, m *spec.Message) {
	s.mu.Lock()
	if s.state == stEnded {
		s.mu.Unlock()
		s.e.nUnknownSess.Add(1)
		return
	}
	if m.FromTopic != "" {
		s.peerTopic = m.FromTopic // rtcomm.js follows the latest fromTopic
	}
	switch m.Method {
	case spec.MethodPranswer:
		if !s.outbound || s.state == stEstablished {
			s.mu.Unlock()
			s.e.nUnexpected.Add(1)
			s.e.log.Warn("PRANSWER in the wrong state", "endpoint", s.e.cfg.ID, "sigSessID", s.id)
			return
		}
		first := s.pranswer == nil
		s.pranswer = s.e.held(m)
		d := s.e.cfg.AnswerTimeout
		if m.HoldTimeout != nil && *m.HoldTimeout > 0 {
			d = time.Duration(*m.HoldTimeout) * time.Second
		}
		s.armLocked(d)
		// rtcomm.js: holdTimeout or a non-zero queuePosition means "queued" (keep
		// holding MESSAGEs back); otherwise "have_pranswer" releases them.
		if (m.HoldTimeout != nil && *m.HoldTimeout != 0) || (m.QueuePosition != nil && *m.QueuePosition != 0) {
			if s.state == stCalling {
				s.state = stQueued
			}
		} else {
			s.state = stProgress
			s.flushLocked()
		}
		s.mu.Unlock()
		if first {
			close(s.pranswered)
		}
		s.deliver(m)
	case spec.MethodStopSession:
		s.mu.Unlock()
		s.deliver(m)
		s.end(&Stopped{Reason: m.Reason, Remote: true})
	default:
		s.mu.Unlock()
		s.deliver(m)
	}
}

// CallOption adjusts one Call.
type CallOption func(*callOptions)

type callOptions struct {
	protocols  []string
	appContext string
	sessionID  string
	transID    string
	topic      string
	payload    json.RawMessage
	handler    func(*Session, *spec.Message)
}

// WithProtocols sets the START_SESSION's protocols (default Config.Protocols).
func WithProtocols(p ...string) CallOption { return func(o *callOptions) { o.protocols = p } }

// WithAppContext sets the START_SESSION's appContext (default Config.AppContext).
func WithAppContext(a string) CallOption { return func(o *callOptions) { o.appContext = a } }

// WithSessionID uses id as sigSessID instead of a new UUID (REFER carries one).
func WithSessionID(id string) CallOption { return func(o *callOptions) { o.sessionID = id } }

// WithTransID uses id as the START_SESSION's transID instead of a new UUID (the load
// generator matches every reply to the request it answers before Call returns).
func WithTransID(id string) CallOption { return func(o *callOptions) { o.transID = id } }

// WithTopic sends the START_SESSION to topic (plus "/<myID>"), e.g. a call queue's.
func WithTopic(t string) CallOption { return func(o *callOptions) { o.topic = t } }

// WithPayload sets the offer when Call's payload argument is nil (Refer.Accept uses it).
func WithPayload(p json.RawMessage) CallOption { return func(o *callOptions) { o.payload = p } }

// WithEventHandler receives this session's in-session messages instead of Events().
func WithEventHandler(h func(*Session, *spec.Message)) CallOption {
	return func(o *callOptions) { o.handler = h }
}

// Call sends START_SESSION (new transID and sigSessID, protocols, fromTopic = our
// address, toEndpointID = callee, payload = usually the offer) to the connector
// topic, or in Direct mode straight to the callee's address from presence, and
// returns the session at once: Await waits for the answer.
func (e *Endpoint) Call(ctx context.Context, callee string, payload json.RawMessage, opts ...CallOption) (*Session, error) {
	if err := spec.ValidateEndpointID(callee); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	o := callOptions{protocols: e.cfg.Protocols, appContext: e.cfg.AppContext}
	for _, f := range opts {
		f(&o)
	}
	if payload == nil {
		payload = o.payload
	}
	target := e.topics.Resolve(o.topic)
	if target == "" {
		if e.cfg.Direct {
			d, err := e.Lookup(ctx, callee)
			if err != nil {
				return nil, fmt.Errorf("call %s: %w", callee, err)
			}
			target = d.Address()
		} else {
			target = e.ConnectorTopic()
		}
	}
	id := o.sessionID
	if id == "" {
		id = uuid.NewString()
	}
	s := e.newSession(id, true, o.handler)
	s.transID = o.transID
	if s.transID == "" {
		s.transID = uuid.NewString()
	}
	s.peer = callee
	s.peerTopic = target
	s.startTopic = target
	s.protocols = o.protocols
	s.start = &spec.Message{Method: spec.MethodStartSession, FromTopic: e.addr, TransID: s.transID,
		SigSessID: id, ToEndpointID: callee, AppContext: o.appContext, Protocols: o.protocols, Payload: payload}
	if !e.addSession(s) {
		if e.isClosed() {
			return nil, fmt.Errorf("call %s: %w", callee, ErrClosed)
		}
		return nil, fmt.Errorf("call %s: sigSessID %s already in use", callee, id)
	}
	s.mu.Lock()
	s.armLocked(e.cfg.PranswerTimeout)
	s.mu.Unlock()
	if err := e.publish(ctx, spec.Join(target, e.cfg.ID), s.start); err != nil {
		s.end(err)
		return nil, fmt.Errorf("call %s: %w", callee, err)
	}
	return s, nil
}

// Invite is an inbound START_SESSION waiting for Accept or Reject. Its session
// exists already: messages the caller trickles before the answer are in
// Session().Events(), and an unanswered invite expires (Config.InviteTimeout).
type Invite struct {
	s *Session
	m *spec.Message // the START_SESSION as received (the session may keep only its envelope)
}

// Caller is the caller's endpoint ID (the START_SESSION topic's last level).
func (inv *Invite) Caller() string { return inv.s.peer }

// Message is the START_SESSION as received. Do not modify it.
func (inv *Invite) Message() *spec.Message { return inv.m }

// Session is the session the invite belongs to.
func (inv *Invite) Session() *Session { return inv.s }

// PranswerOptions are the optional parts of a PRANSWER.
type PranswerOptions struct {
	HoldTimeout   *int // seconds the caller should wait for the answer
	QueuePosition *int // 0 = being connected
	Payload       json.RawMessage
}

// Pranswer sends PRANSWER (transID and sigSessID of the invite) to the caller's fromTopic.
func (inv *Invite) Pranswer(ctx context.Context, o PranswerOptions) error {
	s := inv.s
	s.mu.Lock()
	if s.state != stRinging {
		st, err := s.state, s.err
		s.mu.Unlock()
		return inv.stateErr("pranswer", st, err)
	}
	d := s.e.cfg.InviteTimeout
	if o.HoldTimeout != nil && *o.HoldTimeout > 0 {
		d = time.Duration(*o.HoldTimeout)*time.Second + inviteGrace
	}
	s.armLocked(d)
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	s.mu.Unlock()
	if err := s.e.client.Publish(ctx, topic, s.e.cfg.QoS, false, s.pranswerBytes(o)); err != nil {
		return fmt.Errorf("pranswer %s: %w", s.id, err)
	}
	return nil
}

// pranswerBytes encodes a PRANSWER of this inbound session (SigSession.js pranswer).
func (s *Session) pranswerBytes(o PranswerOptions) []byte {
	m := &spec.Message{Method: spec.MethodPranswer, FromTopic: s.e.addr, TransID: s.transID, SigSessID: s.id,
		Protocols: s.protocols, Payload: o.Payload, HoldTimeout: o.HoldTimeout, QueuePosition: o.QueuePosition}
	if s.e.cfg.Shape == ShapeRtcommJS {
		m.ToEndpointID = s.Peer()
	}
	b, _ := s.e.encode(m, "payload") // every field is a plain string, int or raw object
	return b
}

// Accept answers RESPONSE SUCCESS with payload (usually the SDP answer) and returns
// the established session.
func (inv *Invite) Accept(ctx context.Context, payload json.RawMessage) (*Session, error) {
	s := inv.s
	s.mu.Lock()
	if s.state != stRinging {
		st, err := s.state, s.err
		s.mu.Unlock()
		return nil, inv.stateErr("accept", st, err)
	}
	s.state = stEstablished
	if s.timer != nil {
		s.timer.Stop()
	}
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	s.mu.Unlock()
	m := &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodStartSession, FromTopic: s.e.addr,
		TransID: s.transID, SigSessID: s.id, Result: spec.ResultSuccess, Protocols: s.protocols, Payload: payload}
	if s.e.cfg.Shape == ShapeRtcommJS {
		m.FromTopic = "" // SigSession.js respond: createResponse leaves fromTopic null
	}
	b, err := s.e.encode(m, "fromTopic")
	if err == nil {
		err = s.e.client.Publish(ctx, topic, s.e.cfg.QoS, false, b)
	}
	if err != nil {
		s.end(err)
		return nil, fmt.Errorf("accept %s: %w", s.id, err)
	}
	return s, nil
}

// Reject answers RESPONSE FAILURE with reason; the session ends with *Rejected.
func (inv *Invite) Reject(ctx context.Context, reason string) error {
	s := inv.s
	s.mu.Lock()
	if s.state != stRinging {
		st, err := s.state, s.err
		s.mu.Unlock()
		return inv.stateErr("reject", st, err)
	}
	topic := spec.Join(s.peerTopic, s.e.cfg.ID)
	s.mu.Unlock()
	if !s.end(&Rejected{Reason: reason}) {
		return fmt.Errorf("reject %s: %w (%w)", s.id, ErrSessionEnded, s.Err())
	}
	if err := s.e.client.Publish(ctx, topic, s.e.cfg.QoS, false, s.e.failureBytes(spec.MethodStartSession, s.transID, s.id, s.protocols, reason)); err != nil {
		return fmt.Errorf("reject %s: %w", s.id, err)
	}
	return nil
}

func (inv *Invite) stateErr(op string, st state, err error) error {
	if st == stEnded {
		return fmt.Errorf("%s %s: %w (%w)", op, inv.s.id, ErrSessionEnded, err)
	}
	return fmt.Errorf("%s %s: %w", op, inv.s.id, ErrAnswered)
}

func failure(from string, orig spec.Method, transID, sigSessID, reason string) *spec.Message {
	return &spec.Message{Method: spec.MethodResponse, Orig: orig, FromTopic: from, TransID: transID,
		SigSessID: sigSessID, Result: spec.ResultFailure, Reason: reason}
}

// failureBytes encodes a RESPONSE FAILURE in the endpoint's shape: rtcomm.js's
// (SigSession.js respond(false)) has fromTopic null, the caller's protocols and payload null.
func (e *Endpoint) failureBytes(orig spec.Method, transID, sigSessID string, protocols []string, reason string) []byte {
	m := failure(e.addr, orig, transID, sigSessID, reason)
	nulls := []string{"fromTopic"}
	if e.cfg.Shape == ShapeRtcommJS {
		m.FromTopic = ""
		if orig == spec.MethodStartSession {
			m.Protocols = protocols
			if m.Protocols == nil {
				m.Protocols = []string{}
			}
			nulls = append(nulls, "payload")
		}
	}
	b, _ := e.encode(m, nulls...)
	return b
}

// held is what a session keeps of a received message: all of it, or with
// Config.DropPayloads its envelope (the payload was checked by OnMessage and handed to the
// callbacks; a held call need not keep its SDP).
func (e *Endpoint) held(m *spec.Message) *spec.Message {
	if e.cfg.DropPayloads {
		return m.Envelope()
	}
	return m
}

// onStartSession turns an inbound START_SESSION into an Invite (receive goroutine).
func (e *Endpoint) onStartSession(from string, m *spec.Message) {
	if m.FromTopic == "" || m.TransID == "" || from == "" {
		e.nUnexpected.Add(1)
		e.log.Warn("START_SESSION without fromTopic, transID or sender: cannot answer", "endpoint", e.cfg.ID, "from", from)
		return
	}
	reply := spec.Join(m.FromTopic, e.cfg.ID)
	if m.SigSessID == "" {
		e.nUnexpected.Add(1)
		e.publishAsync(reply, failure(e.addr, spec.MethodStartSession, m.TransID, "", "START_SESSION without sigSessID"))
		return
	}
	js := e.cfg.Shape == ShapeRtcommJS
	if js && e.busy() {
		// rtcomm.js: an endpoint already in a session is not available (RtcommEndpoint.js
		// newSession -> SigSession.js fail('Busy')).
		e.nBusy.Add(1)
		e.client.PublishAsync(reply, e.cfg.QoS, false, e.failureBytes(spec.MethodStartSession, m.TransID, m.SigSessID, m.Protocols, "Busy"))
		return
	}
	common := e.cfg.Protocols
	if len(m.Protocols) > 0 || js {
		common = spec.CommonProtocols(m.Protocols, e.cfg.Protocols)
	}
	if len(common) == 0 {
		reason := "no protocol in common"
		if js {
			reason = "No common protocols" // RtcommEndpoint.js newSession
		}
		e.client.PublishAsync(reply, e.cfg.QoS, false, e.failureBytes(spec.MethodStartSession, m.TransID, m.SigSessID, m.Protocols, reason))
		return
	}
	s := e.newSession(m.SigSessID, false, nil)
	s.transID = m.TransID
	s.start = e.held(m)
	s.peer = from
	s.peerTopic = m.FromTopic
	s.protocols = common
	s.state = stRinging
	if !e.addSession(s) {
		e.nUnexpected.Add(1) // a duplicate START_SESSION, or we are closing
		e.log.Warn("START_SESSION for a live sigSessID, ignored", "endpoint", e.cfg.ID, "sigSessID", m.SigSessID)
		return
	}
	s.mu.Lock()
	s.armLocked(e.cfg.InviteTimeout)
	s.mu.Unlock()
	if js {
		// rtcomm.js PRANSWERs at once: without payload when it alerts (Chat.js
		// _processMessage, RtcommEndpoint.js newSession), then, for a webrtc offer, with
		// {type: pranswer, sdp: ""} once the offer is set (WebRTCConnection.js _processMessage).
		e.client.PublishAsync(reply, e.cfg.QoS, false, s.pranswerBytes(PranswerOptions{}))
		if p, ok, _ := m.WebRTC(); ok && p.Type == spec.SDPOffer {
			e.client.PublishAsync(reply, e.cfg.QoS, false, s.pranswerBytes(PranswerOptions{
				Payload: json.RawMessage(`{"webrtc":{"type":"pranswer","sdp":""}}`)}))
		}
	}
	inv := &Invite{s: s, m: m}
	if e.cfg.OnInvite != nil {
		e.cfg.OnInvite(inv)
		return
	}
	select {
	case e.incoming <- inv:
	default:
		e.nBusy.Add(1)
		s.end(&Rejected{Reason: "busy"})
		e.client.PublishAsync(reply, e.cfg.QoS, false, e.failureBytes(spec.MethodStartSession, m.TransID, m.SigSessID, m.Protocols, "busy"))
	}
}

// busy reports whether the endpoint holds a live session (rtcomm.js's single
// RtcommEndpoint is then not available).
func (e *Endpoint) busy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions) > 0
}

// Refer is an inbound REFER: the connector asks this endpoint to call someone.
type Refer struct {
	e       *Endpoint
	m       *spec.Message
	from    string
	details spec.ReferDetails
	at      time.Time
	mu      sync.Mutex
	done    bool
}

// Message is the REFER as received. Do not modify it.
func (r *Refer) Message() *spec.Message { return r.m }

// From is the sender's ID (the topic's last level).
func (r *Refer) From() string { return r.from }

// Details are the REFER's details {sessionID, toEndpointID}.
func (r *Refer) Details() spec.ReferDetails { return r.details }

// Target is whom to call: details.toEndpointID, else toEndpointID.
func (r *Refer) Target() string {
	if r.details.ToEndpointID != "" {
		return r.details.ToEndpointID
	}
	return r.m.ToEndpointID
}

func (r *Refer) answer(ctx context.Context, result, reason string) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return fmt.Errorf("refer %s: %w", r.m.TransID, ErrAnswered)
	}
	r.done = true
	r.mu.Unlock()
	if age := time.Since(r.at); age > r.e.cfg.ReferTimeout {
		return fmt.Errorf("refer %s: %s old: %w", r.m.TransID, age.Round(time.Millisecond), ErrTimeout)
	}
	m := &spec.Message{Method: spec.MethodResponse, Orig: spec.MethodRefer, FromTopic: r.e.addr,
		TransID: r.m.TransID, Result: result, Reason: reason}
	if r.e.cfg.Shape == ShapeRtcommJS {
		m.FromTopic = "" // SigSession.js: createResponse('REFER') leaves fromTopic null
	}
	b, err := r.e.encode(m, "fromTopic")
	if err == nil {
		err = r.e.client.Publish(ctx, spec.Join(r.m.FromTopic, r.e.cfg.ID), r.e.cfg.QoS, false, b)
	}
	if err != nil {
		return fmt.Errorf("refer %s: %w", r.m.TransID, err)
	}
	return nil
}

// Accept answers RESPONSE SUCCESS to <fromTopic>/<myID>, then calls Target with the
// REFER's sessionID as sigSessID (as rtcomm.js does). Pass the offer with WithPayload.
//
// In ShapeRtcommJS the order is rtcomm.js's (SigSession.js start: session_started and
// session_failed finish the referral transaction): the call first, the REFER's RESPONSE
// only once the referred session is answered (SUCCESS) or has failed (FAILURE, its reason),
// and none if neither happens within ReferTimeout.
func (r *Refer) Accept(ctx context.Context, opts ...CallOption) (*Session, error) {
	if r.details.SessionID != "" {
		opts = append([]CallOption{WithSessionID(r.details.SessionID)}, opts...)
	}
	if r.e.cfg.Shape == ShapeRtcommJS {
		if r.m.AppContext != "" {
			opts = append(opts, WithAppContext(r.m.AppContext)) // SigSession.js: appContext of the REFER
		}
		s, err := r.e.Call(ctx, r.Target(), nil, opts...)
		if err != nil {
			return nil, err
		}
		go r.answerOutcome(s)
		return s, nil
	}
	if err := r.answer(ctx, spec.ResultSuccess, ""); err != nil {
		return nil, err
	}
	return r.e.Call(ctx, r.Target(), nil, opts...)
}

// answerOutcome answers the REFER with the referred session's outcome (ShapeRtcommJS).
func (r *Refer) answerOutcome(s *Session) {
	left := r.e.cfg.ReferTimeout - time.Since(r.at)
	ctx, cancel := context.WithTimeout(context.Background(), left)
	defer cancel()
	_, err := s.Await(ctx)
	if ctx.Err() != nil {
		return // rtcomm.js's referral transaction times out silently
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	result, reason := spec.ResultSuccess, ""
	if err != nil {
		result, reason = spec.ResultFailure, "Session Start failed for unknown reason"
		var rej *Rejected
		if errors.As(err, &rej) && rej.Reason != "" {
			reason = rej.Reason
		}
	}
	if aerr := r.answer(pctx, result, reason); aerr != nil {
		r.e.log.Warn("REFER answer after the referred session", "endpoint", r.e.cfg.ID, "err", aerr)
	}
}

// Reject answers RESPONSE FAILURE with reason.
func (r *Refer) Reject(ctx context.Context, reason string) error {
	return r.answer(ctx, spec.ResultFailure, reason)
}

// onRefer delivers an inbound REFER (receive goroutine).
func (e *Endpoint) onRefer(from string, m *spec.Message) {
	if m.TransID == "" || m.FromTopic == "" {
		e.nUnexpected.Add(1)
		e.log.Warn("REFER without transID or fromTopic: cannot answer", "endpoint", e.cfg.ID)
		return
	}
	r := &Refer{e: e, m: m, from: from, at: time.Now()}
	reply := spec.Join(m.FromTopic, e.cfg.ID)
	if len(m.Details) > 0 {
		if err := json.Unmarshal(m.Details, &r.details); err != nil {
			e.nMalformed.Add(1)
		}
	}
	if err := spec.ValidateEndpointID(r.Target()); err != nil {
		r.done = true
		e.publishAsync(reply, failure(e.addr, spec.MethodRefer, m.TransID, "", "REFER target: "+err.Error()))
		return
	}
	if e.cfg.OnRefer != nil {
		e.cfg.OnRefer(r)
		return
	}
	select {
	case e.refers <- r:
	default:
		e.nBusy.Add(1)
		r.done = true
		e.publishAsync(reply, failure(e.addr, spec.MethodRefer, m.TransID, "", "busy"))
	}
}
