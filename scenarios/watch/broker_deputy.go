package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// pccKept is how long a 3PCC request (and the session it referred) is remembered: well
// beyond lib.rtcomm.node's 45 s and the reference's default 3PCC timeout.
const pccKept = 5 * time.Minute

// deputyModel is what the connector may act on for endpoints on a secured deployment.
type deputyModel struct {
	// ID-013: registrations of an address that is not the registrant's own inbox.
	badRegs  map[string]map[string]Observation // registrant ID -> appContext -> its DOCUMENT
	badAddrs map[string]Observation            // address -> a DOCUMENT that declared it (not its owner's)
	ownAddrs map[string]bool                   // addresses their inbox's owner registered
	full     bool                              // ownAddrs hit its bound: DOCUMENT_REPLACED not judged

	// ID-015: the configured call controllers (nil: not told, not judged) and the 3PCC
	// requests and referred sessions seen.
	controllers map[string]bool
	pccs        map[string]*pccRequest // requester's transID -> request
	referred    map[string]*pccRequest // the referred session's sigSessID -> request
}

type pccRequest struct {
	transID, caller, callee, sid string
	from                         string // the sender the connector can tell ("" on the bare topic: a trusted service)
	allowed                      bool
	at                           time.Time
	o                            Observation
	refer                        *Observation // the REFER the connector sent for it
	started, answered            bool         // the referred session: caller's START_SESSION, callee's SUCCESS
}

// SetCallControllers tells the judge the endpoint IDs the connector is configured to serve
// 3PCC_PLACE_CALL to in secure mode (ID-015; the reference: connector.Config.CallControllers,
// serve --call-controllers and the credentials file's call-controller role). Listing the
// connector's user lets it place calls on the bare call-control topic (lib.rtcomm.node), as
// in the reference. Without it, who may place calls is not judged.
func (b *Broker) SetCallControllers(ids []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ident.init()
	b.ident.controllers = map[string]bool{}
	for _, id := range ids {
		b.ident.controllers[id] = true
	}
}

// deputy judges what the connector did with registrations (ID-013) and 3PCC requests
// (ID-015) on a secured deployment: o is a publish the broker let through from user (the
// connector's: *b.secure). Called by PublishedBy, under b.mu.
func (b *Broker) deputy(user string, o Observation) []Finding {
	s := &b.ident
	s.init()
	rest, inPath := strings.CutPrefix(o.Topic, b.secPath)
	super := *b.secure != "" && user == *b.secure
	if !super {
		if inPath {
			b.endpointSent(user, rest, o)
		}
		return nil
	}
	// The connector's: decoded only when it may act on something judged (a relay of every
	// call would otherwise be decoded once more).
	p := o.Payload
	if !bytes.Contains(p, []byte("3PCC_PLACE_CALL")) && !(len(s.pccs) > 0 && bytes.Contains(p, []byte("REFER"))) &&
		!(len(s.badAddrs) > 0 && (bytes.Contains(p, []byte("START_SESSION")) || bytes.Contains(p, []byte("DOCUMENT_REPLACED")))) {
		return nil
	}
	m, _ := spec.Decode(o.Payload)
	if m == nil {
		return nil
	}
	ev := o
	ev.Topic, ev.Payload = shortTopic(o.Topic), slices.Clone(o.Payload[:min(len(o.Payload), 160)])
	switch {
	case m.Method == spec.MethodResponse && m.Orig == spec.Method3PCCPlaceCall:
		return b.pccAnswered(m, ev)
	case !inPath:
		return nil
	case m.Method == spec.MethodStartSession:
		return b.routedTo(m, ev)
	case m.Method == spec.MethodDocumentReplaced:
		return b.replacedAt(spec.Parent(o.Topic), ev)
	case m.Method == spec.MethodRefer:
		return b.referred(rest, m, ev)
	case m.Method == spec.Method3PCCPlaceCall && isCallControl(rest):
		b.pccPlaced(user, rest, m, ev) // lib.rtcomm.node through the connector's user, on the bare topic
	}
	return nil
}

func isCallControl(rest string) bool {
	return rest == "callControl" || (strings.HasPrefix(rest, "callControl/") && !strings.Contains(rest[len("callControl/"):], "/"))
}

// ownInbox reports whether topic is id's own inbox <path><id> or below it.
func (b *Broker) ownInbox(id, topic string) bool {
	rest, ok := strings.CutPrefix(topic, b.secPath)
	return ok && id != "" && (rest == id || strings.HasPrefix(rest, id+"/"))
}

// endpointSent notes what an endpoint (not the connector) published at <path>rest that the
// connector may act on: its DOCUMENT, its 3PCC request, its referred session and answer.
func (b *Broker) endpointSent(user, rest string, o Observation) {
	s := &b.ident
	first, _, _ := strings.Cut(rest, "/")
	switch {
	case first == "sphere":
		id := spec.Sender(rest)
		if len(o.Payload) == 0 {
			delete(s.badRegs, id) // unregistered: the connector forgets it
			return
		}
		m, _ := spec.Decode(o.Payload)
		if m == nil || m.Method != spec.MethodDocument || m.Address() == "" {
			return
		}
		addr := strings.TrimSuffix(m.Address(), "/")
		ev := o
		ev.Topic, ev.Payload = shortTopic(o.Topic), slices.Clone(o.Payload[:min(len(o.Payload), 240)])
		if b.ownInbox(id, addr) {
			if regs := s.badRegs[id]; regs != nil {
				delete(regs, m.AppContext)
			}
			if len(s.ownAddrs) < identityKept {
				s.ownAddrs[addr] = true
			} else if !s.ownAddrs[addr] {
				s.full = true
			}
			return
		}
		if len(s.badRegs) >= identityKept || len(s.badAddrs) >= identityKept {
			return
		}
		if s.badRegs[id] == nil {
			s.badRegs[id] = map[string]Observation{}
		}
		s.badRegs[id][m.AppContext] = ev
		s.badAddrs[addr] = ev
	case isCallControl(rest):
		if bytes.Contains(o.Payload, []byte("3PCC_PLACE_CALL")) {
			if m, _ := spec.Decode(o.Payload); m != nil && m.Method == spec.Method3PCCPlaceCall {
				ev := o
				ev.Topic, ev.Payload = shortTopic(o.Topic), slices.Clone(o.Payload[:min(len(o.Payload), 240)])
				b.pccPlaced(user, rest, m, ev)
			}
		}
	case len(s.referred) > 0 && bytes.Contains(o.Payload, []byte("sigSessID")):
		m, _ := spec.Decode(o.Payload)
		if m == nil {
			return
		}
		p := s.referred[m.SigSessID]
		switch {
		case p == nil:
		case m.Method == spec.MethodStartSession && spec.Sender(rest) == p.caller && m.ToEndpointID == p.callee:
			p.started = true
		case m.Method == spec.MethodResponse && m.Orig == spec.MethodStartSession && m.Result == spec.ResultSuccess && p.started && spec.Sender(rest) == p.callee:
			p.answered = true
		}
	}
}

// routedTo judges a START_SESSION the connector published: forwarded to an address that a
// DOCUMENT of its callee declared although it is not the callee's own inbox (ID-013).
func (b *Broker) routedTo(m *spec.Message, ev Observation) []Finding {
	reg, ok := b.ident.badRegs[m.ToEndpointID][m.AppContext]
	if !ok {
		for _, r := range b.ident.badRegs[m.ToEndpointID] {
			reg, ok = r, true
			break
		}
	}
	if !ok || !topicUnder(ev.Topic, b.regAddress(reg)) {
		return nil
	}
	return b.add(Finding{Requirement: "ID-013", Participant: ConnectorParticipant,
		Expected: fmt.Sprintf("no DOCUMENT of %q registered with an address outside its own inbox (%s%s), so no call to it routed there", m.ToEndpointID, b.secPath, m.ToEndpointID),
		Actual:   fmt.Sprintf("the call to %q forwarded at %s, the address its DOCUMENT claimed", m.ToEndpointID, ev.Topic), Time: ev.Time,
		Evidence: []Observation{reg, ev}})
}

func (b *Broker) regAddress(doc Observation) string {
	m, _ := spec.Decode(doc.Payload)
	if m == nil {
		return ""
	}
	return strings.TrimSuffix(m.Address(), "/")
}

func topicUnder(topic, prefix string) bool {
	return prefix != "" && (topic == prefix || strings.HasPrefix(topic, prefix+"/"))
}

// replacedAt judges a DOCUMENT_REPLACED the connector sent to address: one only a
// registration of another's inbox declared (its owner never registered it) means the
// connector registered that DOCUMENT (ID-013).
func (b *Broker) replacedAt(address string, ev Observation) []Finding {
	s := &b.ident
	doc, ok := s.badAddrs[address]
	if !ok || s.ownAddrs[address] || s.full {
		return nil
	}
	return b.add(Finding{Requirement: "ID-013", Participant: ConnectorParticipant,
		Expected: fmt.Sprintf("no DOCUMENT_REPLACED at %s: only a DOCUMENT of another endpoint than its inbox's owner declared it, which the connector must not register", address),
		Actual:   "DOCUMENT_REPLACED published at " + ev.Topic, Time: ev.Time, Evidence: []Observation{doc, ev}})
}

// pccPlaced notes a 3PCC_PLACE_CALL on the call-control topic (rest: callControl or
// callControl/<sender>) and whether the connector may serve it (ID-015; the reference's
// Connector.mayPlaceCalls).
func (b *Broker) pccPlaced(user, rest string, m *spec.Message, ev Observation) {
	s := &b.ident
	if m.TransID == "" {
		return
	}
	b.prunePCC(ev.Time)
	if len(s.pccs) >= identityKept {
		return
	}
	p := &pccRequest{transID: m.TransID, caller: m.CallerEndpoint, callee: m.CalleeEndpoint, sid: m.SessionID, at: ev.Time, o: ev, allowed: true}
	if s.controllers != nil {
		if rest == "callControl" {
			p.allowed = *b.secure != "" && user == *b.secure && s.controllers[user]
		} else {
			p.from = spec.Sender(rest)
			p.allowed = s.controllers[p.from]
		}
	}
	s.pccs[m.TransID] = p
	if p.sid != "" {
		s.referred[p.sid] = p
	}
}

func (b *Broker) prunePCC(now time.Time) {
	s := &b.ident
	if len(s.pccs) < 256 {
		return
	}
	for k, p := range s.pccs {
		if now.Sub(p.at) > pccKept {
			delete(s.pccs, k)
			if s.referred[p.sid] == p {
				delete(s.referred, p.sid)
			}
		}
	}
}

func (b *Broker) notController(p *pccRequest) string {
	if p.from == "" {
		return "the bare call-control topic, the connector's user not a configured call controller"
	}
	return strconv.Quote(p.from) + ", not a configured call controller"
}

// referred judges a REFER the connector sent: for a request of someone who is no call
// controller it is a finding (ID-015); for another, it names the session that must complete it.
func (b *Broker) referred(rest string, m *spec.Message, ev Observation) []Finding {
	s := &b.ident
	var d spec.ReferDetails
	_ = json.Unmarshal(m.Details, &d)
	var match *pccRequest
	for _, p := range s.pccs {
		if p.refer != nil || p.callee != m.ToEndpointID {
			continue
		}
		if p.sid != "" && p.sid != d.SessionID {
			continue
		}
		if p.sid == "" && !(rest == p.caller || strings.HasPrefix(rest, p.caller+"/")) {
			continue
		}
		if match != nil && match.allowed != p.allowed {
			return nil // two requests, one allowed, could explain it: not judged
		}
		if match == nil || p.at.Before(match.at) {
			match = p
		}
	}
	if match == nil {
		return nil
	}
	refer := ev
	match.refer = &refer
	if match.sid == "" && d.SessionID != "" {
		match.sid = d.SessionID
		s.referred[d.SessionID] = match
	}
	if match.allowed {
		return nil
	}
	return b.add(Finding{Requirement: "ID-015", Participant: ConnectorParticipant,
		Expected: "a 3PCC_PLACE_CALL only from a configured call controller acted on; this one came from " + b.notController(match),
		Actual:   fmt.Sprintf("REFER sent to %q at %s to call %q", match.caller, ev.Topic, match.callee), Time: ev.Time,
		Evidence: []Observation{match.o, ev}})
}

// pccAnswered judges the connector's RESPONSE to a 3PCC request: SUCCESS only to a call
// controller and only once the referred session (its sigSessID, from the caller to the
// callee) was answered (ID-015).
func (b *Broker) pccAnswered(m *spec.Message, ev Observation) []Finding {
	s := &b.ident
	p := s.pccs[m.TransID]
	if p == nil {
		return nil
	}
	delete(s.pccs, m.TransID)
	if s.referred[p.sid] == p {
		defer delete(s.referred, p.sid)
	}
	if m.Result != spec.ResultSuccess {
		return nil
	}
	evidence := []Observation{p.o}
	if p.refer != nil {
		evidence = append(evidence, *p.refer)
	}
	evidence = append(evidence, ev)
	switch {
	case !p.allowed:
		return b.add(Finding{Requirement: "ID-015", Participant: ConnectorParticipant,
			Expected: "a 3PCC_PLACE_CALL only from a configured call controller completed; this one came from " + b.notController(p),
			Actual:   "RESPONSE SUCCESS to transaction " + p.transID, Time: ev.Time, Evidence: evidence})
	case p.sid == "":
		return nil // no REFER seen: the referred session is unknown
	case !p.answered:
		what := "no START_SESSION"
		if p.started {
			what = "a START_SESSION but no answer SUCCESS"
		}
		return b.add(Finding{Requirement: "ID-015", Participant: ConnectorParticipant,
			Expected: fmt.Sprintf("the 3PCC request %s completed SUCCESS only by the referred session: sigSessID %s from %q to %q, answered", p.transID, p.sid, p.caller, p.callee),
			Actual:   fmt.Sprintf("RESPONSE SUCCESS with %s of that session seen", what), Time: ev.Time, Evidence: evidence})
	}
	return nil
}
