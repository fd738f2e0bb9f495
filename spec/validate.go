package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Violation is one requirement a single publish breaks.
type Violation struct {
	Requirement string // a catalog ID
	Expected    string
	Actual      string
}

// Error formats the violation as "REQ-ID: expected X, actual Y".
func (v Violation) Error() string {
	return fmt.Sprintf("%s: expected %s, actual %s", v.Requirement, v.Expected, v.Actual)
}

// String is Error, so violations print the same in logs and test output.
func (v Violation) String() string { return v.Error() }

// Validator checks single publishes as seen on the wire against the catalog.
// The zero value checks under DefaultTopicPath with the strict profile.
type Validator struct {
	Topics  Topics  // topic layout; an empty Path means DefaultTopicPath
	Profile Profile // "" or anything but ProfileClient means ProfileStrict
}

// Validate checks one publish under the default topic path with the strict profile.
func Validate(topic string, payload []byte) []Violation {
	return Validator{}.Validate(topic, payload)
}

// Validate checks one publish (topic and payload) and returns the violations, ordered by
// requirement ID; nil means none. Only requirements the profile holds a target to are reported.
// It looks at one message, so relations between messages (echoed transIDs, unchanged relays,
// timing) are left to the scenarios.
func (v Validator) Validate(topic string, payload []byte) []Violation {
	c := &checker{topics: NewTopics(v.Topics.Path), profile: ProfileStrict, topic: topic}
	if v.Profile == ProfileClient {
		c.profile = ProfileClient
	}
	c.run(payload)
	slices.SortStableFunc(c.out, func(a, b Violation) int { return compareIDs(a.Requirement, b.Requirement) })
	return c.out
}

// checker accumulates the violations of one publish.
type checker struct {
	topics  Topics
	profile Profile
	topic   string
	rest    []string // topic levels below the topic path; nil when the topic is not under it
	msg     *Message
	bad     map[string]bool // fields that had the wrong JSON type (already reported as FMT-004)
	out     []Violation
}

// catalogIndex finds a requirement by ID without a scan.
var catalogIndex = func() map[string]int {
	m := make(map[string]int, len(catalog))
	for i, r := range catalog {
		m[r.ID] = i
	}
	return m
}()

// add records a violation of id unless the profile does not hold targets to it.
func (c *checker) add(id, expected, actual string) {
	i, ok := catalogIndex[id]
	if !ok {
		// A programming error in this file; the tests keep it from happening. Report it visibly.
		c.out = append(c.out, Violation{Requirement: id, Expected: "a catalog ID", Actual: "unknown ID"})
		return
	}
	if !catalog[i].InProfile(c.profile) {
		return
	}
	c.out = append(c.out, Violation{Requirement: id, Expected: expected, Actual: actual})
}

// absent names a missing value in violations.
const absent = "absent"

// quote shows a string value in violations, shortened so huge payloads stay readable.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func (c *checker) run(payload []byte) {
	if rest, ok := c.topics.Under(c.topic); ok {
		c.rest = strings.Split(rest, "/")
	}
	if len(payload) == 0 {
		c.checkEmpty()
		return
	}
	if !utf8.Valid(payload) {
		c.add("FMT-001", "a UTF-8 JSON object", "invalid UTF-8")
		return
	}
	if c.profile == ProfileClient {
		// Numeric transID/sessionID on 3PCC_PLACE_CALL: lib.rtcomm.node passes the
		// application's values (StringifyPlaceCallIDs). The strict profile holds them to strings.
		payload = StringifyPlaceCallIDs(payload)
	}
	m, err := Decode(payload)
	if m == nil {
		actual := "not JSON"
		if errors.Is(err, ErrNotObject) {
			actual = "a JSON " + jsonKind(bytes.TrimSpace(payload))
		} else if errors.Is(err, ErrEmpty) {
			actual = "only white space"
		}
		c.add("FMT-001", "a JSON object", actual)
		return
	}
	c.msg = m
	c.bad = map[string]bool{}
	for _, fe := range fieldErrors(err) {
		c.bad[fe.Field] = true
		c.add("FMT-004", fmt.Sprintf("%s of type %s", fe.Field, fe.Want), fe.Got)
	}
	c.checkCommon()
	if !m.Method.Known() {
		return
	}
	c.checkSender()
	switch m.Method {
	case MethodDocument:
		c.checkDocument()
	case MethodServiceQuery:
		c.checkServiceQuery()
	case MethodResponse:
		c.checkResponse()
	case MethodStartSession:
		c.checkStartSession()
	case MethodPranswer:
		c.checkPranswer()
	case MethodMessage:
		c.require("MSG-001", "sigSessID", m.SigSessID)
		c.require("MSG-001", "fromTopic", m.FromTopic)
		c.requireRaw("MSG-001", "payload", m.Payload)
	case MethodStopSession:
		c.require("SESS-011", "sigSessID", m.SigSessID)
		c.require("SESS-012", "reason", m.Reason)
	case MethodRefer:
		c.checkRefer()
	case Method3PCCPlaceCall:
		c.checkPlaceCall()
	case MethodEventFired:
		c.checkEvent()
	}
}

// fieldErrors unpacks Decode's joined *FieldErrors.
func fieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*FieldError
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	return out
}

// checkEmpty: a zero-length payload is the last will / unregister, legal only on a presence
// topic, <path>sphere/<id> or <path>sphere/<group>/<id>.
func (c *checker) checkEmpty() {
	if !c.onPresenceTopic() {
		c.add("REG-002", "an empty payload only at "+c.topics.Sphere("<endpointID>")+" or "+c.topics.Sphere("<group>/<endpointID>"),
			"empty payload at "+quote(c.topic))
		return
	}
	c.checkID(c.rest[len(c.rest)-1], "presence topic's last level")
}

// onPresenceTopic reports whether the topic is a presence topic: <path>sphere/<id>, or
// <path>sphere/<group>/<id> for an endpoint configured with a presence group (rtcomm.js
// src/rtcomm/connection/EndpointConnection.js getMyPresenceTopic: presence.topic may name
// a group, even a nested one such as "us/agents", between the sphere root and the ID).
func (c *checker) onPresenceTopic() bool {
	if len(c.rest) < 2 || c.rest[0] != "sphere" {
		return false
	}
	for _, level := range c.rest[1 : len(c.rest)-1] {
		if level == "" { // rtcomm.js collapses "//" (normalizeTopic); an empty group is a mistake
			return false
		}
	}
	return true
}

// checkCommon: method, rtcommVer and the shape of fields any method may carry.
func (c *checker) checkCommon() {
	m := c.msg
	switch {
	case c.bad["method"]:
	case m.Method == "":
		c.add("FMT-002", "method", absent)
	case !m.Method.Known():
		c.add("FMT-002", "a v1.0.0 method", quote(string(m.Method)))
	}
	if !c.bad["rtcommVer"] && m.RtcommVer != Version && !c.clientVersion() {
		actual := absent
		if m.RtcommVer != "" {
			actual = quote(m.RtcommVer)
		}
		c.add("FMT-003", "rtcommVer "+quote(Version), actual)
	}
	if m.FromTopic != "" {
		c.checkTopicName("fromTopic", m.FromTopic)
	}
	if m.Protocols != nil && !c.bad["protocols"] {
		// [] is legal: rtcomm.js sends it from an endpoint configured with neither chat nor
		// webrtc (src/rtcomm/EndpointProvider/RtcommEndpoint.js constructor; MessageFactory.js
		// templates default protocols to []), and the spec sets no minimum.
		for _, p := range m.Protocols {
			if strings.TrimSpace(p) == "" {
				c.add("FMT-007", "protocols of non-empty names", quote(p))
			}
		}
	}
	if m.UserDefines != nil && m.UserDefines[0] != '[' {
		c.add("FMT-004", "userDefines of type array", jsonKind(m.UserDefines))
	}
	if len(m.Payload) > 0 {
		c.checkPayload()
	}
}

// ServiceLibVersion is the rtcommVer lib.rtcomm.node puts on 3PCC_PLACE_CALL
// (lib/3pcc.js ThirdPartyCC.startCall); no other official message carries it.
const ServiceLibVersion = "v0.0.1"

// clientVersion reports whether the client profile takes this message's rtcommVer anyway:
// lib.rtcomm.node's lib/3pcc.js ThirdPartyCC.startCall sends 3PCC_PLACE_CALL with
// rtcommVer "v0.0.1".
func (c *checker) clientVersion() bool {
	return c.profile == ProfileClient && c.msg.Method == Method3PCCPlaceCall && c.msg.RtcommVer == ServiceLibVersion
}

// placeCallIDs are the 3PCC_PLACE_CALL fields lib.rtcomm.node fills with whatever the
// application passes to startCall(caller, callee, sessionID, transactionID).
var placeCallIDs = []string{"transID", "sessionID"}

// safeInteger is a JSON integer a JavaScript number holds exactly (at most 2^53).
var safeInteger = regexp.MustCompile(`^(0|[1-9][0-9]{0,15})$`)

// StringifyPlaceCallIDs returns payload with a 3PCC_PLACE_CALL's transID or sessionID
// given as a JSON integer rewritten as its decimal string, and any other payload
// unchanged. lib.rtcomm.node lib/3pcc.js ThirdPartyCC.startCall sends the values the
// application passes, and the library's own test (test/3pccTest.js) passes numbers:
// startCall("Jack Endpoint", "Jill Endpoint", 1000, 100). The library matches the
// answer by using transID as an object key, so "100" answers 100.
func StringifyPlaceCallIDs(payload []byte) []byte {
	if !bytes.Contains(payload, []byte(Method3PCCPlaceCall)) {
		return payload
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(payload, &obj) != nil || string(obj["method"]) != `"`+string(Method3PCCPlaceCall)+`"` {
		return payload
	}
	changed := false
	for _, k := range placeCallIDs {
		if v, ok := obj[k]; ok && safeInteger.Match(v) {
			obj[k] = json.RawMessage(`"` + string(v) + `"`)
			changed = true
		}
	}
	if !changed {
		return payload
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return payload
	}
	return out
}

// checkPayload: the webrtc and chat entries of a payload object.
func (c *checker) checkPayload() {
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(c.msg.Payload, &entries); err != nil {
		return // Decode saw an object; cannot happen, and FMT-004 would already say so
	}
	if raw, ok := entries[ProtoWebRTC]; ok && string(raw) != "null" {
		c.checkWebRTC(raw)
	}
	if raw, ok := entries[ProtoChat]; ok && string(raw) != "null" {
		var chat map[string]json.RawMessage
		if json.Unmarshal(raw, &chat) != nil {
			c.add("FMT-007", "payload.chat an object", jsonKind(raw))
		} else if msg, ok := chat["message"]; !ok {
			c.add("FMT-007", "payload.chat.message", absent)
		} else if msg[0] != '"' {
			c.add("FMT-007", "payload.chat.message a string", jsonKind(msg))
		}
	}
}

func (c *checker) checkWebRTC(raw json.RawMessage) {
	var w map[string]json.RawMessage
	if json.Unmarshal(raw, &w) != nil {
		c.add("FMT-007", "payload.webrtc an object", jsonKind(raw))
		return
	}
	var typ string
	if t, ok := w["type"]; !ok {
		c.add("FMT-007", "payload.webrtc.type", absent)
		return
	} else if json.Unmarshal(t, &typ) != nil {
		c.add("FMT-007", "payload.webrtc.type a string", jsonKind(t))
		return
	}
	switch typ {
	case SDPOffer, SDPAnswer, SDPPranswer:
		var sdp string
		if s, ok := w["sdp"]; !ok || string(s) == "null" {
			c.add("FMT-007", "payload.webrtc.sdp with type "+typ, absent)
		} else if json.Unmarshal(s, &sdp) != nil {
			c.add("FMT-007", "payload.webrtc.sdp a string", jsonKind(s))
		} else if strings.TrimSpace(sdp) == "" && typ != SDPPranswer {
			// A pranswer's sdp may be "": rtcomm.js's callee sends {type: pranswer, sdp: ""}
			// at once (src/rtcomm/EndpointProvider/WebRTCConnection.js _processMessage
			// "offer" and _gotAnswer) and skips an empty one on receipt.
			c.add("FMT-007", "payload.webrtc.sdp non-empty with type "+typ, `""`)
		}
	case ICECandType:
		c.checkCandidate(w["candidate"])
	case StreamChange:
	default:
		c.add("FMT-007", "payload.webrtc.type offer, answer, pranswer, icecandidate or stream", quote(typ))
	}
}

// checkCandidate: an RTCIceCandidateInit; "" is end-of-candidates and needs no media line.
func (c *checker) checkCandidate(raw json.RawMessage) {
	if raw == nil || string(raw) == "null" {
		c.add("ICE-001", "payload.webrtc.candidate", absent)
		return
	}
	var cand map[string]json.RawMessage
	if json.Unmarshal(raw, &cand) != nil {
		c.add("ICE-001", "payload.webrtc.candidate an object", jsonKind(raw))
		return
	}
	var line string
	if l, ok := cand["candidate"]; !ok {
		c.add("ICE-001", "candidate.candidate", absent)
		return
	} else if json.Unmarshal(l, &line) != nil {
		c.add("ICE-001", "candidate.candidate a string", jsonKind(l))
		return
	}
	var mid *string
	if v, ok := cand["sdpMid"]; ok && json.Unmarshal(v, &mid) != nil {
		c.add("ICE-001", "candidate.sdpMid a string", jsonKind(v))
		return
	}
	var idx *int
	if v, ok := cand["sdpMLineIndex"]; ok && (json.Unmarshal(v, &idx) != nil || (idx != nil && *idx < 0)) {
		c.add("ICE-001", "candidate.sdpMLineIndex a non-negative integer", jsonKind(v))
		return
	}
	if line == "" {
		return
	}
	// The browser's form (rtcomm.js sends evt.candidate as is: WebRTCConnection.js
	// createPeerConnection onicecandidate) or the spec's example, an SDP attribute line.
	if !strings.HasPrefix(line, "candidate:") && !strings.HasPrefix(line, "a=candidate:") {
		c.add("ICE-001", `candidate.candidate starting "candidate:" or "a=candidate:"`, quote(line))
	}
	if mid == nil && idx == nil {
		c.add("ICE-001", "candidate.sdpMid or candidate.sdpMLineIndex", absent)
	}
}

// checkSender applies the identity rule to topics under the topic path: the last level is
// the sender's ID below a receiver topic. Event topics follow their own rule, and the client
// profile accepts 3PCC_PLACE_CALL at the call-control topic exactly (lib.rtcomm.node).
func (c *checker) checkSender() {
	if c.rest == nil || c.rest[0] == "event" {
		return
	}
	if c.msg.Method == Method3PCCPlaceCall && c.topic == c.topics.CallControl() && c.profile == ProfileClient {
		return
	}
	if len(c.rest) < 2 {
		c.add("ID-004", "<receiver topic>/<senderID>", "no sender level in "+quote(c.topic))
		return
	}
	c.checkID(c.rest[len(c.rest)-1], "sender ID (last topic level)")
}

// checkID reports an invalid endpoint ID under the identity requirement it breaks.
func (c *checker) checkID(id, what string) {
	err := ValidateEndpointID(id)
	if err == nil || errors.Is(err, ErrIDTooLong) {
		// No source bounds an ID's length (MaxEndpointIDLen is the reference's own limit);
		// MQTT's 65535-byte topic limit is enforced on the wire already.
		return
	}
	req := "ID-001"
	switch {
	case errors.Is(err, ErrIDSlash):
		req = "ID-002"
	case errors.Is(err, ErrIDWildcard):
		req = "ID-003"
	}
	c.add(req, what+" a valid endpoint ID", quote(id))
}

// checkTopicName: a topic named in a field must be publishable.
func (c *checker) checkTopicName(field, topic string) {
	switch {
	case topic == "":
		c.add("FMT-006", field+" a non-empty topic", `""`)
	case strings.ContainsAny(topic, "+#\x00"):
		c.add("FMT-006", field+" a topic without '+', '#' or NUL", quote(topic))
	case len(topic) > 65535:
		c.add("FMT-006", field+" a topic of at most 65535 bytes", fmt.Sprintf("%d bytes", len(topic)))
	}
}

// require reports a missing (empty) string field, unless its type was already reported.
func (c *checker) require(id, field, val string) {
	if val == "" && !c.bad[field] {
		c.add(id, field, absent)
	}
}

// requireRaw reports a missing object field.
func (c *checker) requireRaw(id, field string, val json.RawMessage) {
	if len(val) == 0 && !c.bad[field] {
		c.add(id, field, absent)
	}
}

func (c *checker) checkDocument() {
	m := c.msg
	if !c.onPresenceTopic() {
		c.add("REG-001", "DOCUMENT at "+c.topics.Sphere("<endpointID>")+" or "+c.topics.Sphere("<group>/<endpointID>"), quote(c.topic))
	}
	switch {
	case c.bad["type"]:
	case m.Type == "":
		c.add("REG-001", "type", absent)
	case m.Type != DocEndpoint && m.Type != DocService:
		c.add("REG-001", "type ENDPOINT or SERVICE", quote(m.Type))
	}
	c.require("REG-001", "appContext", m.AppContext)
	// The address field is where the written spec and rtcomm.js differ (PROTOCOL.md).
	if m.Topic == "" && !c.bad["topic"] {
		actual := absent
		if m.AddressTopic != "" {
			actual = "only addressTopic"
		}
		c.add("REG-003", "address in topic", actual)
	}
	if m.AddressTopic == "" && !c.bad["addressTopic"] {
		actual := absent
		if m.Topic != "" {
			actual = "only topic"
		}
		c.add("REG-004", "address in addressTopic", actual)
	}
	if m.Topic != "" {
		c.checkTopicName("topic", m.Topic)
	}
	if m.AddressTopic != "" {
		c.checkTopicName("addressTopic", m.AddressTopic)
	}
}

func (c *checker) checkServiceQuery() {
	if len(c.rest) != 2 || c.rest[0] != "management" {
		c.add("SQ-001", "SERVICE_QUERY at "+c.topics.Management()+"/<senderID>", quote(c.topic))
	}
	c.require("SQ-001", "transID", c.msg.TransID)
	c.require("SQ-001", "fromTopic", c.msg.FromTopic)
}

// responseOrigs are the methods a RESPONSE may answer.
var responseOrigs = []Method{MethodServiceQuery, MethodStartSession, MethodRefer, Method3PCCPlaceCall}

func (c *checker) checkResponse() {
	m := c.msg
	switch {
	case c.bad["orig"]:
	case m.Orig == "":
		c.add("FMT-005", "orig", absent)
	case !slices.Contains(responseOrigs, m.Orig):
		c.add("FMT-005", "orig SERVICE_QUERY, START_SESSION, REFER or 3PCC_PLACE_CALL", quote(string(m.Orig)))
	}
	c.require("FMT-005", "transID", m.TransID)
	switch {
	case c.bad["result"]:
	case m.Result == "":
		c.add("FMT-005", "result", absent)
	case m.Result != ResultSuccess && m.Result != ResultFailure:
		c.add("FMT-005", "result SUCCESS or FAILURE", quote(m.Result))
	case m.Result == ResultFailure:
		c.require("FMT-005", "reason", m.Reason)
	}
	switch m.Orig {
	case MethodServiceQuery:
		if m.Result == ResultFailure {
			c.add("SQ-004", "result SUCCESS", quote(m.Result))
		}
		if m.Result == ResultSuccess {
			c.checkServices()
		}
	case MethodStartSession:
		if m.Result == ResultSuccess {
			// No payload requirement: the spec's RESPONSE "May include SDP information", and
			// rtcomm.js answers a chat-only call with none (SigSession.js respond()).
			c.require("SESS-010", "sigSessID", m.SigSessID)
			c.requireProtocols("SESS-010")
			// rtcomm.js's SigSession.js respond() builds the RESPONSE with createResponse,
			// which leaves fromTopic null; only the written spec's RESPONSE table asks for it
			// ("where subsequent messages ... should be published": none follow a FAILURE).
			c.require("SESS-014", "fromTopic", m.FromTopic)
		}
	}
}

func (c *checker) requireProtocols(id string) {
	if c.msg.Protocols == nil && !c.bad["protocols"] {
		c.add(id, "protocols", absent)
	}
}

// checkServices: the services object of a successful SERVICE_QUERY answer.
func (c *checker) checkServices() {
	m := c.msg
	if c.bad["services"] {
		return
	}
	conn, ok := m.Services[ServiceConnector]
	if !ok {
		c.add("SQ-005", "services."+ServiceConnector, absent)
	} else {
		if conn.Topic == "" {
			c.add("SQ-005", ServiceConnector+".topic", absent)
		}
		for _, f := range [][2]string{{"sphereTopic", conn.SphereTopic}, {"iceURL", conn.IceURL},
			{"eventMonitoringTopic", conn.EventMonitoringTopic}} {
			if f[1] == "" {
				c.add("SQ-006", ServiceConnector+"."+f[0], absent)
			}
		}
	}
	names := make([]string, 0, len(m.Services))
	for name := range m.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := m.Services[name]
		for _, f := range [][2]string{{"topic", s.Topic}, {"sphereTopic", s.SphereTopic},
			{"eventMonitoringTopic", s.EventMonitoringTopic}} {
			if f[1] != "" {
				c.checkTopicName(name+"."+f[0], f[1])
			}
		}
		if s.IceURL != "" {
			c.checkIceURL(name, s.IceURL)
		}
		if s.Schemes != nil {
			if s.Topic == "" {
				c.add("SQ-008", name+".topic with schemes", absent)
			}
			for _, sc := range s.Schemes {
				if sc == "" || strings.Contains(sc, ":") {
					c.add("SQ-008", name+".schemes of names without ':'", quote(sc))
				}
			}
		}
		if name == ServiceCallControl && s.Topic == "" {
			c.add("REF-007", ServiceCallControl+".topic", absent)
		}
		if name == ServiceCallQueue {
			for i, q := range s.Queues {
				if ValidateEndpointID(q.EndpointID) != nil {
					c.add("QUE-001", fmt.Sprintf("queues[%d].endpointID a valid endpoint ID", i), quote(q.EndpointID))
				}
				if q.Topic == "" {
					c.add("QUE-001", fmt.Sprintf("queues[%d].topic", i), absent)
				} else if err := ValidateFilter(q.Topic); err != nil {
					// An agent subscribes to it as given (rtcomm.js Queues.js, joinQueue).
					c.add("QUE-001", fmt.Sprintf("queues[%d].topic a valid subscription filter", i), quote(q.Topic)+": "+err.Error())
				}
			}
		}
	}
}

// iceSchemes are the URL schemes of RFC 7064 and RFC 7065.
var iceSchemes = []string{"stun", "stuns", "turn", "turns"}

// checkIceURL: comma-separated stun:/turn: URLs (RFC 7064, RFC 7065, or the spec example's
// turn:<user>@<host>:<port>:credential:<password>).
func (c *checker) checkIceURL(service, list string) {
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if !validIceURL(u) && !clientTurnURL(u) {
			c.add("SQ-007", service+".iceURL entries that are stun:, stuns:, turn: or turns: URLs", quote(u))
			continue
		}
		// rtcomm.js src/rtcomm/EndpointProvider/WebRTCConnection.js setIceServers: a URL
		// starting "turn:" goes to buildTURNobject, which throws unless it is
		// turn:<user>@<host>:<port>:credential:<password>.
		if strings.HasPrefix(u, "turn:") && !clientTurnURL(u) {
			c.add("SQ-009", service+".iceURL turn: entries written turn:<user>@<host>:<port>:credential:<password>", quote(u))
		}
	}
}

// CheckIceURL checks an iceURL list on its own (SQ-007, and SQ-009 in the client profile),
// as the validator does inside a SERVICE_QUERY answer.
func CheckIceURL(list string, p Profile) []Violation {
	c := &checker{profile: ProfileStrict}
	if p == ProfileClient {
		c.profile = ProfileClient
	}
	if strings.TrimSpace(list) != "" {
		c.checkIceURL(ServiceConnector, list)
	}
	return c.out
}

// clientTurnRE is the TURN URL form rtcomm.js parses (WebRTCConnection.js buildTURNobject).
var clientTurnRE = regexp.MustCompile(`^turn:(\S+)@(\S+:\d+):credential:(.+)$`)

// clientTurnURL reports whether u is a TURN URL rtcomm.js can turn into an ICE server.
func clientTurnURL(u string) bool { return clientTurnRE.MatchString(u) }

// validIceURL reports whether u is scheme:host[:port][?transport=udp|tcp].
func validIceURL(u string) bool {
	scheme, rest, ok := strings.Cut(u, ":")
	scheme = strings.ToLower(scheme)
	if !ok || !slices.Contains(iceSchemes, scheme) {
		return false
	}
	hostport, query, hasQuery := strings.Cut(rest, "?")
	if hasQuery && (!strings.HasPrefix(scheme, "turn") || (query != "transport=udp" && query != "transport=tcp")) {
		return false
	}
	if at := strings.LastIndexByte(hostport, '@'); at >= 0 {
		hostport = hostport[at+1:]
	}
	var host, port string
	hasPort := false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 || net.ParseIP(hostport[1:end]) == nil {
			return false
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port, hasPort = port[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(hostport, ":")
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
				return false
			}
		}
	}
	if host == "" {
		return false
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return false
		}
	}
	return true
}

func (c *checker) checkStartSession() {
	m := c.msg
	c.require("SESS-001", "transID", m.TransID)
	c.require("SESS-001", "sigSessID", m.SigSessID)
	c.require("SESS-001", "fromTopic", m.FromTopic)
	c.requireProtocols("SESS-001")
	toConnector := len(c.rest) == 2 && c.rest[0] == "connector"
	if toConnector {
		c.require("SESS-001", "toEndpointID", m.ToEndpointID)
	}
	if m.ToEndpointID != "" {
		c.checkID(m.ToEndpointID, "toEndpointID")
	}
}

func (c *checker) checkPranswer() {
	m := c.msg
	c.require("SESS-010", "transID", m.TransID)
	c.require("SESS-010", "sigSessID", m.SigSessID)
	c.require("SESS-010", "fromTopic", m.FromTopic)
	c.requireProtocols("SESS-010")
	if m.HoldTimeout != nil && *m.HoldTimeout < 0 {
		c.add("SESS-010", "holdTimeout >= 0", fmt.Sprint(*m.HoldTimeout))
	}
	if m.QueuePosition != nil && *m.QueuePosition < 0 {
		c.add("SESS-010", "queuePosition >= 0", fmt.Sprint(*m.QueuePosition))
	}
}

func (c *checker) checkRefer() {
	m := c.msg
	c.require("REF-003", "transID", m.TransID)
	c.require("REF-003", "fromTopic", m.FromTopic)
	c.require("REF-003", "toEndpointID", m.ToEndpointID)
	c.requireRaw("REF-003", "details", m.Details)
	if m.ToEndpointID != "" {
		c.checkID(m.ToEndpointID, "toEndpointID")
	}
	if len(m.Details) > 0 {
		var d map[string]json.RawMessage
		_ = json.Unmarshal(m.Details, &d) // Decode checked it is an object
		for _, key := range []string{"sessionID", "toEndpointID"} {
			var s string
			if v, ok := d[key]; !ok || json.Unmarshal(v, &s) != nil || s == "" {
				c.add("REF-004", "details."+key+" a non-empty string", rawOrAbsent(v))
			}
		}
	}
	if m.FromTopic != "" {
		if _, under := c.topics.Under(m.FromTopic); !under {
			c.add("REF-004", "fromTopic under "+quote(c.topics.Path), quote(m.FromTopic))
		}
	}
}

func rawOrAbsent(v json.RawMessage) string {
	if v == nil {
		return absent
	}
	return jsonKind(v)
}

func (c *checker) checkPlaceCall() {
	m := c.msg
	c.require("REF-001", "transID", m.TransID)
	c.require("REF-001", "callerEndpoint", m.CallerEndpoint)
	c.require("REF-001", "calleeEndpoint", m.CalleeEndpoint)
	c.require("REF-001", "fromTopic", m.FromTopic)
	if m.CallerEndpoint != "" {
		c.checkID(m.CallerEndpoint, "callerEndpoint")
	}
	if m.CalleeEndpoint != "" {
		c.checkID(m.CalleeEndpoint, "calleeEndpoint")
	}
}

// eventActions are the session actions of RTCOMM_EVENT_FIRED topics.
var eventActions = []string{EventStarted, EventModified, EventStopped, EventFailed}

func (c *checker) checkEvent() {
	m := c.msg
	c.require("EVT-002", "timestamp", m.Timestamp)
	c.require("EVT-002", "appContext", m.AppContext)
	r := c.rest
	if len(r) != 5 || r[0] != "event" || r[1] != "session" {
		c.add("EVT-002", "event at "+c.topics.SessionEvent("<action>", "<from>", "<to>"), quote(c.topic))
		return
	}
	if !slices.Contains(eventActions, r[2]) {
		c.add("EVT-002", "action started, modified, stopped or failed", quote(r[2]))
	}
	for i, what := range []string{"from", "to"} {
		if id := r[3+i]; ValidateEndpointID(id) != nil {
			c.add("EVT-002", what+" level a valid endpoint ID", quote(id))
		}
	}
	if r[2] == EventFailed {
		if m.Reason == "" && !c.bad["reason"] {
			c.add("EVT-001", "reason with action failed", absent)
		}
	}
}
