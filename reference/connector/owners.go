package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// --- session ownership across replicas --------------------------------------------
//
// rtcomm.js sends the messages of its START_SESSION transaction (ICE candidates
// trickled after the first PRANSWER, before the answer) to the general connector
// topic <path>connector/<caller>, not to the session topic: Transaction.js keeps the
// toTopic it had when the transaction started (null = the connector topic, see
// EndpointConnection.js normalizeTopic), and SigSession.js sends through the
// transaction until the answer. A caller that saw no PRANSWER sends even its
// STOP_SESSION there, and a referred caller answers REFER there. With replicas the
// shared subscription hands such a message to any replica. So every replica keeps
// an ownership record of every session:
//
//	<path>connector/~<group>/own/<sha256(sigSessID)[:32 hex]>   QoS 1, not retained
//
// published by the owner when it routes the START_SESSION (before it forwards it),
// again once the session is answered, and empty when it ends. A replica that
// receives a message for a session it does not hold forwards it, byte for byte, to
// the owner's session topic <path>connector/<owner>/<sender>: exactly what the
// sender could have published itself, with the sender level unchanged, so the
// owner's party check (ID-006) still judges the true sender.
//
// Nothing is retained (ROB-003: no session state may outlive what caused it): a
// replica that starts publishes <path>connector/~<group>/hello/<ID>, and every
// replica answers by publishing its liveness and all its records again.
//
// Liveness: each replica publishes <path>connector/~<group>/live/<ID>, with an
// empty will there. When a replica goes (crash: the will; Close: it says so), the
// survivor with the lowest ID ends the sessions its records name: both parties
// are told (RESPONSE FAILURE and STOP_SESSION to an unanswered caller, STOP_SESSION
// otherwise) and
// events fire. DESIGN.md, "Replicas".

// ownRecord is the ownership record of one session.
type ownRecord struct {
	Owner        string `json:"owner"`
	SigSessID    string `json:"sigSessID"`
	TransID      string `json:"transID,omitempty"`
	Caller       string `json:"caller"`
	CallerTopic  string `json:"callerTopic"`
	Callee       string `json:"callee,omitempty"` // "" while a queue or scheme call is unanswered
	CalleeTopic  string `json:"calleeTopic,omitempty"`
	ToEndpointID string `json:"toEndpointID"`
	AppContext   string `json:"appContext,omitempty"`
	Established  bool   `json:"established,omitempty"`
	// RouteOnly: a call a route-only replica forwarded; its parties talk directly, so
	// when the owner goes the record is cleared and nobody is told anything.
	RouteOnly bool `json:"routeOnly,omitempty"`
}

// maxOwnerRecords bounds the records of other replicas' sessions one replica keeps.
func (c *Connector) maxOwnerRecords() int { return 8 * c.cfg.MaxSessions }

// replicated reports whether this connector is one replica of a group.
func (c *Connector) replicated() bool { return c.cfg.SharedGroup != "" }

func (c *Connector) groupPrefix() string { return c.connPrefix + "~" + c.cfg.SharedGroup + "/" }
func (c *Connector) ownPrefix() string   { return c.groupPrefix() + "own/" }
func (c *Connector) livePrefix() string  { return c.groupPrefix() + "live/" }
func (c *Connector) helloPrefix() string { return c.groupPrefix() + "hello/" }

// ownKey is the topic level of a session's record: a fixed-length hash, because a
// sigSessID may hold any character, '/' and wildcards included.
func ownKey(sigSessID string) string {
	h := sha256.Sum256([]byte(sigSessID))
	return hex.EncodeToString(h[:16])
}

// recordLocked queues the (re)publication of s's ownership record.
func (c *Connector) recordLocked(s *session, o *outbox) {
	if !c.replicated() {
		return
	}
	r := ownRecord{Owner: c.id, SigSessID: s.id, TransID: s.transID, Caller: s.caller.id,
		CallerTopic: s.caller.topic, CalleeTopic: s.callee.topic, ToEndpointID: s.toEndpointID,
		AppContext: s.appContext, Established: s.state == stateEstablished}
	if s.calleeBound {
		r.Callee = s.callee.id
	}
	b, _ := json.Marshal(r) // strings only: cannot fail
	*o = append(*o, pub{topic: c.ownPrefix() + ownKey(s.id), qos: 1, raw: b})
}

// unrecordLocked queues the clearing of s's ownership record.
func (c *Connector) unrecordLocked(id string, o *outbox) {
	if !c.replicated() {
		return
	}
	*o = append(*o, pub{topic: c.ownPrefix() + ownKey(id), qos: 1, raw: []byte{}})
}

// onOwnRecord keeps the other replicas' ownership records.
func (c *Connector) onOwnRecord(msg mqttc.Message) {
	key, ok := senderOf(msg.Topic, c.ownPrefix())
	if !ok {
		return
	}
	if len(msg.Payload) == 0 {
		c.mu.Lock()
		delete(c.owners, key)
		c.mu.Unlock()
		return
	}
	var r ownRecord
	if err := json.Unmarshal(msg.Payload, &r); err != nil || r.Owner == "" || r.SigSessID == "" || ownKey(r.SigSessID) != key {
		c.dropped.Add(1)
		c.log.Warn("bad ownership record ignored", "topic", short(msg.Topic))
		return
	}
	if r.Owner == c.id {
		return // our own: the session table is the truth
	}
	if c.cfg.Secure && !c.peerReplica(r.Owner) {
		c.drop(msg.Topic, "ownership record naming "+short(r.Owner)+", who is not a connector of this group") // ID-015
		return
	}
	var o outbox
	c.mu.Lock()
	switch _, known := c.owners[key]; {
	case c.gone[r.Owner]:
		// Published just before its owner went, and overtaken by the news (the
		// owner's last records race its liveness clear): end it like the others.
		if c.cleanerLocked() {
			c.endOrphanLocked(key, r, &o)
		}
	case !known && len(c.owners) >= c.maxOwnerRecords():
		c.dropped.Add(1)
	default:
		c.owners[key] = r
		c.live[r.Owner] = true // a record is a sign of life (its liveness may still be on the way)
	}
	held := c.takeHeldLocked(r.SigSessID)
	c.mu.Unlock()
	c.flush(o)
	c.releaseHeld(held)
}

// ownerOfLocked returns the record of a session another replica holds.
func (c *Connector) ownerOfLocked(sigSessID string) (ownRecord, bool) {
	if len(c.owners) == 0 {
		return ownRecord{}, false
	}
	r, ok := c.owners[ownKey(sigSessID)]
	return r, ok && r.SigSessID == sigSessID
}

// forwardToOwner hands an in-session message that reached this replica on the
// general connector topic to the replica that holds the session. It reports
// whether the message was dealt with (forwarded or refused).
func (c *Connector) forwardToOwner(sender string, in *inbound, msg mqttc.Message) bool {
	if !c.replicated() || strings.HasPrefix(msg.Topic, c.inPathPrefix) {
		return false // only from the general topic: a forwarded message is never forwarded again
	}
	c.mu.Lock()
	r, ok := c.ownerOfLocked(string(in.sigSessID))
	live := ok && c.live[r.Owner]
	c.mu.Unlock()
	if !ok || !live {
		return false
	}
	if sender != r.Caller && (r.RouteOnly || sender != r.Callee && r.Callee != "") {
		// Not a party: refused here as the owner would (ID-006); nothing is forwarded.
		c.reject(msg.Topic, in.msg(), msg.QoS, "not_a_party", sender+" is not a party of session "+short(r.SigSessID))
		return true
	}
	// Unchanged bytes, true sender level: the owner relays it as if sent to it. ID-006
	c.publish(spec.Join(c.connPrefix+r.Owner, sender), msg.QoS, false, msg.Payload)
	c.forwarded.Add(1)
	return true
}

// --- REFER answers across replicas ---------------------------------------------------

// referOwner is where the answer to another replica's REFER goes.
type referOwner struct {
	owner, caller string
	expires       time.Time
}

// noteReferLocked remembers which replica sent the REFER with transID (from its claim).
func (c *Connector) noteReferLocked(transID, owner, caller string) {
	if transID == "" || len(c.referOwn) >= c.cfg.MaxSessions {
		return
	}
	c.referOwn[transID] = referOwner{owner: owner, caller: caller, expires: time.Now().Add(c.cfg.ThreePCCTimeout)}
}

// forwardReferResponseLocked hands a REFER answer that reached this replica on the
// general connector topic (rtcomm.js answers REFER there: its referral Transaction
// has no toTopic) to the replica that sent the REFER, unchanged, with the true
// sender level. Only the referred caller's answer is forwarded.
func (c *Connector) forwardReferResponseLocked(sender, transID string, msg mqttc.Message) bool {
	ro, ok := c.referOwn[transID]
	if !ok || strings.HasPrefix(msg.Topic, c.inPathPrefix) || sender != ro.caller {
		return false
	}
	delete(c.referOwn, transID)
	c.publish(spec.Join(c.connPrefix+ro.owner, sender), msg.QoS, false, msg.Payload) // ID-006
	c.forwarded.Add(1)
	return true
}

// pruneReferOwnersLocked forgets REFERs whose 3PCC request has timed out anyway.
func (c *Connector) pruneReferOwnersLocked(now time.Time) {
	for id, ro := range c.referOwn {
		if now.After(ro.expires) {
			delete(c.referOwn, id)
		}
	}
}

// --- messages that overtake their session's record -------------------------------------

// holdWindow is how long a replica keeps a message for a session it knows nothing
// about, waiting for the owner's record: a client that trickles candidates at once
// after its START_SESSION (allowed: "before and after the answer") can reach this
// replica before the record the owner published ahead of forwarding the call.
const holdWindow = time.Second

// maxHeldForward bounds the messages held for records, all sessions together.
const maxHeldForward = 4096

type heldFwd struct {
	sender string
	in     inbound
	msg    mqttc.Message
	until  time.Time
}

// holdForRecord keeps an in-session message for an unknown session that arrived on
// the general topic until the session's record arrives (then it is forwarded) or
// holdWindow passes (then it is handled as an unknown session). Replicas only.
func (c *Connector) holdForRecord(sender string, in *inbound, msg mqttc.Message) bool {
	if !c.replicated() || strings.HasPrefix(msg.Topic, c.inPathPrefix) || len(in.sigSessID) == 0 {
		return false
	}
	sid := string(in.sigSessID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ended := c.tombs.get(sid); ended || c.nHeld >= maxHeldForward {
		return false
	}
	c.held[sid] = append(c.held[sid], heldFwd{sender: sender, in: *in, msg: msg, until: time.Now().Add(holdWindow)})
	c.nHeld++
	return true
}

// takeHeldLocked removes and returns the messages held for sid.
func (c *Connector) takeHeldLocked(sid string) []heldFwd {
	hs := c.held[sid]
	if len(hs) > 0 {
		delete(c.held, sid)
		c.nHeld -= len(hs)
	}
	return hs
}

// takeExpiredHeldLocked removes and returns the held messages whose window passed.
func (c *Connector) takeExpiredHeldLocked(now time.Time) []heldFwd {
	var out []heldFwd
	for sid, hs := range c.held {
		if now.After(hs[0].until) {
			out = append(out, c.takeHeldLocked(sid)...)
		}
	}
	return out
}

// releaseHeld forwards messages whose session's record has just arrived.
func (c *Connector) releaseHeld(hs []heldFwd) {
	for i := range hs {
		h := &hs[i]
		if !c.forwardToOwner(h.sender, &h.in, h.msg) {
			c.unknownSession(h.sender, &h.in, h.msg)
		}
	}
}
