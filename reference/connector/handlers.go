package connector

import (
	"errors"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// answerable reports whether a message may be answered RESPONSE FAILURE: a
// RESPONSE is never answered (that could loop), nor STOP_SESSION (the protocol
// says no reply), nor what the connector itself sends.
func answerable(m spec.Method) bool {
	switch m {
	case spec.MethodResponse, spec.MethodStopSession, spec.MethodDocument,
		spec.MethodDocumentReplaced, spec.MethodEventFired:
		return false
	}
	return true
}

// reject answers a request RESPONSE FAILURE with reason when it has a transID
// and a usable fromTopic, to <fromTopic>/<connector ID> (fromTopic exactly
// when it lies outside the topic path, and always for 3PCC_PLACE_CALL);
// otherwise it only logs. code is the
// failure's metric label.
func (c *Connector) reject(topic string, m *spec.Message, qos byte, code, reason string) {
	c.countFailure(code)
	if m == nil || m.TransID == "" || m.FromTopic == "" || !answerable(m.Method) {
		c.dropped.Add(1)
		c.log.Info("message dropped (no transID/fromTopic to answer)", "topic", topic, "code", code, "reason", reason)
		return
	}
	// The requester is the inbound topic's last level (ID-006); in secure mode only a
	// topic of its own inbox gets an answer (ID-014).
	check := c.partyTopic(spec.Sender(topic), m.FromTopic)
	if topic == c.ccTopic && c.bareServiceTrusted() {
		check = c.checkPartyTopic(m.FromTopic) // lib.rtcomm.node run as the connector's user
	}
	if err := check; err != nil {
		c.dropped.Add(1)
		c.log.Info("message dropped (fromTopic unusable for the answer)", "topic", topic, "code", code,
			"reason", reason, "fromTopicErr", err)
		return
	}
	orig := c.origFor(topic, m.Method)
	dest := c.to(m.FromTopic, c.id)
	if orig == spec.Method3PCCPlaceCall && (!c.cfg.Secure || topic == c.ccTopic) {
		dest = m.FromTopic // 3PCC requesters are answered at fromTopic exactly as given REF-005
	}
	c.send(dest, qos, &spec.Message{ // ROB-002
		Method:    spec.MethodResponse,
		Orig:      orig,
		TransID:   m.TransID,
		SigSessID: m.SigSessID,
		Result:    spec.ResultFailure,
		Reason:    reason,
	})
	c.log.Info("request answered FAILURE", "topic", topic, "method", short(string(m.Method)),
		"transID", short(m.TransID), "code", code, "reason", reason)
}

// origFor is the orig of a FAILURE answer: the request method itself, or,
// for anything else carrying a transID (a MESSAGE inside the START_SESSION
// transaction, an unknown method), the request the topic serves: a RESPONSE
// may only answer SERVICE_QUERY, START_SESSION, REFER or 3PCC_PLACE_CALL.
func (c *Connector) origFor(topic string, m spec.Method) spec.Method {
	switch m {
	case spec.MethodServiceQuery, spec.MethodStartSession, spec.MethodRefer, spec.Method3PCCPlaceCall:
		return m
	}
	switch {
	case strings.HasPrefix(topic, c.mgmtPrefix):
		return spec.MethodServiceQuery
	case topic == c.ccTopic || strings.HasPrefix(topic, c.ccTopic+"/"):
		return spec.Method3PCCPlaceCall
	}
	return spec.MethodStartSession
}

// badVersion reports an rtcommVer other than v1.0.0 (absent is tolerated).
func badVersion(v string) bool { return v != "" && v != spec.Version }

// rejectVersion answers a message of another protocol version.
func (c *Connector) rejectVersion(topic string, m *spec.Message, qos byte) {
	c.reject(topic, m, qos, "bad_version", "unsupported rtcommVer "+short(m.RtcommVer)+" (want "+spec.Version+")") // FMT-003
}

// short bounds a value taken from a message before it goes into a log or a reason.
func short(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit-3], "") + "..."
}

// drop logs a message that cannot be answered at all.
func (c *Connector) drop(topic, why string) {
	c.dropped.Add(1)
	c.log.Info("message dropped", "topic", topic, "reason", why)
}

// rejectMethod answers a message whose method does not belong on this topic.
func (c *Connector) rejectMethod(topic string, m *spec.Message, decErr error, qos byte, where string) {
	var fe *spec.FieldError
	switch {
	case m.Method == "" && errors.As(decErr, &fe):
		c.reject(topic, m, qos, "bad_message", "malformed message: "+decErr.Error())
	case m.Method == "":
		c.reject(topic, m, qos, "bad_message", "message without method")
	case !m.Method.Known():
		c.reject(topic, m, qos, "unknown_method", "unknown method "+quote(short(string(m.Method)))) // ROB-001
	case m.Method == spec.MethodResponse:
		c.dropped.Add(1)
		if c.debug {
			c.log.Debug("unexpected RESPONSE dropped", "topic", topic, "orig", m.Orig, "transID", m.TransID)
		}
	default:
		c.reject(topic, m, qos, "unexpected_method", string(m.Method)+" is not accepted on the "+where+" topic")
	}
}

// onManagement answers SERVICE_QUERY: exactly one RESPONSE per query (with
// replicas, the shared subscription hands each query to one of them).
func (c *Connector) onManagement(msg mqttc.Message) { // SQ-001
	m := c.decodeRequest(msg, spec.Sender(msg.Topic), spec.MethodServiceQuery, "management")
	if m == nil {
		return
	}
	if m.TransID == "" || m.FromTopic == "" {
		c.reject(msg.Topic, m, msg.QoS, "missing_field", "SERVICE_QUERY needs transID and fromTopic")
		return
	}
	if err := c.partyTopic(spec.Sender(msg.Topic), m.FromTopic); err != nil {
		c.reject(msg.Topic, m, msg.QoS, "bad_topic", "fromTopic: "+err.Error()) // ID-014
		return
	}
	c.send(c.to(m.FromTopic, c.id), msg.QoS, &spec.Message{ // SQ-002 SQ-003
		Method:   spec.MethodResponse,
		Orig:     spec.MethodServiceQuery,
		TransID:  m.TransID,
		Result:   spec.ResultSuccess, // SQ-004
		Services: c.services,
	})
	if c.debug {
		c.log.Debug("service query answered", "topic", msg.Topic, "transID", m.TransID)
	}
}

// onConnectorTopic handles <path>connector/<sender>: START_SESSION from
// callers, and (leniently) in-session messages sent there instead of to the
// session topic.
func (c *Connector) onConnectorTopic(msg mqttc.Message) {
	c.onRouting(msg, msg.Topic[len(c.connPrefix):], "connector")
}

// onSessionTopic handles <session topic>/<sender>: replies of parties to what
// this replica forwarded, and REFER answers.
func (c *Connector) onSessionTopic(msg mqttc.Message) {
	if msg.Topic == c.syncTopic {
		c.syncDone(msg.Payload) // a marker of a resubscription (stale route)
		return
	}
	c.onRouting(msg, msg.Topic[len(c.inPathPrefix):], "session")
}

// onConnectorAll handles <path>connector/# when this connector is alone on
// its path: one subscription for calls and for replies.
func (c *Connector) onConnectorAll(msg mqttc.Message) {
	rest := msg.Topic[len(c.connPrefix):]
	i := strings.IndexByte(rest, '/')
	switch {
	case i < 0:
		c.onRouting(msg, rest, "connector")
	case rest[:i] == c.id && strings.IndexByte(rest[i+1:], '/') < 0:
		c.onSessionTopic(msg)
	case strings.IndexByte(rest[i+1:], '/') < 0 && rest[i+1:] != "" && rest[0] != '~':
		// Another connector's session topic on our path: alone on the path, that
		// is a predecessor's (this connector restarted under a new ID), and its
		// parties are told their sessions are gone (unknownSession). Two live
		// connectors without SharedGroup are a misconfiguration anyway: clients
		// get two service answers.
		c.onRouting(msg, rest[i+1:], "session")
	default:
		c.drop(msg.Topic, "not a routing topic")
	}
}

// onRouting is the hot path. An in-session message that scanMessage can judge
// is relayed from its raw bytes; anything else (START_SESSION, REFER answers,
// odd or broken input) is decoded by spec.Decode, whose errors name the field.
// The sender is the topic's last level, nothing else. ID-006
func (c *Connector) onRouting(msg mqttc.Message, sender, where string) {
	t0 := c.now()
	if !c.admit(msg, sender) {
		return
	}
	var in inbound
	if in.scan(msg.Payload) && isRelayMethod(in.method) && !in.isReferResponse() {
		c.relay(sender, &in, msg, t0)
		return
	}
	m, err := spec.Decode(msg.Payload)
	if m == nil {
		c.drop(msg.Topic, err.Error()) // ROB-001
		return
	}
	if badVersion(m.RtcommVer) {
		c.rejectVersion(msg.Topic, m, msg.QoS)
		return
	}
	switch m.Method {
	case spec.MethodStartSession:
		// On the session topic: a referred caller may start its call at the REFER's fromTopic.
		c.startSession(sender, m, err, msg, t0)
	case spec.MethodPranswer, spec.MethodResponse, spec.MethodMessage, spec.MethodStopSession:
		if err != nil {
			c.reject(msg.Topic, m, msg.QoS, "bad_message", "malformed "+string(m.Method)+": "+err.Error()) // ROB-002
			return
		}
		in.useDecoded(m)
		if in.isReferResponse() {
			c.onReferResponse(sender, m, msg)
			return
		}
		c.relay(sender, &in, msg, t0)
	default:
		c.rejectMethod(msg.Topic, m, err, msg.QoS, where) // ROB-001
	}
}

// syncDone releases Start (or a resubscription) once the marker published
// after the sphere subscription came back: every retained document is in.
func (c *Connector) syncDone(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.syncWait != "" && string(payload) == c.syncWait {
		c.syncWait = ""
		close(c.syncCh)
	}
}

// senderOf returns the single level after prefix, or false if there is none or more.
func senderOf(topic, prefix string) (string, bool) {
	if !strings.HasPrefix(topic, prefix) {
		return "", false
	}
	s := topic[len(prefix):]
	return s, s != "" && strings.IndexByte(s, '/') < 0
}

// decodeRequest admits and decodes a request on a topic that serves one method
// (management, call control). Whatever it cannot serve it drops or answers
// FAILURE itself and returns nil.
func (c *Connector) decodeRequest(msg mqttc.Message, key string, want spec.Method, kind string) *spec.Message {
	if !c.admit(msg, key) {
		return nil
	}
	m, err := spec.Decode(msg.Payload)
	if m == nil {
		c.drop(msg.Topic, err.Error())
		return nil
	}
	// lib.rtcomm.node lib/3pcc.js ThirdPartyCC.startCall sends rtcommVer v0.0.1: take
	// it on 3PCC_PLACE_CALL (and nowhere else) FMT-003
	libVersion := want == spec.Method3PCCPlaceCall && m.Method == want && m.RtcommVer == spec.ServiceLibVersion
	if badVersion(m.RtcommVer) && !libVersion {
		c.rejectVersion(msg.Topic, m, msg.QoS)
		return nil
	}
	if m.Method != want {
		c.rejectMethod(msg.Topic, m, err, msg.QoS, kind)
		return nil
	}
	if err != nil {
		c.reject(msg.Topic, m, msg.QoS, "bad_message", "malformed "+string(want)+": "+err.Error()) // ROB-002
		return nil
	}
	return m
}

// firstMissing returns the name of the first empty value in name, value pairs.
func firstMissing(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return pairs[i]
		}
	}
	return ""
}
