package connector

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// sessState is where a tracked session stands. Stopped and failed sessions are
// removed from the table at once, so they need no state of their own.
type sessState uint8

const (
	stateStarting    sessState = iota // START_SESSION forwarded
	statePranswered                   // callee sent PRANSWER
	stateEstablished                  // callee answered RESPONSE SUCCESS
)

// calleeKind says how the callee was found.
type calleeKind uint8

const (
	kindEndpoint calleeKind = iota // a registered endpoint: callee known from the start
	kindQueue                      // a call queue: the agent is known from its first reply
	kindScheme                     // a scheme gateway: its sender ID is known from its first reply
)

// maxHeld bounds the caller messages kept for a queue call until an agent answers.
const maxHeld = 64

type party struct {
	id    string // endpoint ID: the last level of its topics
	topic string // its address / latest fromTopic: messages for it go to <topic>/<peer ID>
}

type heldMsg struct {
	b   []byte
	qos byte
}

// session is one tracked signaling session, keyed by sigSessID.
type session struct {
	id           string // sigSessID
	kind         calleeKind
	state        sessState
	appContext   string
	toEndpointID string // as the caller called it (queue ID, sip:..., endpoint ID)
	transID      string // the START_SESSION's, for the timeout FAILURE
	caller       party
	callee       party
	calleeBound  bool
	created      time.Time
	deadline     time.Time // unanswered sessions are reaped after it
	pcc          *pcc      // the 3PCC request this session completes, if any
	claimed      bool      // another replica's 3PCC request waits for this session's outcome
	held         []heldMsg // caller -> queue messages waiting for the agent
}

// calleeLevel is the sender level of messages delivered to the caller.
func (s *session) calleeLevel() string {
	if s.calleeBound {
		return s.callee.id
	}
	return s.toEndpointID
}

// calleeReachable reports whether messages can be sent to the callee.
func (s *session) calleeReachable() bool { return s.calleeBound || s.kind != kindQueue }

// sessionTable holds the sessions this connector (replica) routed.
type sessionTable struct {
	byID    map[string]*session
	byParty map[string][]*session // endpoint ID -> its sessions, to end them when it leaves
	pending map[string]*session   // not yet answered: the reaper's work list
}

func newSessionTable() sessionTable {
	return sessionTable{byID: map[string]*session{}, byParty: map[string][]*session{}, pending: map[string]*session{}}
}

func (t *sessionTable) add(s *session) {
	t.byID[s.id] = s
	t.pending[s.id] = s
	t.index(s.caller.id, s)
	if s.calleeBound {
		t.index(s.callee.id, s)
	}
}

func (t *sessionTable) remove(s *session) {
	delete(t.byID, s.id)
	delete(t.pending, s.id)
	t.unindex(s.caller.id, s)
	if s.calleeBound {
		t.unindex(s.callee.id, s)
	}
}

func (t *sessionTable) index(id string, s *session) { t.byParty[id] = append(t.byParty[id], s) }

func (t *sessionTable) unindex(id string, s *session) {
	list := t.byParty[id]
	for i, x := range list {
		if x == s {
			last := len(list) - 1
			list[i], list[last] = list[last], nil
			list = list[:last]
			break
		}
	}
	if len(list) == 0 {
		delete(t.byParty, id)
	} else {
		t.byParty[id] = list
	}
}

// --- outbound messages collected under the lock, published after it -----------

type pub struct {
	topic    string
	qos      byte
	retained bool
	raw      []byte
	msg      *spec.Message
}

type outbox []pub

func (o *outbox) msg(topic string, qos byte, m *spec.Message) {
	*o = append(*o, pub{topic: topic, qos: qos, msg: m})
}

func (o *outbox) raw(topic string, qos byte, b []byte) {
	*o = append(*o, pub{topic: topic, qos: qos, raw: b})
}

func (c *Connector) flush(o outbox) {
	for _, p := range o {
		if p.msg != nil {
			c.send(p.topic, p.qos, p.msg)
		} else {
			c.publish(p.topic, p.qos, p.retained, p.raw)
		}
	}
}

// timestampLayout is RFC 3339 with milliseconds, as event timestamps carry.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// event queues RTCOMM_EVENT_FIRED at <events>/session/<action>/<from>/<to>.
func (c *Connector) event(o *outbox, action, from, to, appContext, sigSessID, reason string) {
	if !c.cfg.Events {
		return
	}
	if action != spec.EventFailed {
		reason = "" // a reason only with failed
	}
	if appContext == "" {
		appContext = DefaultAppContext // events always carry one: rtcomm.js's default EVT-002
	}
	o.msg(c.topics.SessionEvent(action, from, to), 0, &spec.Message{ // EVT-001
		Method:     spec.MethodEventFired,
		RtcommVer:  spec.Version,
		Timestamp:  time.Now().UTC().Format(timestampLayout), // EVT-002
		AppContext: appContext,
		SigSessID:  sigSessID,
		Reason:     reason,
	})
}

func (c *Connector) sessionEvent(o *outbox, action string, s *session, reason string) {
	c.event(o, action, s.caller.id, s.toEndpointID, s.appContext, s.id, reason)
}

// --- START_SESSION -----------------------------------------------------------

// resolveLocked finds where a call to toID goes: a call queue, a scheme gateway,
// or a registered endpoint (in that order: the connector owns queue IDs and
// advertised schemes).
func (c *Connector) resolveLocked(toID, appContext string) (calleeKind, string, string, error) {
	if t, ok := c.queues[toID]; ok {
		return kindQueue, t, appContext, nil // QUE-002
	}
	if i := strings.IndexByte(toID, ':'); i > 0 {
		if t, ok := c.schemes[strings.ToLower(toID[:i])]; ok {
			return kindScheme, t, appContext, nil // SCH-001
		}
	}
	if e := c.reg.lookup(toID, appContext); e != nil {
		if appContext == "" {
			appContext = e.appContext
		}
		return kindEndpoint, e.address, appContext, nil
	}
	if appContext != "" {
		return 0, "", "", fmt.Errorf("endpoint %q is not registered in appContext %q", toID, appContext)
	}
	return 0, "", "", fmt.Errorf("endpoint %q is not registered", toID)
}

// startSession validates a START_SESSION from sender and forwards it to the
// callee at <callee address>/<sender>, in the path unless RouteOnly.
func (c *Connector) startSession(sender string, m *spec.Message, decErr error, msg mqttc.Message, t0 time.Time) {
	qos := msg.QoS
	if decErr != nil {
		c.reject(msg.Topic, m, qos, "bad_message", "malformed START_SESSION: "+decErr.Error())
		return
	}
	if missing := firstMissing("transID", m.TransID, "fromTopic", m.FromTopic,
		"sigSessID", m.SigSessID, "toEndpointID", m.ToEndpointID); missing != "" {
		c.reject(msg.Topic, m, qos, "missing_field", "START_SESSION without "+missing) // ROB-002
		return
	}
	if err := c.partyTopic(sender, m.FromTopic); err != nil {
		c.reject(msg.Topic, m, qos, "bad_topic", "fromTopic: "+err.Error()) // ID-014
		return
	}
	if err := spec.ValidateEndpointID(m.ToEndpointID); err != nil {
		c.reject(msg.Topic, m, qos, "bad_endpoint_id", "toEndpointID: "+err.Error()) // ID-001 ID-002 ID-003
		return
	}
	if err := spec.ValidateEndpointID(sender); err != nil {
		c.reject(msg.Topic, m, qos, "bad_endpoint_id", "sender (last topic level): "+err.Error())
		return
	}
	if sender == m.ToEndpointID {
		c.reject(msg.Topic, m, qos, "bad_request", "an endpoint cannot call itself")
		return
	}
	out, err := setFromTopic(msg.Payload, c.inPathJSON) // also in RouteOnly: a 3PCC session stays in the path
	if err != nil {
		c.reject(msg.Topic, m, qos, "bad_message", "START_SESSION: "+err.Error())
		return
	}
	if max(len(out), len(msg.Payload)) > c.cfg.MaxPayload {
		c.reject(msg.Topic, m, qos, "too_large", fmt.Sprintf("START_SESSION of %d bytes exceeds the %d-byte limit",
			max(len(out), len(msg.Payload)), c.cfg.MaxPayload))
		return
	}

	var o outbox
	now := time.Now()
	c.mu.Lock()
	p := c.pcc.forSession(m.SigSessID, sender, m.ToEndpointID)
	claimed := p == nil && c.takeClaimLocked(m.SigSessID, sender, m.ToEndpointID)
	kind, topic, appContext, err := c.resolveLocked(m.ToEndpointID, m.AppContext)
	if err != nil {
		c.event(&o, spec.EventFailed, sender, m.ToEndpointID, m.AppContext, m.SigSessID, err.Error()) // EVT-001
		if p != nil {
			c.answerPCCLocked(p, false, err.Error(), &o)
		}
		if claimed {
			c.claimOutcome(&o, m.SigSessID, false, err.Error())
		}
		c.mu.Unlock()
		c.reject(msg.Topic, m, qos, "unknown_endpoint", err.Error()) // SESS-003
		c.flush(o)
		return
	}
	target := spec.Join(topic, sender) // the callee sees the caller's ID as last level SESS-002
	// A queue call stays in the path even in RouteOnly: only the connector can tell
	// which agent took it (the queue topic would reach a random one).
	if c.cfg.RouteOnly && p == nil && !claimed && kind != kindQueue {
		var rec outbox
		c.rememberRouteOnlyLocked(m.SigSessID, sender, m.FromTopic, m.ToEndpointID, topic, &rec) // before the callee can answer
		c.mu.Unlock()
		c.flush(rec)
		c.publish(target, qos, false, msg.Payload) // untouched: fromTopic stays the caller's SESS-002
		c.countRouted(spec.MethodStartSession, t0)
		c.started.Add(1)
		// Route-only never sees the answer, so `started` fires on forwarding here:
		// the one event a monitor can still get (documented deviation from EVT-001).
		c.event(&o, spec.EventStarted, sender, m.ToEndpointID, appContext, m.SigSessID, "")
		c.flush(o)
		return
	}
	var refuse, code string
	switch {
	case c.sess.byID[m.SigSessID] != nil:
		refuse, code = "sigSessID "+m.SigSessID+" is already in use", "duplicate_session"
	case len(c.sess.byID) >= c.cfg.MaxSessions:
		refuse, code = "connector busy: session table full", "table_full"
	case c.cfg.MaxSessionsPerEndpoint > 0 &&
		(len(c.sess.byParty[sender]) >= c.cfg.MaxSessionsPerEndpoint ||
			len(c.sess.byParty[m.ToEndpointID]) >= c.cfg.MaxSessionsPerEndpoint):
		refuse, code = "too many sessions for one endpoint", "endpoint_limit"
	}
	if refuse != "" {
		if claimed {
			c.claimOutcome(&o, m.SigSessID, false, refuse)
		}
		c.mu.Unlock()
		c.reject(msg.Topic, m, qos, code, refuse)
		c.flush(o)
		return
	}
	s := &session{
		id:           m.SigSessID,
		kind:         kind,
		appContext:   appContext,
		toEndpointID: m.ToEndpointID,
		transID:      m.TransID,
		caller:       party{id: sender, topic: m.FromTopic},
		callee:       party{topic: topic},
		created:      now,
		deadline:     now.Add(c.cfg.AnswerTimeout),
	}
	if kind == kindEndpoint {
		s.callee.id, s.calleeBound = m.ToEndpointID, true
	}
	c.sess.add(s)
	if p != nil {
		p.session, s.pcc = s, p
	}
	s.claimed = claimed
	c.started.Add(1) // the `started` event waits for the answer EVT-001
	var rec outbox
	c.recordLocked(s, &rec) // before the callee can answer: owners.go
	c.mu.Unlock()

	c.flush(rec)
	c.publish(target, qos, false, out) // fromTopic rewritten to the session topic SESS-002 SESS-006
	c.countRouted(spec.MethodStartSession, t0)
	if c.debug {
		c.log.Debug("session started", "sigSessID", s.id, "caller", sender, "callee", m.ToEndpointID, "target", target)
	}
	c.flush(o)
}

// --- relaying ----------------------------------------------------------------

// relay forwards an in-session message from sender to the other party by
// sigSessID, with fromTopic rewritten (and nothing else touched), and moves the
// session along: PRANSWER, RESPONSE, STOP_SESSION change its state.
func (c *Connector) relay(sender string, in *inbound, msg mqttc.Message, t0 time.Time) {
	if len(in.sigSessID) == 0 {
		c.reject(msg.Topic, in.msg(), msg.QoS, "missing_field", string(in.method)+" without sigSessID")
		return
	}
	if in.scanErr != nil || in.s.overflow {
		c.reject(msg.Topic, in.msg(), msg.QoS, "bad_message", "cannot rewrite fromTopic")
		return
	}
	out := splice(in.raw, &in.s, c.inPathJSON) // our topic on every relayed message SESS-006 SESS-007
	if len(out) > c.cfg.MaxPayload {
		c.reject(msg.Topic, in.msg(), msg.QoS, "too_large", fmt.Sprintf("message of %d bytes exceeds the %d-byte limit", len(out), c.cfg.MaxPayload))
		return
	}
	var o outbox
	c.mu.Lock()
	s := c.sess.byID[string(in.sigSessID)]
	if s == nil {
		c.mu.Unlock()
		if c.forwardRouteOnly(sender, in, msg) || c.forwardToOwner(sender, in, msg) || c.holdForRecord(sender, in, msg) {
			return // route-only (routeonly.go), another replica's session, or its record is on the way (owners.go)
		}
		c.unknownSession(sender, in, msg)
		return
	}
	var from *party
	toCallee := false
	switch {
	case sender == s.caller.id:
		from, toCallee = &s.caller, true
	case s.calleeBound && sender == s.callee.id:
		from = &s.callee
	case !s.calleeBound:
		c.bindCalleeLocked(s, sender, string(in.fromTopic), &o) // QUE-002
		from = &s.callee
	default:
		c.mu.Unlock()
		c.reject(msg.Topic, in.msg(), msg.QoS, "not_a_party", sender+" is not a party of session "+s.id) // ID-006
		return
	}
	// Replies go to the peer's fromTopic; follow it as rtcomm.js does.
	if len(in.fromTopic) > 0 && string(in.fromTopic) != from.topic {
		if t := string(in.fromTopic); c.partyTopic(sender, t) == nil { // ID-014
			from.topic = t
		}
	}
	var target string
	switch {
	case !toCallee:
		target = spec.Join(s.caller.topic, s.calleeLevel()) // the caller sees the callee's ID SESS-004 SESS-005
	case s.calleeReachable():
		target = spec.Join(s.callee.topic, s.caller.id) // MSG-002
	case len(s.held) < maxHeld && in.method != spec.MethodStopSession:
		s.held = append(s.held, heldMsg{b: out, qos: msg.QoS}) // until the queue agent is known
	default:
		c.dropped.Add(1)
	}
	c.advanceLocked(s, sender, in, toCallee, &o)
	c.mu.Unlock()
	if target != "" {
		c.publish(target, msg.QoS, false, out) // MSG-002 ICE-002 ICE-003 ICE-004 SESS-008
		c.countRouted(in.method, t0)
	}
	if len(o) > 0 {
		c.flush(o)
	}
}

// advanceLocked is the session state machine, run on every relayed message.
func (c *Connector) advanceLocked(s *session, sender string, in *inbound, toCallee bool, o *outbox) {
	switch in.method {
	case spec.MethodPranswer:
		if !toCallee && s.state != stateEstablished {
			s.state = statePranswered
			d := c.cfg.AnswerTimeout
			if in.hold > 0 {
				d = min(time.Duration(in.hold)*time.Second, MaxHoldTimeout) // SESS-009
			}
			s.deadline = time.Now().Add(d)
		}
	case spec.MethodResponse:
		if toCallee || s.state == stateEstablished || (in.orig != "" && in.orig != spec.MethodStartSession) {
			return
		}
		if string(in.result) == spec.ResultSuccess {
			s.state = stateEstablished
			delete(c.sess.pending, s.id)
			c.established.Add(1)
			c.sessionEvent(o, spec.EventStarted, s, "") // started = answered EVT-001
			c.recordLocked(s, o)                        // the replicas learn it is established
			if s.pcc != nil {
				c.answerPCCLocked(s.pcc, true, "", o) // REF-005
			}
			if s.claimed {
				s.claimed = false
				c.claimOutcome(o, s.id, true, "")
			}
			return
		}
		reason := "rejected by " + s.calleeLevel()
		if len(in.reason) > 0 {
			reason += ": " + string(in.reason)
		}
		c.endLocked(s, reason, "rejected", o)
	case spec.MethodStopSession:
		reason := string(in.reason)
		if reason == "" {
			reason = "stopped by " + sender
		}
		c.endLocked(s, reason, "cancelled", o) // bounded: removed at once SESS-008
	case spec.MethodMessage:
		if c.cfg.Events && s.state == stateEstablished && isRenegotiation(in.payload) {
			c.sessionEvent(o, spec.EventModified, s, "") // EVT-001
		}
	}
}

// isRenegotiation reports whether a MESSAGE payload carries an SDP offer or answer.
func isRenegotiation(payload []byte) bool {
	if !bytes.Contains(payload, []byte(`"offer"`)) && !bytes.Contains(payload, []byte(`"answer"`)) {
		return false // cheap test first: almost every MESSAGE is an ICE candidate
	}
	m := spec.Message{Payload: payload}
	p, ok, err := m.WebRTC()
	return ok && err == nil && (p.Type == spec.SDPOffer || p.Type == spec.SDPAnswer)
}

// bindCalleeLocked records who answered a queue or scheme call and releases
// the caller messages held for it.
func (c *Connector) bindCalleeLocked(s *session, sender, fromTopic string, o *outbox) {
	s.callee.id, s.calleeBound = sender, true
	c.sess.index(sender, s)
	switch {
	case fromTopic != "" && c.partyTopic(sender, fromTopic) == nil: // ID-014
		s.callee.topic = fromTopic
	case c.reg.lookup(sender, s.appContext) != nil:
		s.callee.topic = c.reg.lookup(sender, s.appContext).address
	case s.kind == kindQueue:
		s.callee.topic = c.topics.Inbox(sender) // the queue topic would reach a random agent
	}
	for _, h := range s.held {
		o.raw(spec.Join(s.callee.topic, s.caller.id), h.qos, h.b)
	}
	s.held = nil
	if c.debug {
		c.log.Debug("callee bound", "sigSessID", s.id, "called", s.toEndpointID, "answeredBy", sender)
	}
}

// unknownSession handles an in-session message whose sigSessID is not tracked
// here (ended, reaped, never routed by this replica). It is delivered to no
// other endpoint.
func (c *Connector) unknownSession(sender string, in *inbound, msg mqttc.Message) {
	sid := string(in.sigSessID)
	c.mu.Lock()
	tb, known := c.tombs.get(sid)
	if known && !tb.answered && (in.method == spec.MethodPranswer ||
		(in.method == spec.MethodResponse && string(in.result) == spec.ResultSuccess)) {
		c.tombs.add(sid, tb.peer, true) // told once; later messages of it are dropped
	}
	c.mu.Unlock()
	if known && !tb.answered && (in.method == spec.MethodPranswer ||
		(in.method == spec.MethodResponse && string(in.result) == spec.ResultSuccess)) {
		if t := string(in.fromTopic); t != "" && c.partyTopic(sender, t) == nil { // ID-014
			// A callee accepting a call that is already over (timed out,
			// cancelled): tell it, or it would hold a session nobody else has.
			c.send(spec.Join(t, c.onBehalfOf(tb.peer)), msg.QoS, &spec.Message{Method: spec.MethodStopSession,
				RtcommVer: spec.Version, FromTopic: c.inPath, SigSessID: sid, Reason: "session already ended"})
			c.log.Info("answer for an ended session; STOP_SESSION sent back", "sigSessID", short(sid), "from", short(sender))
			return
		}
	}
	if len(in.transID) > 0 && answerable(in.method) {
		c.reject(msg.Topic, in.msg(), msg.QoS, "unknown_session", "unknown session "+short(sid)) // MSG-003
		return
	}
	if !known && c.predecessorTopic(msg.Topic) && in.method != spec.MethodStopSession &&
		!(in.method == spec.MethodResponse && string(in.result) != spec.ResultSuccess) {
		// A session of the connector that ran on this path before this one (a
		// restart under a new ID): its table is gone, so tell the sender once
		// that the session is over; its peer is told when it speaks. DESIGN.md
		if t := c.replyTopic(sender, string(in.fromTopic)); t != "" {
			c.mu.Lock()
			c.tombs.add(sid, c.id, true)
			c.countFailureLocked("unknown_session")
			c.mu.Unlock()
			c.send(spec.Join(t, c.id), msg.QoS, &spec.Message{Method: spec.MethodStopSession,
				RtcommVer: spec.Version, FromTopic: c.inPath, SigSessID: sid, Reason: "unknown session"}) // MSG-003
			c.log.Info("message for a session this connector does not know; STOP_SESSION sent back",
				"sigSessID", short(sid), "from", short(sender), "method", short(string(in.method)))
			return
		}
	}
	// Late ICE candidates after a STOP are normal traffic: debug only. MSG-003
	c.dropped.Add(1)
	if c.debug {
		c.log.Debug("message for an unknown session dropped", "method", in.method, "sigSessID", sid, "from", sender)
	}
}

// predecessorTopic reports whether topic is another connector's session topic
// <path>connector/<other ID>/<sender> seen while this one is alone on the path:
// the session topic of the connector this one replaced. (Replicas never see
// each other's session topics: those are plain subscriptions.)
func (c *Connector) predecessorTopic(topic string) bool {
	if c.cfg.SharedGroup != "" || !strings.HasPrefix(topic, c.connPrefix) || strings.HasPrefix(topic, c.inPathPrefix) {
		return false
	}
	rest := topic[len(c.connPrefix):]
	i := strings.IndexByte(rest, '/')
	return i > 0 && rest[0] != '~' && strings.IndexByte(rest[i+1:], '/') < 0
}

// replyTopic is where a message for sender goes: its fromTopic, else its registered address.
func (c *Connector) replyTopic(sender, fromTopic string) string {
	if fromTopic != "" && c.partyTopic(sender, fromTopic) == nil { // ID-014
		return fromTopic
	}
	if spec.ValidateEndpointID(sender) != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.reg.lookup(sender, ""); e != nil {
		return e.address
	}
	return ""
}

// tombstones remember recently ended sessions (a fixed ring, so bounded):
// a late answer to an unanswered one is told the session is over, late
// messages of others are dropped quietly, and a session never seen is told
// STOP_SESSION once.
type tombstones struct {
	m    map[string]tomb
	ring []string
	next int
}

type tomb struct {
	peer     string // the caller's ID: sender level of the STOP_SESSION
	answered bool   // established before it ended, or already told: nothing more to say
}

const maxTombstones = 4096

func (t *tombstones) add(id, peer string, answered bool) {
	if t.m == nil {
		t.m, t.ring = make(map[string]tomb), make([]string, maxTombstones)
	}
	if _, ok := t.m[id]; ok {
		t.m[id] = tomb{peer: peer, answered: answered}
		return
	}
	if old := t.ring[t.next]; old != "" {
		delete(t.m, old)
	}
	t.ring[t.next] = id
	t.m[id] = tomb{peer: peer, answered: answered}
	t.next = (t.next + 1) % maxTombstones
}

func (t *tombstones) get(id string) (tomb, bool) {
	tb, ok := t.m[id]
	return tb, ok
}

// --- ending sessions ------------------------------------------------------------

// endLocked removes s, counts its outcome, fires stopped (it was established)
// or failed (it was not), and answers a 3PCC request waiting on it.
func (c *Connector) endLocked(s *session, reason, code string, o *outbox) {
	if c.sess.byID[s.id] != s {
		return // already ended
	}
	c.sess.remove(s)
	c.unrecordLocked(s.id, o)
	if s.state == stateEstablished {
		c.tombs.add(s.id, s.caller.id, true) // its late messages are dropped quietly
		c.stopped.Add(1)
		c.sessionEvent(o, spec.EventStopped, s, "") // EVT-001
		return
	}
	c.failed.Add(1)
	c.tombs.add(s.id, s.caller.id, false)
	c.countFailureLocked(code)
	c.sessionEvent(o, spec.EventFailed, s, reason) // EVT-001
	if s.pcc != nil {
		c.answerPCCLocked(s.pcc, false, reason, o)
	}
	if s.claimed {
		c.claimOutcome(o, s.id, false, reason)
	}
}

// onBehalfOf is the sender level of a message the connector writes itself for a party
// (STOP_SESSION, FAILURE when it ends a session): the party's ID, as endpoints expect,
// except in secure mode, where another endpoint's ID goes only on that endpoint's own
// relayed messages and the connector signs what it writes (ID-014).
func (c *Connector) onBehalfOf(id string) string {
	if c.cfg.Secure {
		return c.id // ID-014
	}
	return id
}

// abortLocked ends s on the connector's initiative. gone is the party that
// left ("" for a timeout or shutdown); every party still there is told: an
// unanswered caller gets RESPONSE FAILURE to its START_SESSION when the
// connector gives up, STOP_SESSION otherwise; a reachable callee gets STOP_SESSION.
func (c *Connector) abortLocked(s *session, gone, reason, code string, o *outbox) {
	c.tellPartiesLocked(s, gone, reason, o)
	c.endLocked(s, reason, code, o)
}

// tellPartiesLocked queues, for every party of s other than gone, the message
// that tells it s is over (see abortLocked).
func (c *Connector) tellPartiesLocked(s *session, gone, reason string, o *outbox) {
	stop := func() *spec.Message {
		return &spec.Message{Method: spec.MethodStopSession, RtcommVer: spec.Version,
			FromTopic: c.inPath, SigSessID: s.id, Reason: reason}
	}
	goneCaller := gone != "" && gone == s.caller.id
	goneCallee := gone != "" && s.calleeBound && gone == s.callee.id
	if !goneCaller {
		to := spec.Join(s.caller.topic, c.onBehalfOf(s.calleeLevel()))
		if gone == "" && s.state != stateEstablished {
			o.msg(to, 0, &spec.Message{Method: spec.MethodResponse, RtcommVer: spec.Version,
				Orig: spec.MethodStartSession, TransID: s.transID, FromTopic: c.inPath,
				SigSessID: s.id, Result: spec.ResultFailure, Reason: reason})
		} else {
			o.msg(to, 0, stop())
		}
	}
	if !goneCallee && s.calleeReachable() {
		o.msg(spec.Join(s.callee.topic, c.onBehalfOf(s.caller.id)), 0, stop()) // SESS-009 REG-008
	}
}

// endSessionsOfLocked ends every session endpoint id takes part in (only those
// where its topic is onlyTopic, when set). It returns how many were ended.
func (c *Connector) endSessionsOfLocked(id, onlyTopic, reason string, o *outbox) int {
	if onlyTopic == "" {
		c.endRouteOnlyCallsOfLocked(id, reason, o)
	}
	list := c.sess.byParty[id]
	if len(list) == 0 {
		return 0
	}
	code := "unregistered"
	if onlyTopic != "" {
		code = "replaced"
	}
	victims := make([]*session, 0, len(list))
	for _, s := range list {
		if onlyTopic != "" {
			t := s.caller.topic
			if s.caller.id != id {
				t = s.callee.topic
			}
			if t != onlyTopic {
				continue
			}
		}
		victims = append(victims, s)
	}
	for _, s := range victims {
		c.abortLocked(s, id, reason, code, o) // REG-008
	}
	return len(victims)
}

// --- reaper ----------------------------------------------------------------------

// reaper times out unanswered sessions and unanswered 3PCC requests.
func (c *Connector) reaper() {
	defer c.wg.Done()
	every := min(c.cfg.AnswerTimeout, c.cfg.ThreePCCTimeout) / 10
	every = max(10*time.Millisecond, min(every, time.Second))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.reap(now)
		}
	}
}

func (c *Connector) reap(now time.Time) {
	var o outbox
	n := 0
	c.mu.Lock()
	for _, s := range c.sess.pending {
		if now.After(s.deadline) {
			c.abortLocked(s, "", "timeout", "timeout", &o) // SESS-009
			n++
		}
	}
	c.pruneClaimsLocked(now)
	c.pruneReferOwnersLocked(now)
	c.pruneRouteOnlyLocked(now, &o)
	expired := c.takeExpiredHeldLocked(now)
	for _, p := range c.pcc.byRefer {
		if now.After(p.deadline) {
			c.answerPCCLocked(p, false, "timeout: the call was not answered in time", &o) // REF-005
			n++
		}
	}
	c.mu.Unlock()
	if n > 0 {
		c.log.Info("reaper timed out unanswered requests", "count", n)
	}
	c.flush(o)
	for i := range expired { // no record came: a session nobody holds MSG-003
		h := &expired[i]
		c.unknownSession(h.sender, &h.in, h.msg)
	}
}

// endAllSessions ends every tracked session after the broker connection was
// lost: whatever the parties sent meanwhile is gone (a broker restart also
// disconnected them), so no session can be trusted to continue. Each party is
// told (FAILURE to an unanswered caller, STOP_SESSION otherwise); a party that
// ended the session on its own ignores the message. DESIGN.md, "Faults".
func (c *Connector) endAllSessions(reason string) int {
	var o outbox
	c.mu.Lock()
	n := len(c.sess.byID)
	for _, s := range c.sess.byID {
		c.abortLocked(s, "", reason, "connection_lost", &o)
	}
	c.mu.Unlock()
	c.flush(o)
	return n
}

// shutdownSessions answers what is waiting on this connector before it goes.
func (c *Connector) shutdownSessions() {
	var o outbox
	c.mu.Lock()
	for _, s := range c.sess.pending {
		c.abortLocked(s, "", "connector shutting down", "shutdown", &o)
	}
	for _, p := range c.pcc.byRefer {
		c.answerPCCLocked(p, false, "connector shutting down", &o)
	}
	c.mu.Unlock()
	c.flush(o)
}
