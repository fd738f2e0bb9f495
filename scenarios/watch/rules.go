package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// replyReq is the requirement a connector's reply to each request breaks when it does not
// echo the request's transID under the request's fromTopic. REFER answers have none.
var replyReq = map[spec.Method]string{
	spec.MethodServiceQuery:  "SQ-003", // orig SERVICE_QUERY, the query's transID, under its fromTopic
	spec.MethodStartSession:  "SESS-004",
	spec.Method3PCCPlaceCall: "REF-005",
}

// checkReply: a RESPONSE or PRANSWER the connector publishes echoes a request's transID and
// reaches the requester at (or below) the request's fromTopic.
func (c *Checker) checkReply(s sent) {
	m, o := s.msg, s.obs
	orig := m.Orig
	if m.Method == spec.MethodPranswer || orig == "" {
		orig = spec.MethodStartSession
	}
	req, ok := replyReq[orig]
	if !ok {
		return
	}
	if orig == spec.MethodStartSession && !c.relayOf(s) {
		// The connector's own FAILURE to a call (refused, reaped, or at its shutdown): it
		// may answer a request the checker could not decode, at the caller's registered
		// address. SESS-004 is about the callee's reply; SESS-003, SESS-009 and the
		// routing rules judge the connector's own.
		return
	}
	var reqs []sent
	for _, r := range c.requests[m.TransID] {
		if r.msg.Method == orig && r.who != s.who {
			reqs = append(reqs, r)
		}
	}
	if m.TransID == "" || len(reqs) == 0 {
		if c.complete(o.Time) {
			c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{o},
				Expected: fmt.Sprintf("the transID of a %s sent before it", orig),
				Actual:   fmt.Sprintf("%s with transID %q, which no %s carried", m.Method, m.TransID, orig)})
		}
		return
	}
	for _, r := range reqs {
		if r.msg.FromTopic != "" && underTopic(o.Topic, r.msg.FromTopic) {
			c.pass(s.who, req)
			return
		}
	}
	r := reqs[len(reqs)-1]
	c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{r.obs, o},
		Expected: fmt.Sprintf("published at or below the request's fromTopic %q", r.msg.FromTopic),
		Actual:   fmt.Sprintf("published at %q", o.Topic)})
}

// relayReq is the requirement a relay of each method breaks when it changes what the party
// sent, and the fields it names.
func relayReq(m *spec.Message) (string, []string) {
	switch m.Method {
	case spec.MethodStartSession:
		return "SESS-002", []string{"transID", "sigSessID", "payload", "protocols"}
	case spec.MethodResponse:
		return "SESS-004", []string{"result", "reason", "transID", "sigSessID", "payload"}
	case spec.MethodPranswer:
		return "SESS-005", []string{"holdTimeout", "queuePosition"}
	case spec.MethodMessage:
		if bytes.Contains(m.Payload, []byte(`"icecandidate"`)) {
			return "ICE-004", []string{"payload"}
		}
		return "MSG-002", []string{"payload", "unknown fields"}
	case spec.MethodStopSession:
		return "SESS-008", []string{"sigSessID"}
	}
	return "", nil
}

// lostReq is the requirement a connector breaks when it never relays an original, or relays
// it twice: a candidate is ICE-003's (and, before the answer, ICE-002's too); a START_SESSION
// to a queue is QUE-002's.
func (c *Checker) lostReq(m *spec.Message, ss *session, at time.Time) []string {
	req, _ := relayReq(m)
	switch {
	case req == "ICE-004":
		if ss != nil && (ss.answeredAt.IsZero() || at.Before(ss.answeredAt)) {
			return []string{"ICE-003", "ICE-002"}
		}
		return []string{"ICE-003"}
	case m.Method == spec.MethodStartSession && ss != nil && c.life.queues[ss.to]:
		return []string{"QUE-002"}
	}
	return []string{req}
}

// checkRelay: a message the connector relays from party X (the topic ends in /X) equals one
// X sent apart from fromTopic; it adds no transID the original lacked (SESS-007). Relays
// with no original at all (the connector's own FAILURE or STOP_SESSION) are not judged here.
func (c *Checker) checkRelay(s sent) {
	m, o := s.msg, s.obs
	req, fields := relayReq(m)
	if req == "" || m.SigSessID == "" {
		return
	}
	k := origKey{from: spec.Sender(o.Topic), method: string(m.Method), sigSessID: m.SigSessID}
	origs := c.origs[k]
	if len(origs) == 0 {
		c.checkSenderLevel(s)
		return
	}
	var last *sent
	for i := range origs {
		if origs[i].used {
			continue
		}
		last = &origs[i]
		if diff := differs(origs[i].msg, m, fields); diff == "" {
			origs[i].used = true
			c.pass(s.who, req)
			c.checkOrder(s, origs, i)
			if ss := c.life.sessions[m.SigSessID]; ss != nil && ss.inPath && !underTopic(m.FromTopic, c.topics.Connector()) {
				c.add(Finding{Requirement: "SESS-006", Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, origs[i].obs, o},
					Expected: "every relayed message carries the connector's fromTopic (it stays in the path of this session)",
					Actual:   fmt.Sprintf("%s relayed with fromTopic %q", m.Method, m.FromTopic)})
			}
			if origs[i].msg.TransID == "" && m.TransID != "" {
				c.add(Finding{Requirement: "SESS-007", Participant: s.who, Time: o.Time, Evidence: []Observation{origs[i].obs, o},
					Expected: "no transID on a relay of a message that had none", Actual: fmt.Sprintf("transID %q added", m.TransID)})
			} else {
				c.pass(s.who, "SESS-007")
			}
			return
		}
	}
	if last == nil {
		// Every original was relayed already: this one is relayed twice (or sent back to
		// its sender, SESS-008), when it equals one of them.
		for i := range origs {
			if !origs[i].late && differs(origs[i].msg, m, fields) == "" {
				ss := c.life.sessions[m.SigSessID]
				for _, r := range c.lostReq(m, ss, origs[i].obs.Time)[:1] {
					c.add(Finding{Requirement: r, Participant: s.who, Time: o.Time, Evidence: []Observation{origs[i].obs, o},
						Expected: fmt.Sprintf("%s from %s relayed exactly once, to the other party", m.Method, k.from),
						Actual:   fmt.Sprintf("relayed again at %q", o.Topic)})
				}
				return
			}
		}
		return
	}
	if !c.complete(o.Time) && !c.started[m.SigSessID] {
		// A subscription that joined after the session began: the relay may be of a message
		// sent before it subscribed, so it is no alteration of the one left unrelayed (nor,
		// when that one's own relay comes, a second relay of it).
		return
	}
	last.used = true
	c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{last.obs, o},
		Expected: fmt.Sprintf("%s relayed from %s with %s unchanged", m.Method, k.from, strings.Join(fields, ", ")),
		Actual:   differs(last.msg, m, fields)})
}

// differs names the first of fields in which relay differs from orig ("" when none does).
func differs(orig, relay *spec.Message, fields []string) string {
	for _, f := range fields {
		var a, b any
		switch f {
		case "transID":
			a, b = orig.TransID, relay.TransID
		case "sigSessID":
			a, b = orig.SigSessID, relay.SigSessID
		case "result":
			a, b = orig.Result, relay.Result
		case "reason":
			a, b = orig.Reason, relay.Reason
		case "protocols":
			a, b = strings.Join(orig.Protocols, ","), strings.Join(relay.Protocols, ",")
		case "holdTimeout":
			a, b = intOr(orig.HoldTimeout), intOr(relay.HoldTimeout)
		case "queuePosition":
			a, b = intOr(orig.QueuePosition), intOr(relay.QueuePosition)
		case "payload":
			if !sameJSON(orig.Payload, relay.Payload) {
				return fmt.Sprintf("payload %s became %s", short(orig.Payload), short(relay.Payload))
			}
			continue
		case "unknown fields":
			for name, v := range orig.Extra {
				if !sameJSON(v, relay.Extra[name]) {
					return fmt.Sprintf("field %s %s became %s", name, short(v), short(relay.Extra[name]))
				}
			}
			continue
		}
		if a != b {
			return fmt.Sprintf("%s %v became %v", f, a, b)
		}
	}
	return ""
}

func intOr(p *int) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// sameJSON compares two JSON values by meaning (key order and spacing aside).
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func short(b []byte) string {
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	if len(b) == 0 {
		return "(absent)"
	}
	return string(b)
}

// checkSessionState: the connector relays a MESSAGE only for a session that started and has
// not stopped (MSG-003: one for an unknown session is delivered to no endpoint).
func (c *Checker) checkSessionState(s sent) {
	m, o := s.msg, s.obs
	if m.SigSessID == "" {
		return
	}
	if stop, ok := c.stopped[m.SigSessID]; ok && o.Time.Sub(stop) > c.cfg.StopGrace {
		c.add(Finding{Requirement: "MSG-003", Participant: s.who, Time: o.Time, Evidence: []Observation{o},
			Expected: "nothing relayed for a session after its STOP_SESSION",
			Actual:   fmt.Sprintf("MESSAGE for sigSessID %q relayed %s after STOP_SESSION", m.SigSessID, o.Time.Sub(stop).Round(time.Millisecond))})
		return
	}
	if !c.started[m.SigSessID] {
		if c.complete(o.Time) {
			c.add(Finding{Requirement: "MSG-003", Participant: s.who, Time: o.Time, Evidence: []Observation{o},
				Expected: "a MESSAGE relayed only for a session a START_SESSION opened",
				Actual:   fmt.Sprintf("MESSAGE relayed for sigSessID %q, which no START_SESSION carried", m.SigSessID)})
		}
		return
	}
	c.pass(s.who, "MSG-003")
}

// sweep judges the SERVICE_QUERY answers time has made due (SQ-002: exactly once, within
// AnswerTimeout) and forgets old state.
func (c *Checker) sweep(now time.Time) {
	if !c.swept.IsZero() && now.Sub(c.swept) < sweepEvery {
		return
	}
	c.swept = now
	c.sweepLost(now)
	c.prune(now)
	c.sweepLifecycle(now)
	for id, q := range c.queries {
		age := now.Sub(q.req.obs.Time)
		if q.answers == 0 && age > c.cfg.AnswerTimeout && !q.late {
			q.late = true
			c.add(Finding{Requirement: "SQ-002", Participant: ConnectorParticipant, Time: now, Evidence: []Observation{q.req.obs},
				Expected: fmt.Sprintf("an answer within %s", c.cfg.AnswerTimeout), Actual: fmt.Sprintf("none after %s", age.Round(time.Millisecond))})
			if n := len(c.badIn); n > 0 && c.badIn[n-1].Time.Before(q.req.obs.Time) {
				// It stopped serving after malformed input: the likeliest cause, named with its evidence.
				bad := c.badIn[n-1]
				c.add(Finding{Requirement: "ROB-001", Participant: ConnectorParticipant, Time: now, Evidence: []Observation{bad, q.req.obs},
					Expected: "the connector keeps serving after malformed input",
					Actual:   fmt.Sprintf("no answer to a SERVICE_QUERY since %q at %q", short(bad.Payload), bad.Topic)})
			}
		}
		if age > 6*c.cfg.AnswerTimeout {
			delete(c.queries, id)
		}
	}
}

// answered records a connector's answer to a SERVICE_QUERY for SQ-002.
func (c *Checker) answered(s sent) {
	q := c.queries[s.msg.TransID]
	if q == nil {
		return
	}
	q.answers++
	switch {
	case q.answers > 1:
		c.add(Finding{Requirement: "SQ-002", Participant: s.who, Time: s.obs.Time, Evidence: []Observation{q.req.obs, s.obs},
			Expected: "exactly one answer", Actual: fmt.Sprintf("answer #%d", q.answers)})
	case q.late || s.obs.Time.Sub(q.req.obs.Time) > c.cfg.AnswerTimeout:
		if !q.late {
			q.late = true
			c.add(Finding{Requirement: "SQ-002", Participant: s.who, Time: s.obs.Time, Evidence: []Observation{q.req.obs, s.obs},
				Expected: fmt.Sprintf("an answer within %s", c.cfg.AnswerTimeout), Actual: fmt.Sprintf("answered after %s", s.obs.Time.Sub(q.req.obs.Time).Round(time.Millisecond))})
		}
	default:
		c.pass(s.who, "SQ-002")
	}
}

// sweepEvery bounds how often sweep walks the state (not on every publish).
const sweepEvery = 100 * time.Millisecond

// retain is how long the state of a finished or abandoned session or transaction is kept
// (the final timeout, 30 s, twice): a long serve --check stays bounded.
const retain = time.Minute

// prune forgets stopped sessions, requests and originals older than retain.
func (c *Checker) prune(now time.Time) {
	lastSent := func(ss []sent) time.Time { return ss[len(ss)-1].obs.Time }
	forget(c.requests, now, lastSent)
	forget(c.origs, now, lastSent)
	for sid, at := range c.stopped {
		if now.Sub(at) > retain {
			delete(c.stopped, sid)
			delete(c.started, sid)
		}
	}
}

// checkSenderLevel: a relay of a party's message ends in that party's ID. A relayed
// START_SESSION at any other level hides the caller (ID-004), or names the one a JSON field
// claimed (ID-006: the sender is the topic's last level, never the payload); a relayed
// MESSAGE at a level naming no party of the session is misrouted (MSG-002).
func (c *Checker) checkSenderLevel(s sent) {
	m, o := s.msg, s.obs
	ss := c.life.sessions[m.SigSessID]
	if ss == nil || !ss.inPath {
		return
	}
	level := spec.Sender(o.Topic)
	switch m.Method {
	case spec.MethodStartSession:
		if level == ss.caller {
			return
		}
		req, exp := "ID-004", fmt.Sprintf("the START_SESSION relayed at <receiver topic>/<senderID>, %s", ss.caller)
		if claimed := extraString(ss.start, "fromEndpointID"); claimed != "" && claimed == level {
			req, exp = "ID-006", fmt.Sprintf("the caller taken from the topic's last level, %s, not from the payload", ss.caller)
		}
		c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, o},
			Expected: exp, Actual: fmt.Sprintf("relayed at %q", o.Topic)})
	case spec.MethodMessage:
		if ss.party(level) {
			return
		}
		c.add(Finding{Requirement: "MSG-002", Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, o},
			Expected: fmt.Sprintf("a MESSAGE relayed at a topic ending in its sender's ID (%s or %s)", ss.caller, ss.callee()),
			Actual:   fmt.Sprintf("relayed at %q", o.Topic)})
	}
}

// extraString reads a string field the spec does not define from an observation's payload.
func extraString(o Observation, name string) string {
	m, _ := spec.Decode(o.Payload)
	if m == nil {
		return ""
	}
	var v string
	_ = json.Unmarshal(m.Extra[name], &v)
	return v
}

// relayWait is how long a connector has to relay what a party sent it (loopback needs far
// less; the client's own transaction timeout is 5 s).
const relayWait = 5 * time.Second

// sweepLost: what a party sent the connector for a live session it stays in the path of is
// relayed within relayWait (SESS-008 for STOP_SESSION, ICE-002/003 for candidates, MSG-002,
// SESS-004/005 for the callee's replies). Only the hook judges it: a subscription may miss
// a publish under load and would blame the connector for its own loss.
func (c *Checker) sweepLost(now time.Time) {
	if now.Sub(c.lostAt) < time.Second {
		return // a walk over every original: once a second is enough
	}
	c.lostAt = now
	for k, os := range c.origs {
		ss := c.life.sessions[k.sigSessID]
		left, gone := c.leftAt(ss)
		for i := range os {
			o := &os[i]
			if o.used || o.late || o.dropped || o.obs.Client == "" || !underTopic(o.obs.Topic, c.topics.Connector()) {
				continue
			}
			switch {
			case gone && !o.obs.Time.Add(lostGrace).Before(left):
				o.late = true // sent as the connector went: its shutdown, not a loss
				continue
			case !gone && now.Sub(o.obs.Time) < relayWait:
				continue // not due yet
			}
			o.late = true // judged once; a relay still matches it
			if ss == nil || !ss.inPath || !ss.live(o.obs.Time) || !ss.party(k.from) || o.msg.Method == spec.MethodStartSession {
				continue
			}
			if req, _ := relayReq(o.msg); req == "" {
				continue
			}
			for _, r := range c.lostReq(o.msg, ss, o.obs.Time) {
				c.add(Finding{Requirement: r, Participant: ss.fwdWho, Time: now, Evidence: []Observation{ss.start, o.obs},
					Expected: fmt.Sprintf("%s from %s relayed to the other party within %s", o.msg.Method, k.from, relayWait),
					Actual:   "never relayed"})
			}
		}
	}
}

// checkOrder: no candidate is relayed after one its sender sent later on the same topic
// (ICE-005, a SHOULD: candidates sent over two paths may cross). A lost candidate is no
// reordering: only a late relay is.
func (c *Checker) checkOrder(s sent, origs []sent, i int) {
	if req, _ := relayReq(s.msg); req != "ICE-004" {
		return
	}
	for j := i + 1; j < len(origs); j++ {
		if origs[j].used && origs[j].obs.Topic == origs[i].obs.Topic {
			c.add(Finding{Requirement: "ICE-005", Participant: s.who, Time: s.obs.Time, Evidence: []Observation{origs[i].obs, origs[j].obs, s.obs},
				Expected: "candidates relayed in the order their sender sent them",
				Actual:   "an earlier candidate relayed after a later one"})
			return
		}
	}
}

// Due is when what the checker is waiting for falls due (an answer, a DOCUMENT_REPLACED, a
// relay, an early end's confirmation): a run that stops watching should not Finish before,
// or it judges less than it saw. Zero when nothing is pending.
func (c *Checker) Due() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var due time.Time
	later := func(t time.Time) {
		if t.After(due) {
			due = t
		}
	}
	for _, q := range c.queries {
		if q.answers == 0 && !q.late {
			later(q.req.obs.Time.Add(c.cfg.AnswerTimeout + sweepEvery))
		}
	}
	for _, r := range c.life.replaced {
		if !r.done {
			later(r.now.Time.Add(c.cfg.AnswerTimeout + sweepEvery))
		}
	}
	for _, sp := range c.life.suspects {
		later(sp.f.Time.Add(reapGrace + sweepEvery))
	}
	for k, os := range c.origs {
		ss := c.life.sessions[k.sigSessID]
		if _, gone := c.leftAt(ss); ss == nil || gone {
			continue // judged at the next sweep
		}
		for _, o := range os {
			if !o.used && !o.late && !o.dropped && o.obs.Client != "" && underTopic(o.obs.Topic, c.topics.Connector()) {
				later(o.obs.Time.Add(relayWait + sweepEvery))
			}
		}
	}
	return due
}

// lostGrace: a message the connector had not relayed this long before its client went was
// lost; one sent later may have met the shutdown (a stopped connector relays nothing, and
// its shutdown is no protocol violation).
const lostGrace = time.Second

// leftAt says when the connector client that routes ss disconnected, if it did.
func (c *Checker) leftAt(ss *session) (time.Time, bool) {
	if ss == nil || ss.fwdClient == "" {
		return time.Time{}, false
	}
	left, ok := c.life.left[ss.fwdClient]
	return left, ok
}

// forget deletes the entries of m whose time is older than retain.
func forget[K comparable, V any](m map[K]V, now time.Time, at func(V) time.Time) {
	for k, v := range m {
		if now.Sub(at(v)) > retain {
			delete(m, k)
		}
	}
}
