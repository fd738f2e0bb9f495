package connector

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// pcc is one third-party call-control request waiting for its call's outcome.
type pcc struct {
	transID      string // the requester's
	replyTo      string // the requester's fromTopic, answered as given outside the path
	qos          byte
	caller       string
	callee       string
	sessionID    string // details.sessionID of the REFER: the sigSessID the caller should use
	referTransID string
	deadline     time.Time
	accepted     bool     // the caller answered the REFER SUCCESS
	session      *session // the caller's session, once it started
}

type pccTable struct {
	byRefer   map[string]*pcc // REFER transID -> request (the primary index)
	bySession map[string]*pcc // sessionID -> request
}

func newPCCTable() pccTable {
	return pccTable{byRefer: map[string]*pcc{}, bySession: map[string]*pcc{}}
}

func (t *pccTable) add(p *pcc) {
	t.byRefer[p.referTransID] = p
	t.bySession[p.sessionID] = p
}

func (t *pccTable) remove(p *pcc) {
	delete(t.byRefer, p.referTransID)
	delete(t.bySession, p.sessionID)
}

// forSession finds the request a new session completes: exactly the referred one,
// whose sigSessID is the REFER's details.sessionID, from the referred caller to the
// referred callee. Nothing else completes a request: matching by caller and callee
// alone let a pending request latch onto an unrelated later call of the same pair and
// report its outcome to the requester (ID-015).
func (t *pccTable) forSession(sigSessID, caller, callee string) *pcc {
	p := t.bySession[sigSessID]
	if p == nil || p.session != nil || p.caller != caller || p.callee != callee {
		return nil // ID-015
	}
	return p
}

// --- replicas ------------------------------------------------------------------
//
// With SharedGroup, the referred caller's START_SESSION may reach any replica,
// not the one holding the 3PCC request. Replicas therefore talk on
// <path>connector/~<group>/claim/<replica ID> (plain subscription, every replica):
// the REFERring replica announces a claim {sessionID, caller, callee}; the
// replica that routes that session reports its outcome there; the claiming
// replica answers the requester. Traffic: two small messages per 3PCC call.

// claim is another replica's open 3PCC request.
type claim struct {
	caller, callee string
	expires        time.Time
}

// replicaTopic is the replicas' channel; "" when not a replica or without call control.
func (c *Connector) replicaTopic() string {
	if c.cfg.SharedGroup == "" || !c.cfg.CallControl {
		return ""
	}
	// Five levels deep, like every replica topic: the ACL grant for replies to a
	// connector's session topic (<path>connector/+/<id>) must not reach it.
	return c.groupPrefix() + "claim"
}

// takeClaimLocked reports (and forgets) another replica's claim on sigSessID.
func (c *Connector) takeClaimLocked(sigSessID, caller, callee string) bool {
	cl, ok := c.claims[sigSessID]
	if !ok || cl.caller != caller || cl.callee != callee { // ID-015
		return false
	}
	delete(c.claims, sigSessID)
	return true
}

// claimOutcome queues the report of a claimed session's outcome for the claiming replica.
func (c *Connector) claimOutcome(o *outbox, sessionID string, ok bool, reason string) {
	r := &spec.Message{Method: spec.MethodResponse, Orig: spec.Method3PCCPlaceCall, SessionID: sessionID,
		Result: spec.ResultSuccess}
	if !ok {
		r.Result, r.Reason = spec.ResultFailure, reason
	}
	o.msg(spec.Join(c.replicaTopic(), c.id), 1, r)
}

// onReplica handles the replicas' channel: claims and outcomes from the others.
func (c *Connector) onReplica(msg mqttc.Message) {
	sender := spec.Sender(msg.Topic)
	if sender == c.id {
		return // our own announcement
	}
	if c.cfg.Secure && !c.peerReplica(sender) {
		// The broker lets an endpoint publish to <path>connector/<anything>/<its ID>
		// (replies to a connector's session topic): a forged claim or outcome here would
		// answer a 3PCC requester for a call that never happened. ID-015
		c.drop(msg.Topic, "replica message from "+short(sender)+", who is not a connector of this group")
		return
	}
	m, err := spec.Decode(msg.Payload)
	if m == nil || err != nil || m.SessionID == "" {
		c.drop(msg.Topic, "bad replica message")
		return
	}
	var o outbox
	c.mu.Lock()
	switch m.Method {
	case spec.Method3PCCPlaceCall: // a claim
		if len(c.claims) < c.cfg.MaxSessions {
			c.claims[m.SessionID] = claim{caller: m.CallerEndpoint, callee: m.CalleeEndpoint, expires: time.Now().Add(c.cfg.ThreePCCTimeout)}
			c.noteReferLocked(m.TransID, sender, m.CallerEndpoint) // owners.go
		}
	case spec.MethodResponse: // an outcome
		if p := c.pcc.bySession[m.SessionID]; p != nil {
			c.answerPCCLocked(p, m.Result == spec.ResultSuccess, m.Reason, &o)
		}
	}
	c.mu.Unlock()
	c.flush(o)
}

// peerReplica reports whether sender is another replica: in secure mode replicas
// authenticate as the connector's user and their client IDs name it ("<user>:<suffix>",
// as serve --secure makes them), which no endpoint can connect with.
func (c *Connector) peerReplica(sender string) bool {
	u := c.cfg.Username
	return u != "" && (sender == u || strings.HasPrefix(sender, u+":"))
}

// pruneClaimsLocked forgets claims whose request has timed out anyway.
func (c *Connector) pruneClaimsLocked(now time.Time) {
	for id, cl := range c.claims {
		if now.After(cl.expires) {
			delete(c.claims, id)
		}
	}
}

// onCallControl serves 3PCC_PLACE_CALL on <path>callControl (lib.rtcomm.node
// publishes there exactly) or <path>callControl/<sender>. Everything sent back
// is JSON: lib.rtcomm.node parses it unchecked.
func (c *Connector) onCallControl(msg mqttc.Message) {
	if msg.Topic != c.ccTopic { // REF-002
		if _, ok := senderOf(msg.Topic, c.ccTopic+"/"); !ok {
			c.drop(msg.Topic, "call-control topic deeper than <callControl>/<sender>")
			return
		}
	}
	key := "~callControl" // lib.rtcomm.node publishes on the bare topic: one client for the limiter
	if msg.Topic != c.ccTopic {
		key = spec.Sender(msg.Topic)
	}
	// lib.rtcomm.node passes the application's transID/sessionID, numbers included
	// (its test/3pccTest.js): serve them as their decimal strings.
	msg.Payload = spec.StringifyPlaceCallIDs(msg.Payload)
	m := c.decodeRequest(msg, key, spec.Method3PCCPlaceCall, "call-control")
	if m == nil {
		return
	}
	if missing := firstMissing("transID", m.TransID, "fromTopic", m.FromTopic,
		"callerEndpoint", m.CallerEndpoint, "calleeEndpoint", m.CalleeEndpoint); missing != "" {
		c.reject(msg.Topic, m, msg.QoS, "missing_field", "3PCC_PLACE_CALL without "+missing)
		return
	}
	if !c.mayPlaceCalls(msg.Topic, key) {
		c.reject(msg.Topic, m, msg.QoS, "not_authorized", "3PCC_PLACE_CALL: "+quote(short(key))+" is not a call controller") // ID-015
		return
	}
	trusted := msg.Topic == c.ccTopic && c.bareServiceTrusted()
	check := c.partyTopic(key, m.FromTopic)
	if trusted {
		check = c.checkPartyTopic(m.FromTopic) // the connector's own user: its topic as given
	}
	if err := check; err != nil {
		c.reject(msg.Topic, m, msg.QoS, "bad_topic", "fromTopic: "+err.Error()) // ID-014
		return
	}
	for _, id := range []string{m.CallerEndpoint, m.CalleeEndpoint} {
		if err := spec.ValidateEndpointID(id); err != nil {
			c.reject(msg.Topic, m, msg.QoS, "bad_endpoint_id", err.Error())
			return
		}
	}
	if m.CallerEndpoint == m.CalleeEndpoint {
		c.reject(msg.Topic, m, msg.QoS, "bad_request", "callerEndpoint and calleeEndpoint are the same")
		return
	}

	c.mu.Lock()
	ce := c.reg.lookup(m.CallerEndpoint, m.AppContext)
	if ce == nil {
		c.mu.Unlock()
		c.reject(msg.Topic, m, msg.QoS, "unknown_endpoint", "caller "+quote(m.CallerEndpoint)+" is not registered") // REF-005
		return
	}
	if _, _, _, err := c.resolveLocked(m.CalleeEndpoint, m.AppContext); err != nil {
		c.mu.Unlock()
		c.reject(msg.Topic, m, msg.QoS, "unknown_endpoint", "callee: "+err.Error()) // REF-005
		return
	}
	sid := m.SessionID
	if sid == "" {
		sid = uuid.NewString()
	}
	if c.sess.byID[sid] != nil || c.pcc.bySession[sid] != nil {
		c.mu.Unlock()
		c.reject(msg.Topic, m, msg.QoS, "duplicate_session", "sessionID "+sid+" is already in use")
		return
	}
	if len(c.pcc.byRefer) >= c.cfg.MaxSessions {
		c.mu.Unlock()
		c.reject(msg.Topic, m, msg.QoS, "table_full", "connector busy: too many pending 3PCC requests")
		return
	}
	replyTo := m.FromTopic // exactly as given: lib.rtcomm.node subscribes to that topic only REF-005
	if c.cfg.Secure && !trusted {
		replyTo = spec.Join(m.FromTopic, c.id) // the requester's own inbox, signed by the connector ID-014
	}
	p := &pcc{
		transID: m.TransID, replyTo: replyTo, qos: msg.QoS,
		caller: m.CallerEndpoint, callee: m.CalleeEndpoint,
		sessionID: sid, referTransID: uuid.NewString(),
		deadline: time.Now().Add(c.cfg.ThreePCCTimeout),
	}
	c.pcc.add(p)
	addr, appContext := ce.address, ce.appContext
	c.mu.Unlock()

	if rt := c.replicaTopic(); rt != "" {
		// Claim first: the replica that gets the caller's START_SESSION then knows to report back.
		c.send(spec.Join(rt, c.id), 1, &spec.Message{Method: spec.Method3PCCPlaceCall, SessionID: sid,
			CallerEndpoint: p.caller, CalleeEndpoint: p.callee, TransID: p.referTransID})
	}
	// details and a fromTopic under the path: lib.rtcomm.node reads them unchecked.
	details, _ := json.Marshal(spec.ReferDetails{SessionID: sid, ToEndpointID: m.CalleeEndpoint}) // REF-004
	c.send(spec.Join(addr, c.id), msg.QoS, &spec.Message{                                         // REF-003
		Method:       spec.MethodRefer,
		TransID:      p.referTransID,
		FromTopic:    c.inPath, // the caller answers at <fromTopic>/<callerID>: this replica REF-004
		ToEndpointID: m.CalleeEndpoint,
		AppContext:   appContext,
		Details:      details,
	})
	c.log.Info("3PCC: REFER sent", "transID", m.TransID, "caller", p.caller, "callee", p.callee, "sessionID", sid)
}

// mayPlaceCalls reports whether the sender of a 3PCC_PLACE_CALL on topic may place
// calls: with CallControllers, only they, on <callControl>/<their ID>; without, anyone
// in open mode and no one in secure mode (ID-015).
//
// The bare <callControl> topic, where lib.rtcomm.node publishes, names no sender. A
// secured broker lets only the connector's own user publish there (no endpoint ID is the
// reserved level "callControl"), so listing the connector's user among the controllers
// opts in to serving lib.rtcomm.node there, answered at its fromTopic exactly.
func (c *Connector) mayPlaceCalls(topic, sender string) bool {
	if len(c.controllers) == 0 {
		return !c.cfg.Secure
	}
	if topic == c.ccTopic {
		return c.bareServiceTrusted() // ID-015
	}
	return c.controllers[sender] // ID-015
}

// bareServiceTrusted reports whether 3PCC requests on the bare <callControl> topic come
// from a trusted service client (the connector's user is a listed controller).
func (c *Connector) bareServiceTrusted() bool {
	return c.cfg.Username != "" && c.controllers[c.cfg.Username]
}

// onReferResponse handles the referred caller's RESPONSE to REFER.
func (c *Connector) onReferResponse(sender string, m *spec.Message, msg mqttc.Message) {
	var o outbox
	c.mu.Lock()
	p := c.pcc.byRefer[m.TransID]
	switch {
	case p == nil && c.forwardReferResponseLocked(sender, m.TransID, msg):
		c.mu.Unlock()
		return
	case p == nil:
		c.mu.Unlock()
		c.dropped.Add(1)
		c.log.Info("RESPONSE to an unknown or finished REFER dropped", "topic", msg.Topic, "transID", m.TransID)
		return
	case sender != p.caller:
		c.mu.Unlock()
		c.drop(msg.Topic, "REFER answered by "+sender+", not by the referred caller "+p.caller)
		return
	case m.Result == spec.ResultSuccess:
		p.accepted = true
		c.mu.Unlock()
		c.log.Info("3PCC: REFER accepted", "caller", p.caller, "sessionID", p.sessionID)
		return
	}
	reason := "REFER refused by " + p.caller
	if m.Reason != "" {
		reason += ": " + m.Reason
	}
	c.answerPCCLocked(p, false, reason, &o) // REF-005
	c.mu.Unlock()
	c.flush(o)
}

// answerPCCLocked answers the 3PCC requester once: SUCCESS when the call was
// answered, FAILURE with reason otherwise.
func (c *Connector) answerPCCLocked(p *pcc, ok bool, reason string, o *outbox) {
	if c.pcc.byRefer[p.referTransID] != p {
		return // answered already
	}
	c.pcc.remove(p)
	if p.session != nil {
		p.session.pcc = nil
	}
	r := &spec.Message{
		Method:    spec.MethodResponse,
		Orig:      spec.Method3PCCPlaceCall,
		TransID:   p.transID,
		SessionID: p.sessionID,
		Result:    spec.ResultSuccess,
	}
	if !ok {
		r.Result, r.Reason = spec.ResultFailure, reason
		c.countFailureLocked("3pcc_failed")
	}
	o.msg(p.replyTo, p.qos, r) // REF-005 ID-014
	c.log.Info("3PCC answered", "transID", p.transID, "result", r.Result, "reason", reason,
		"caller", p.caller, "callee", p.callee)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
