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
	topicOnly    bool // the address came from `topic` (the written spec), not addressTopic
	obs          Observation
	kept         time.Time // an empty message in the replacement's grace left it registered (REG-009)
}

// replacement is one DOCUMENT that took a pair over from another address: the connector owes
// the older address a DOCUMENT_REPLACED (REG-007).
type replacement struct {
	key      regKey
	old      string // the replaced address
	was, now Observation
	done     bool // answered (or already judged late)
	goodbye  bool // an empty presence message came after it
}

// session is what the checker knows of one session the connector routes.
type session struct {
	caller, to string // the START_SESSION's sender and toEndpointID
	answerer   string // who sent the callee's first PRANSWER or RESPONSE (a queue's agent)
	start      Observation
	forwarded  bool   // the connector relayed the START_SESSION
	inPath     bool   // ... with its own fromTopic: it stays in the path (SESS-006)
	fwdClient  string // MQTT client that relayed it (hook only)
	fwdWho     string // the participant that relayed it
	clean      bool   // the START_SESSION has no finding under the client profile (a connector routes it)
	answered   bool   // the callee sent its final RESPONSE
	answeredAt time.Time
	ended      bool      // a party stopped it, or left
	endedAt    time.Time // when it ended (zero while live)
	deadlines  []time.Time
}

// party reports whether id takes part in the session.
func (ss *session) party(id string) bool {
	return id != "" && (id == ss.caller || id == ss.to || id == ss.answerer)
}

// callee names the callee: the answerer when one answered, else toEndpointID.
func (ss *session) callee() string {
	if ss.answerer != "" {
		return ss.answerer
	}
	return ss.to
}

// live reports whether the session was forwarded and not over at t (200 ms' grace for
// what crossed the end; the message that ended it is in).
func (ss *session) live(t time.Time) bool {
	return ss.forwarded && (ss.endedAt.IsZero() || t.Equal(ss.endedAt) || t.Before(ss.endedAt.Add(-200*time.Millisecond)))
}

// end records the session's end (the first one counts).
func (ss *session) end(t time.Time) {
	if ss.endedAt.IsZero() {
		ss.endedAt = t
	}
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
	queues   map[string]bool      // call queue endpoint IDs (advertised)
	unsure   map[string]bool      // endpoint IDs whose registration a late goodbye may or may not have removed
	schemes  map[string]string    // scheme -> gateway topic (advertised, SCH-001)
	suspects []suspect
	left     map[string]time.Time // MQTT client ID -> when it disconnected
}

func newLifecycle(t spec.Topics) lifecycle {
	return lifecycle{regs: map[regKey]*registration{}, history: map[string][]*registration{},
		sessions: map[string]*session{}, gone: map[string]time.Time{}, roots: map[string]bool{t.Events(): true}, queues: map[string]bool{}, unsure: map[string]bool{}, schemes: map[string]string{},
		left: map[string]time.Time{}}
}

// reapGrace is how long after an early end the connector's client must still be connected
// for the end to count as reaping rather than a shutdown (which publishes its FAILUREs and
// disconnects at once).
const reapGrace = 500 * time.Millisecond

// replaceGrace is how long after a replacement an empty message on the presence topic is
// taken for the replaced client's goodbye, which must not unregister the newcomer (REG-009:
// rtcomm.js sends it about 500 ms after DOCUMENT_REPLACED).
const replaceGrace = 2 * time.Second

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
		for _, q := range m.Services[spec.ServiceCallQueue].Queues {
			c.life.queues[q.EndpointID] = true
		}
		for _, svc := range m.Services {
			for _, sc := range svc.Schemes {
				if svc.Topic != "" {
					c.life.schemes[strings.ToLower(sc)] = c.topics.Resolve(svc.Topic)
				}
			}
		}
	}
	ss := c.life.sessions[m.SigSessID]
	switch {
	case m.Method == spec.MethodStartSession && !conn && m.ToEndpointID != "" && underTopic(o.Topic, c.topics.Connector()):
		if ss == nil {
			c.life.sessions[m.SigSessID] = &session{caller: spec.Sender(o.Topic), to: m.ToEndpointID, start: o,
				deadlines: []time.Time{o.Time.Add(c.cfg.FinalTimeout)}, clean: s.clean}
		}
	case ss == nil:
	case m.Method == spec.MethodStartSession && conn:
		if judged {
			c.checkRouting(s, ss)
			if gw := c.schemeTopic(ss.to); gw != "" && !underTopic(o.Topic, gw) {
				c.add(Finding{Requirement: "SCH-001", Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, o},
					Expected: fmt.Sprintf("the call to %s forwarded at the gateway topic %s", ss.to, gw), Actual: fmt.Sprintf("at %q", o.Topic)})
			}
		}
		if !ss.forwarded {
			ss.forwarded, ss.inPath, ss.fwdClient, ss.fwdWho = true, relay && underTopic(m.FromTopic, c.topics.Connector()), o.Client, s.who
		}
	case m.Method == spec.MethodPranswer && !conn:
		if ss.answerer == "" && spec.Sender(o.Topic) != ss.caller {
			ss.answerer = spec.Sender(o.Topic)
		}
		if m.HoldTimeout != nil && *m.HoldTimeout > 0 {
			ss.deadlines = append(ss.deadlines, o.Time.Add(time.Duration(*m.HoldTimeout)*time.Second))
		}
	case m.Method == spec.MethodResponse && !conn:
		if ss.answerer == "" && spec.Sender(o.Topic) != ss.caller {
			ss.answerer = spec.Sender(o.Topic)
		}
		ss.answered, ss.answeredAt = true, o.Time
		if m.Result != spec.ResultSuccess {
			ss.end(o.Time)
		}
	case m.Method == spec.MethodStopSession:
		ss.ended = true
		ss.end(o.Time)
	case m.Method == spec.MethodResponse && conn && m.Result == spec.ResultFailure && m.Orig == spec.MethodStartSession:
		if judged && !c.relayOf(s) {
			c.checkReap(s, ss)
			c.checkRouting(s, ss)
		}
		ss.end(o.Time)
	}
}

// registered takes a DOCUMENT as a registration; one from a new address for a registered
// pair is a replacement the connector must announce (REG-007). A DOCUMENT without a usable
// address (none, or a topic filter) registers nothing: a connector ignores it.
func (c *Checker) registered(s sent) {
	m, o := s.msg, s.obs
	addr := m.Address()
	if addr == "" || strings.ContainsAny(addr, "+#") || c.serviceTopic(addr) {
		return
	}
	r := &registration{key: regKey{id: spec.Sender(o.Topic), app: m.AppContext}, addr: addr, sphere: o.Topic, obs: o,
		topicOnly: m.AddressTopic == ""}
	prev := c.life.regs[r.key]
	c.life.regs[r.key] = r
	delete(c.life.unsure, r.key.id)
	c.life.history[addr] = append(c.life.history[addr], r)
	if prev != nil && prev.addr != addr {
		c.life.replaced = append(c.life.replaced, &replacement{key: r.key, old: prev.addr, was: prev.obs, now: o})
		c.life.gone[r.key.id] = o.Time
		c.partyGone(r.key.id, o.Time) // the replaced registrant's sessions end
	}
}

// unregistered handles an empty message on a presence topic: the registrations made there
// are gone, but for one replaced within replaceGrace, whose replaced client's goodbye it is
// (REG-009).
func (c *Checker) unregistered(o Observation) {
	id := spec.Sender(o.Topic)
	for k, r := range c.life.regs {
		if k.id != id || r.sphere != o.Topic {
			continue
		}
		switch c.goodbye(k, o.Time) {
		case goodbyeSure:
			r.kept = o.Time // the replaced client's goodbye REG-009
			continue
		case goodbyeMaybe:
			c.life.unsure[id] = true
		}
		delete(c.life.regs, k)
	}
	c.life.gone[id] = o.Time
	c.partyGone(id, o.Time)
}

// partyGone ends, for the rules, every session id takes part in.
func (c *Checker) partyGone(id string, t time.Time) {
	for _, ss := range c.life.sessions {
		if ss.party(id) {
			ss.end(t)
		}
	}
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
	forget(l.history, now, func(rs []*registration) time.Time { return rs[len(rs)-1].obs.Time })
	same := func(t time.Time) time.Time { return t }
	forget(l.gone, now, same)
	forget(l.left, now, same)
}

// How the checker takes an empty presence message after a replacement.
const (
	goodbyeNo    = iota // no replacement before it: an unregistration
	goodbyeSure         // the first one within replaceGrace: the replaced client's goodbye (REG-009)
	goodbyeMaybe        // the first one later, within maxReplaceGrace: a connector may take it either way
)

// maxReplaceGrace is the longest grace a connector may give a replaced client's goodbye (the
// reference's default, reference/connector DefaultReplaceGrace).
const maxReplaceGrace = 10 * time.Second

// goodbye classifies an empty presence message of the pair at t; only the first after a
// replacement can be the replaced client's goodbye.
func (c *Checker) goodbye(k regKey, t time.Time) int {
	for i := len(c.life.replaced) - 1; i >= 0; i-- {
		r := c.life.replaced[i]
		if r.key != k || t.Before(r.now.Time) || r.goodbye {
			continue
		}
		r.goodbye = true
		switch d := t.Sub(r.now.Time); {
		case c.cfg.Profile == spec.ProfileStrict && d < maxReplaceGrace:
			// REG-009 is the client profile's: a strict connector may give no grace
			// (the written spec's clients send no goodbye), or some.
			return goodbyeMaybe
		case d < replaceGrace:
			return goodbyeSure
		case d < maxReplaceGrace:
			return goodbyeMaybe
		}
		return goodbyeNo
	}
	return goodbyeNo
}

// serviceTopic reports an address at one of the connector's own topics (no endpoint's: a
// connector refuses such a registration).
func (c *Checker) serviceTopic(t string) bool {
	for _, svc := range []string{c.topics.Connector(), c.topics.Management(), c.topics.SphereRoot(), c.topics.Events()} {
		if underTopic(t, svc) {
			return true
		}
	}
	return false
}

// calleeRegs returns the registrations a call to id in appContext may go to (the reference's
// registry.lookup: any of id's when the call names no appContext, else that one).
func (c *Checker) calleeRegs(id, app string) []*registration {
	var out []*registration
	for k, r := range c.life.regs {
		if k.id == id && (app == "" || k.app == app || k.app == "") {
			out = append(out, r)
		}
	}
	return out
}

// checkRouting judges where the connector sends a START_SESSION to a registered endpoint:
// to its current address (REG-006; an endpoint that unregistered gets none, REG-008), and
// never an own FAILURE while it is registered (REG-005 for a registration by `topic`, REG-009
// when only the replaced client's goodbye could have removed it, SESS-002 otherwise). Calls
// to queues and scheme gateways route elsewhere and are not judged here.
func (c *Checker) checkRouting(s sent, ss *session) {
	m, o := s.msg, s.obs
	if c.life.queues[ss.to] || c.schemeTopic(ss.to) != "" || !c.complete(o.Time) || !ss.clean || c.life.unsure[ss.to] {
		return // elsewhere routed, refused as malformed, or a registry the checker cannot be sure of
	}
	start, _ := spec.Decode(ss.start.Payload)
	app := ""
	if start != nil {
		app = start.AppContext
	}
	regs := c.calleeRegs(ss.to, app)
	switch {
	case m.Method == spec.MethodStartSession && len(regs) == 0:
		if gone, ok := c.life.gone[ss.to]; ok && gone.After(c.lastReg(ss.to)) {
			c.add(Finding{Requirement: "REG-008", Participant: s.who, Time: o.Time, Evidence: []Observation{ss.start, o},
				Expected: fmt.Sprintf("a call to %s, which unregistered, answered FAILURE", ss.to),
				Actual:   fmt.Sprintf("forwarded to %q", o.Topic)})
		}
	case m.Method == spec.MethodStartSession:
		for _, r := range regs {
			if underTopic(o.Topic, r.addr) {
				c.pass(s.who, "REG-006")
				return
			}
		}
		c.add(Finding{Requirement: "REG-006", Participant: s.who, Time: o.Time, Evidence: []Observation{regs[0].obs, ss.start, o},
			Expected: fmt.Sprintf("the call forwarded to %s's newest registration, %s", ss.to, regs[0].addr),
			Actual:   fmt.Sprintf("forwarded to %q", o.Topic)})
	case len(regs) > 0 && !ss.forwarded:
		r := regs[0]
		req, why := "SESS-002", "registered"
		switch {
		case !r.kept.IsZero():
			req, why = "REG-009", "registered (the empty message that followed its replacement was the replaced client's goodbye)"
		case r.topicOnly:
			req, why = "REG-005", "registered with `topic`"
		}
		c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{r.obs, ss.start, o},
			Expected: fmt.Sprintf("the call forwarded to %s, %s at %s", ss.to, why, r.addr),
			Actual:   fmt.Sprintf("FAILURE %q", m.Reason)})
	}
}

// lastReg is when id last registered (zero when never).
func (c *Checker) lastReg(id string) time.Time {
	var t time.Time
	for _, rs := range c.life.history {
		for _, r := range rs {
			if r.key.id == id && r.obs.Time.After(t) {
				t = r.obs.Time
			}
		}
	}
	return t
}

// schemeTopic is the gateway topic advertised for id's scheme prefix ("" when none).
func (c *Checker) schemeTopic(id string) string {
	i := strings.IndexByte(id, ':')
	if i <= 0 {
		return ""
	}
	return c.life.schemes[strings.ToLower(id[:i])]
}
