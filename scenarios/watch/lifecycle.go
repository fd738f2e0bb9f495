package watch

import (
	"fmt"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Rules on what the connector does as registrations and sessions come and go:
// DOCUMENT_REPLACED after a replacement (REG-007, REG-010), events that match the sessions
// that happened (EVT-001), and no reaping before the answer timeout (SESS-009).

// regKey is a registration's (endpoint ID, appContext) pair: one address each (REG-006).
type regKey struct{ id, app string }

// registration is a DOCUMENT the checker took as a registration.
type registration struct {
	key          regKey
	addr, sphere string
	obs          Observation
}

// replacement is one DOCUMENT that took a pair over from another address: the connector owes
// the older address a DOCUMENT_REPLACED (REG-007).
type replacement struct {
	key      regKey
	old      string // the replaced address
	was, now Observation
	done     bool // answered (or already judged late)
}

// session is what the checker knows of one session the connector routes.
type session struct {
	caller, to string // the START_SESSION's sender and toEndpointID
	start      Observation
	forwarded  bool   // the connector relayed the START_SESSION
	fwdClient  string // MQTT client that relayed it (hook only)
	answered   bool   // the callee sent its final RESPONSE
	ended      bool   // a party stopped it, or left
	deadlines  []time.Time
}

// suspect is an early end of a session that becomes a SESS-009 finding unless the connector
// that sent it disconnects at once (a shutdown ends sessions on purpose).
type suspect struct {
	f      Finding
	client string
}

// lifecycle is the checker's state for these rules.
type lifecycle struct {
	regs     map[regKey]*registration
	history  map[string][]*registration // address -> registrations made at it
	replaced []*replacement
	sessions map[string]*session  // sigSessID -> session
	gone     map[string]time.Time // endpoint ID -> last unregistration or replacement
	roots    map[string]bool      // event topic roots (default and advertised)
	suspects []suspect
	left     map[string]time.Time // MQTT client ID -> when it disconnected
}

func newLifecycle(t spec.Topics) lifecycle {
	return lifecycle{regs: map[regKey]*registration{}, history: map[string][]*registration{},
		sessions: map[string]*session{}, gone: map[string]time.Time{}, roots: map[string]bool{t.Events(): true},
		left: map[string]time.Time{}}
}

// reapGrace is how long after an early end the connector's client must still be connected
// for the end to count as reaping rather than a shutdown.
const reapGrace = 2 * time.Second

// lifecycleRules applies the rules of this file to one publish (called with c.mu held).
func (c *Checker) lifecycleRules(s sent, conn, relay, judged bool) {
	m, o := s.msg, s.obs
	switch {
	case m.Method == spec.MethodDocument && !conn:
		c.registered(s)
	case m.Method == spec.MethodDocumentReplaced:
		if judged {
			c.documentReplaced(s)
		}
	case m.Method == spec.MethodEventFired && conn:
		if judged {
			c.checkEvent(s)
		}
	case m.Method == spec.MethodResponse && m.Orig == spec.MethodServiceQuery && m.Result == spec.ResultSuccess:
		if svc, ok := m.Services[spec.ServiceConnector]; ok && svc.EventMonitoringTopic != "" {
			c.life.roots[c.topics.Resolve(svc.EventMonitoringTopic)] = true
		}
	}
	ss := c.life.sessions[m.SigSessID]
	switch {
	case m.Method == spec.MethodStartSession && !conn && m.ToEndpointID != "" && underTopic(o.Topic, c.topics.Connector()):
		if ss == nil {
			c.life.sessions[m.SigSessID] = &session{caller: spec.Sender(o.Topic), to: m.ToEndpointID, start: o,
				deadlines: []time.Time{o.Time.Add(c.cfg.FinalTimeout)}}
		}
	case ss == nil:
	case m.Method == spec.MethodStartSession && relay:
		ss.forwarded, ss.fwdClient = true, o.Client
	case m.Method == spec.MethodPranswer && !conn:
		if m.HoldTimeout != nil && *m.HoldTimeout > 0 {
			ss.deadlines = append(ss.deadlines, o.Time.Add(time.Duration(*m.HoldTimeout)*time.Second))
		}
	case m.Method == spec.MethodResponse && !conn:
		ss.answered = true
	case m.Method == spec.MethodStopSession && !conn:
		ss.ended = true
	case m.Method == spec.MethodResponse && conn && m.Result == spec.ResultFailure && m.Orig == spec.MethodStartSession && judged:
		c.checkReap(s, ss)
	}
}

// registered takes a DOCUMENT as a registration; one from a new address for a registered
// pair is a replacement the connector must announce (REG-007). A DOCUMENT without a usable
// address (none, or a topic filter) registers nothing: a connector ignores it.
func (c *Checker) registered(s sent) {
	m, o := s.msg, s.obs
	addr := m.Address()
	if addr == "" || strings.ContainsAny(addr, "+#") {
		return
	}
	r := &registration{key: regKey{id: spec.Sender(o.Topic), app: m.AppContext}, addr: addr, sphere: o.Topic, obs: o}
	prev := c.life.regs[r.key]
	c.life.regs[r.key] = r
	c.life.history[addr] = append(c.life.history[addr], r)
	if prev != nil && prev.addr != addr {
		c.life.replaced = append(c.life.replaced, &replacement{key: r.key, old: prev.addr, was: prev.obs, now: o})
		c.life.gone[r.key.id] = o.Time
	}
}

// unregistered handles an empty message on a presence topic: the registrations made there
// are gone (the checker forgets them even when a connector keeps one, REG-009: a missed
// replacement costs a check, a kept stale one would cost a false finding).
func (c *Checker) unregistered(o Observation) {
	id := spec.Sender(o.Topic)
	for k, r := range c.life.regs {
		if k.id == id && r.sphere == o.Topic {
			delete(c.life.regs, k)
		}
	}
	c.life.gone[id] = o.Time
}

// documentReplaced judges a DOCUMENT_REPLACED: published at <old address>/<connector ID>,
// without transID and sigSessID, and only to an address a newer registration replaced.
func (c *Checker) documentReplaced(s sent) {
	m, o := s.msg, s.obs
	if m.TransID != "" || m.SigSessID != "" {
		c.add(Finding{Requirement: "REG-007", Participant: s.who, Time: o.Time, Evidence: []Observation{o},
			Expected: "DOCUMENT_REPLACED without transID and sigSessID (rtcomm.js drops it otherwise)",
			Actual:   fmt.Sprintf("transID %q, sigSessID %q", m.TransID, m.SigSessID)})
	}
	old := o.Topic[:max(strings.LastIndex(o.Topic, "/"), 0)]
	var justified bool
	for _, r := range c.life.replaced {
		switch {
		case r.old == old && !r.done:
			r.done = true
			c.pass(s.who, "REG-007")
			return
		case r.old == o.Topic && !r.done:
			r.done = true
			c.add(Finding{Requirement: "REG-007", Participant: s.who, Time: o.Time, Evidence: []Observation{r.was, r.now, o},
				Expected: fmt.Sprintf("DOCUMENT_REPLACED at %s/<connector ID>", r.old), Actual: fmt.Sprintf("published at %q, the address itself", o.Topic)})
			return
		case r.old == old:
			justified = true // a second replica's, or a repeat
		}
	}
	if justified || !c.complete(o.Time) {
		return
	}
	// No replacement of that address: was it taken over across appContexts (REG-010)?
	for _, r := range c.life.history[old] {
		for _, later := range c.life.regs {
			if later.key.id == r.key.id && later.key.app != r.key.app && later.addr != old && later.obs.Time.After(r.obs.Time) {
				c.add(Finding{Requirement: "REG-010", Participant: s.who, Time: o.Time, Evidence: []Observation{r.obs, later.obs, o},
					Expected: fmt.Sprintf("no DOCUMENT_REPLACED across appContexts (%q at %s kept beside %q)", r.key.app, old, later.key.app),
					Actual:   fmt.Sprintf("DOCUMENT_REPLACED at %q", o.Topic)})
				return
			}
		}
	}
	c.add(Finding{Requirement: "REG-007", Participant: s.who, Time: o.Time, Evidence: []Observation{o},
		Expected: "DOCUMENT_REPLACED only at an address a newer registration of the same endpoint ID and appContext replaced",
		Actual:   fmt.Sprintf("DOCUMENT_REPLACED at %q, which no registration replaced", o.Topic)})
}

// checkEvent: an event names a session that happened, caller first and callee second, the
// order lib.rtcomm.node's monitor filters on (EVT-001).
func (c *Checker) checkEvent(s sent) {
	m, o := s.msg, s.obs
	var root string
	for r := range c.life.roots {
		if strings.HasPrefix(o.Topic, r+"/session/") {
			root = r
		}
	}
	parts := strings.Split(strings.TrimPrefix(o.Topic, root+"/session/"), "/")
	if root == "" || len(parts) != 3 {
		return // not at an event topic: the single-message rules say so (EVT-002)
	}
	action, from, to := parts[0], parts[1], parts[2]
	if ss := c.life.sessions[m.SigSessID]; ss != nil {
		if from != ss.caller || to != ss.to {
			c.add(Finding{Requirement: "EVT-001", Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, o},
				Expected: fmt.Sprintf("%s at %s/session/%s/%s/%s (caller, then callee)", action, root, action, ss.caller, ss.to),
				Actual:   fmt.Sprintf("at %q", o.Topic)})
			return
		}
		c.pass(s.who, "EVT-001")
		return
	}
	for _, ss := range c.life.sessions {
		if ss.caller == from && ss.to == to {
			c.pass(s.who, "EVT-001")
			return
		}
	}
	if c.complete(o.Time) {
		c.add(Finding{Requirement: "EVT-001", Participant: s.who, Time: o.Time, Evidence: []Observation{o},
			Expected: "events only for sessions that happened",
			Actual:   fmt.Sprintf("%s event for sigSessID %q from %s to %s, which no START_SESSION to the connector began", action, m.SigSessID, from, to)})
	}
}

// checkReap: the connector's own FAILURE to an unanswered, forwarded session whose parties
// are still there is reaping (SESS-009), which must not come before the final timeout (or
// the PRANSWER's holdTimeout), 20% spared. Only the hook knows which client ended it: from a
// subscription a replica taking over a dead one's sessions, or a shutdown, looks the same.
func (c *Checker) checkReap(s sent, ss *session) {
	o := s.obs
	if o.Client == "" || !ss.forwarded || ss.answered || ss.ended || ss.fwdClient != o.Client {
		return // a relayed rejection, a takeover, or nothing the checker can judge
	}
	if c.relayOf(s) || c.life.gone[ss.caller].After(ss.start.Time) || c.life.gone[ss.to].After(ss.start.Time) {
		return
	}
	ss.ended = true
	due := ss.deadlines[0]
	for _, d := range ss.deadlines[1:] {
		if d.Before(due) {
			due = d
		}
	}
	waited, owed := o.Time.Sub(ss.start.Time), due.Sub(ss.start.Time)
	if waited >= owed*8/10 {
		c.pass(s.who, "SESS-009")
		return
	}
	c.life.suspects = append(c.life.suspects, suspect{client: o.Client, f: Finding{Requirement: "SESS-009", Participant: s.who,
		Time: o.Time, Evidence: []Observation{ss.start, o},
		Expected: fmt.Sprintf("an unanswered session reaped no sooner than its timeout (%s after START_SESSION)", owed.Round(time.Millisecond)),
		Actual:   fmt.Sprintf("FAILURE %q after %s", s.msg.Reason, waited.Round(time.Millisecond))}})
}

// relayOf reports whether a connector's message relays one a party sent (same sender level,
// method and sigSessID).
func (c *Checker) relayOf(s sent) bool {
	k := origKey{from: spec.Sender(s.obs.Topic), method: string(s.msg.Method), sigSessID: s.msg.SigSessID}
	return len(c.origs[k]) > 0
}

// Disconnected tells the checker an MQTT client went away at t (the hook's OnDisconnect).
func (c *Checker) Disconnected(client string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.life.left[client] = t
}

// sweepLifecycle judges what time has made due: DOCUMENT_REPLACED owed for longer than the
// answer timeout, early ends whose connector stayed; and forgets old state.
func (c *Checker) sweepLifecycle(now time.Time) {
	l := &c.life
	for _, r := range l.replaced {
		if !r.done && now.Sub(r.now.Time) > c.cfg.AnswerTimeout {
			r.done = true
			c.add(Finding{Requirement: "REG-007", Participant: ConnectorParticipant, Time: now, Evidence: []Observation{r.was, r.now},
				Expected: fmt.Sprintf("DOCUMENT_REPLACED at %s/<connector ID> within %s of the newer registration from %s", r.old, c.cfg.AnswerTimeout, r.now.Topic),
				Actual:   "none"})
		}
	}
	kept := l.suspects[:0]
	for _, sp := range l.suspects {
		left, gone := l.left[sp.client]
		switch {
		case gone && left.After(sp.f.Time) && left.Sub(sp.f.Time) < reapGrace:
			// a shutdown: the connector ended its sessions as it went
		case now.Sub(sp.f.Time) >= reapGrace:
			c.add(sp.f)
		default:
			kept = append(kept, sp)
		}
	}
	l.suspects = kept
	var live []*replacement
	for _, r := range l.replaced {
		if now.Sub(r.now.Time) < retain {
			live = append(live, r)
		}
	}
	l.replaced = live
	for id, ss := range l.sessions {
		if now.Sub(ss.start.Time) > retain && now.After(ss.deadlines[0]) {
			delete(l.sessions, id)
		}
	}
	for a, rs := range l.history {
		if now.Sub(rs[len(rs)-1].obs.Time) > retain {
			delete(l.history, a)
		}
	}
	for id, t := range l.gone {
		if now.Sub(t) > retain {
			delete(l.gone, id)
		}
	}
	for cl, t := range l.left {
		if now.Sub(t) > retain {
			delete(l.left, cl)
		}
	}
}
