package spec

import (
	"slices"
	"strings"
)

// CatalogVersion changes whenever an entry is added, removed or reworded; IDs never change meaning.
const CatalogVersion = "1.3.0"

// Level is the RFC 2119 strength of a requirement.
type Level string

// Requirement levels.
const (
	Must   Level = "MUST"
	Should Level = "SHOULD"
	May    Level = "MAY"
)

// Profile names the reading of the protocol a target is held to.
type Profile string

// Profiles: the written spec, or what the official clients (rtcomm.js, lib.rtcomm.node) need.
const (
	ProfileStrict Profile = "strict"
	ProfileClient Profile = "client"
)

// Subjects: who must do what a requirement says. A Requirement's Subject is one of
// these or several joined by commas (e.g. "connector,endpoint" for message formats).
const (
	SubjectBroker    = "broker"
	SubjectConnector = "connector"
	SubjectEndpoint  = "endpoint"
)

// Feature is an optional capability a target may claim. Requirements that belong to an
// unclaimed feature get the verdict "not claimed", never "fail". The catalog is the only
// list of features: declarations, scenarios and verdicts all use these.
type Feature string

// Optional features a target must claim before the requirements that need them apply.
const (
	FeatureWebSocket Feature = "websocket"            // MQTT over WebSocket at /mqtt
	FeatureSecure    Feature = "secure"               // authentication + identity ACLs
	FeatureQueues    Feature = "queues"               // call queues over shared subscriptions
	Feature3PCC      Feature = "3pcc"                 // REFER and 3PCC_PLACE_CALL
	FeatureEvents    Feature = "events"               // RTCOMM_EVENT_FIRED
	FeatureSchemes   Feature = "schemes"              // scheme routing (sip: -> gateway topic)
	FeatureShared    Feature = "shared-subscriptions" // broker: $share/<group>/<filter>
)

// Features lists every feature a declaration may claim.
func Features() []Feature {
	return []Feature{FeatureWebSocket, FeatureSecure, FeatureQueues, Feature3PCC, FeatureEvents, FeatureSchemes, FeatureShared}
}

// Requirement is one checkable statement of the protocol, with a stable ID.
type Requirement struct {
	ID     string // stable, e.g. "REG-003"; prefix names the area
	Area   string // e.g. "registration"
	Level  Level  // MUST, SHOULD or MAY
	Text   string // one sentence in our words
	Source string // where it comes from: file and section, or file and function, in a public repo
	// Sentence is the written spec's sentence (or table row) the requirement reads, quoted
	// closely; every strict-only requirement has one, so a strict verdict can name it.
	Sentence   string
	Profiles   []Profile // the profiles that hold a target to it
	Subject    string    // who must do it: broker, connector, endpoint (comma-joined when several)
	Feature    Feature   // "" for core; otherwise the optional feature that must be claimed
	Untestable string    // non-empty: why it cannot be checked automatically
}

// InProfile reports whether profile p holds targets to r.
func (r Requirement) InProfile(p Profile) bool { return slices.Contains(r.Profiles, p) }

// AppliesTo reports whether subject (broker, connector, endpoint) must meet r.
func (r Requirement) AppliesTo(subject string) bool {
	return slices.Contains(strings.Split(r.Subject, ","), subject)
}

// areas maps ID prefixes to area names, in the order documents list them.
var areas = []struct{ prefix, name string }{
	{"BRK", "broker"},
	{"REG", "registration"},
	{"SQ", "service-query"},
	{"SESS", "sessions"},
	{"ICE", "ice"},
	{"MSG", "messages"},
	{"REF", "referral"},
	{"EVT", "events"},
	{"QUE", "queues"},
	{"SCH", "schemes"},
	{"ID", "identity"},
	{"ROB", "robustness"},
	{"FMT", "format"},
}

// Areas returns the area names in document order (broker first, format last).
func Areas() []string {
	out := make([]string, len(areas))
	for i, a := range areas {
		out[i] = a.name
	}
	return out
}

// AreaPrefix returns the ID prefix of an area ("registration" -> "REG"), or "" if unknown.
func AreaPrefix(area string) string {
	for _, a := range areas {
		if a.name == area {
			return a.prefix
		}
	}
	return ""
}

var (
	both       = []Profile{ProfileStrict, ProfileClient}
	strictOnly = []Profile{ProfileStrict}
	clientOnly = []Profile{ProfileClient}
)

// Sources. Every requirement names a file and a section (written specs) or a file and a
// function (the official clients) in a public repository. The web client is
// WASdev/lib.rtcomm.clientjs (rtcomm.js 1.0.x, dist/rtcomm.js built from src/rtcomm/**);
// lib.rtcomm.node (WASdev/lib.rtcomm.node) only does 3PCC and event monitoring, so no
// endpoint behaviour is attributed to it.
const (
	srcBroker  = "PROTOCOL.md, what a broker must support"
	srcSig     = "rtcomm.signaling.proto.spec.md v1.0.0 (WASdev/lib.rtcomm.clientjs), "
	srcSvc     = "rtcomm.service.proto.spec.md (WASdev/lib.rtcomm.node), "
	srcJS      = "rtcomm.js (WASdev/lib.rtcomm.clientjs) "
	srcNode    = "lib.rtcomm.node (WASdev/lib.rtcomm.node) "
	srcSvcSpec = srcSvc + "Third-Party Call Control"
	fmtSenders = SubjectConnector + "," + SubjectEndpoint
)

// catalog is the source of truth; Catalog hands out copies.
var catalog = []Requirement{
	// Broker capabilities.
	{ID: "BRK-001", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "A retained PUBLISH reaches every later matching subscriber, a newer one replaces it, and an empty retained PUBLISH clears it.",
		Source: "MQTT 3.1.1 §3.3.1.3; " + srcSig + "Endpoint Registration (a retained DOCUMENT, cleared by an empty LWT)"},
	{ID: "BRK-002", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "On an abrupt disconnect the broker publishes the client's Last Will, retained when the will says so; a clean DISCONNECT discards the will.",
		Source: "MQTT 3.1.1 §3.1.2.5-§3.1.2.7; " + srcJS + "src/rtcomm/connection/MqttConnection.js connect (retained will on the presence topic)"},
	{ID: "BRK-003", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "A `#` filter matches its parent level and every level below; `+` matches exactly one level.",
		Source: "MQTT 3.1.1 §4.7.1.2, §4.7.1.3; " + srcSvc + "Event Monitoring (wildcard filters on the event topic tree)"},
	{ID: "BRK-004", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "Topic levels containing `@ : . - _` and spaces, and an empty first level (leading `/`), are accepted and matched literally.",
		Source: "MQTT 3.1.1 §4.7.1.1, §4.7.3; " + srcSig + "Endpoint ID Definition (\"Danko Jones\", \"sip:dankojones@xyz.com\", topics /rtcomm/...)"},
	{ID: "BRK-005", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "Payloads of at least 64 KB (SDP with many codecs and candidates) are delivered intact.",
		Source: srcBroker},
	{ID: "BRK-006", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "Messages one client publishes at one QoS reach each subscriber in publish order.",
		Source: "MQTT 3.1.1 §4.6; " + srcBroker},
	{ID: "BRK-007", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "PUBLISH and SUBSCRIBE work at QoS 0 and at QoS 1 (acknowledged with PUBACK).",
		Source: "MQTT 3.1.1 §4.3.1, §4.3.2; " + srcBroker},
	{ID: "BRK-008", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureWebSocket,
		Text:   "A WebSocket listener serves MQTT at path `/mqtt` and accepts and echoes the subprotocols `mqtt` and `mqttv3.1` (browsers abort without the echo).",
		Source: srcJS + "src/rtcomm/connection/MqttConnection.js createMqttClient (Paho JS 1.0.x: ws://host:port/mqtt, mqttv3.1); MQTT 3.1.1 §6"},
	{ID: "BRK-009", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "The broker accepts clean-session clients speaking MQTT 3.1 (`MQIsdp`, level 3) and 3.1.1 (`MQTT`, level 4) with 23-character client IDs and a 60 s keepalive.",
		Source: srcJS + "src/rtcomm/connection/MqttConnection.js connect (mqttVersion 3) and generateClientID; MQTT 3.1.1 §3.1.2.2, §3.1.3.1"},
	{ID: "BRK-010", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureShared,
		Text:   "A shared subscription (`$share/<group>/<filter>`) delivers each message to exactly one member of the group.",
		Source: "MQTT 5.0 §4.8.2; " + srcJS + "src/rtcomm/EndpointProvider/EndpointProvider.js joinQueue (\"A Session Queue is a subscription to a Shared Topic\")"},

	// Registration.
	{ID: "REG-001", Area: "registration", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint registers by publishing a retained DOCUMENT at `<path>sphere/<endpointID>`, or `<path>sphere/<group>/<endpointID>` in a presence group, with `type` ENDPOINT or SERVICE and an `appContext`.",
		Source:   srcSig + "Endpoint Registration (DOCUMENT table); " + srcJS + "src/rtcomm/connection/EndpointConnection.js getMyPresenceTopic, createPresenceDocument",
		Sentence: "This message is an MQTT Retained message that is consumed by the service which stores this as registration information. (DOCUMENT table: type ENDPOINT or SERVICE; appContext)"},
	{ID: "REG-002", Area: "registration", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint connects with an empty retained Last Will on its own presence topic, and publishes an empty payload nowhere else.",
		Source:   srcSig + "Endpoint Registration and Last Will and Testament Message; " + srcJS + "src/rtcomm/connection/EndpointConnection.js connect, getLwtMessage",
		Sentence: "When it goes away it sends an empty LWT message to the topic it published this DOCUMENT which clears the retained message."},
	{ID: "REG-003", Area: "registration", Level: Must, Profiles: strictOnly, Subject: SubjectEndpoint,
		Text:     "A DOCUMENT names the endpoint's address topic in the field `topic`.",
		Source:   srcSig + "Endpoint Registration (DOCUMENT table); rtcomm.js sends addressTopic instead (see REG-004)",
		Sentence: "DOCUMENT table: \"topic | topic that the endpoint is subscribed to. Typically the same as the from topic.\""},
	{ID: "REG-004", Area: "registration", Level: Must, Profiles: clientOnly, Subject: SubjectEndpoint,
		Text:   "A DOCUMENT names the endpoint's address topic in the field `addressTopic`.",
		Source: srcJS + "src/rtcomm/connection/EndpointConnection.js createPresenceDocument; src/rtcomm/EndpointProvider/PresenceMonitor.js PresenceNode.addPresence (reads addressTopic)"},
	{ID: "REG-005", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The connector takes a registrant's address from `addressTopic` or, when that is absent, from `topic`.",
		Source:   srcSig + "Endpoint Registration (topic); " + srcJS + "src/rtcomm/connection/EndpointConnection.js createPresenceDocument (addressTopic)",
		Sentence: "DOCUMENT table: \"topic | topic that the endpoint is subscribed to.\""},
	{ID: "REG-006", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The connector keeps one address per (endpoint ID, appContext): a newer DOCUMENT for the pair replaces the older one.",
		Source:   srcSig + "Endpoint Registration (note on appContext)",
		Sentence: "There can only be one registered topic name associated with a single endpointID/appContext."},
	{ID: "REG-007", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "When a registration is taken over from a different address, the connector sends DOCUMENT_REPLACED to the older registrant's address topic.",
		Source:   srcJS + "src/rtcomm/connection/EndpointConnection.js processMessage (DOCUMENT_REPLACED) and src/rtcomm/connection/MessageFactory.js; " + srcSig + "Endpoint Registration (one topic per endpointID/appContext)",
		Sentence: "There can only be one registered topic name associated with a single endpointID/appContext."},
	{ID: "REG-008", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "An empty retained message on a presence topic (Last Will or unregister) removes that registration, and the connector ends every session of that endpoint.",
		Source:   srcSig + "Endpoint Registration and Last Will and Testament Message",
		Sentence: "Services receiving the LWT messages clean up any related resources such as the registration or any active sessions related to the endpoint."},
	{ID: "REG-009", Area: "registration", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "The empty retained message a replaced client publishes must not remove the newcomer's registration on the same presence topic.",
		Source: srcJS + "src/rtcomm/EndpointProvider/EndpointProvider.js createEndpointConnection (document_replaced -> reset -> destroy after 500 ms) and src/rtcomm/connection/EndpointConnection.js disconnect (publishes the empty retained message)"},
	{ID: "REG-010", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "Registrations of one endpoint ID under different appContexts are kept, replaced and routed separately.",
		Source:   srcSig + "Endpoint Registration (note on appContext)",
		Sentence: "appContext is used to differentiate between multiple applications a userid may be registered with on the same service."},

	// Service query.
	{ID: "SQ-001", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint publishes SERVICE_QUERY, with `transID` and `fromTopic`, at `<path>management/<senderID>`.",
		Source:   srcSig + "Service query (SERVICE_QUERY table); " + srcJS + "src/rtcomm/connection/EndpointConnection.js serviceQuery, _query",
		Sentence: "SERVICE_QUERY table: transID, fromTopic \"topic where the response must be published to\"."},
	{ID: "SQ-002", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector answers each SERVICE_QUERY exactly once, within 5 s.",
		Source: srcJS + "src/rtcomm/connection/EndpointConnection.js processMessage (an unmatched answer is MULTIPLE_SERVERS) and Registry.addTimer (5 s); " + srcSig + "Service query"},
	{ID: "SQ-003", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The answer is a RESPONSE with `orig: SERVICE_QUERY` and the query's `transID`, published under the query's `fromTopic`.",
		Source:   srcSig + "Service query (response table); " + srcJS + "src/rtcomm/connection/Transaction.js finish",
		Sentence: "SERVICE_QUERY table: \"fromTopic | topic where the response must be published to\"; response table: orig SERVICE_QUERY, transID."},
	{ID: "SQ-004", Area: "service-query", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "The answer to a SERVICE_QUERY has `result: SUCCESS`.",
		Source: srcJS + "src/rtcomm/EndpointProvider/EndpointProvider.js init (a failed query with requireRtcommServer fails init)"},
	{ID: "SQ-005", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A successful answer's `services` contains RTCOMM_CONNECTOR_SERVICE with a `topic`.",
		Source:   srcSig + "Service query (note on services); " + srcJS + "src/rtcomm/connection/EndpointConnection.js parseServices (throws without it)",
		Sentence: "If the server responds, it will respond with at least one object that is similar to the following: \"RTCOMM_CONNECTOR_SERVICE\": {\"topic\": ...}"},
	{ID: "SQ-006", Area: "service-query", Level: Should, Profiles: strictOnly, Subject: SubjectConnector,
		Text:     "RTCOMM_CONNECTOR_SERVICE also carries `sphereTopic`, `iceURL` and `eventMonitoringTopic`.",
		Source:   srcSig + "Service query (note on services: \"similar to the following\", an example, hence SHOULD)",
		Sentence: "If the server responds, it will respond with at least one object that is similar to the following: {topic, sphereTopic, iceURL, eventMonitoringTopic}"},
	{ID: "SQ-007", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A non-empty `iceURL` is a comma-separated list of well-formed `stun:`, `stuns:`, `turn:` or `turns:` URLs (RFC 7064/7065, or the spec's `turn:<user>@<host>:<port>:credential:<password>`).",
		Source:   srcSig + "Service query (iceURL example, v0.3.0 and docs/); RFC 7064, RFC 7065",
		Sentence: "services example: \"iceURL\":\"stun:stun.juberti.com:3478,turn:test@stun.juberti.com:3478:credential:test\""},
	{ID: "SQ-008", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureSchemes,
		Text:     "An advertised service that carries `schemes` (non-empty names without `:`) also carries `topic`.",
		Source:   srcSig + "Service query (note on schemes); " + srcJS + "src/rtcomm/connection/ModuleGlobals.js routeLookup",
		Sentence: "If a returned service contains a schemes property then their must be a topic property as well"},
	{ID: "SQ-009", Area: "service-query", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "Every `turn:` entry of `iceURL` is written `turn:<user>@<host>:<port>:credential:<password>` (rtcomm.js cannot parse any other TURN URL).",
		Source: srcJS + "src/rtcomm/EndpointProvider/WebRTCConnection.js setIceServers, buildTURNobject (a TURN URL without user, port and credential throws)"},

	// Sessions.
	{ID: "SESS-001", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "START_SESSION carries `transID`, `sigSessID`, `fromTopic` and `protocols` (its `payload` usually holds the offer), and `toEndpointID` when sent to the connector.",
		Source:   srcSig + "Signaling for peer to peer sessions (START_SESSION table); " + srcJS + "src/rtcomm/connection/SigSession.js start, createMessage",
		Sentence: "START_SESSION table: protocols, transID, fromTopic \"topic where the response must be published to\", toEndpointID, sigSessID, payload."},
	{ID: "SESS-002", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The connector forwards START_SESSION to the callee's registered address at a topic ending in `/<callerID>`, with `transID`, `sigSessID`, `payload` and `protocols` unchanged.",
		Source:   srcSig + "Signaling for peer to peer sessions and Identity Propogation; " + srcJS + "src/rtcomm/connection/MqttConnection.js convertMessage (sender = last topic level)",
		Sentence: "If this message is sent to a Rtcomm connector service, the service looks up the toEndpointID in the registry, and forwards it to the destination endpoint."},
	{ID: "SESS-003", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A START_SESSION to an unregistered callee is answered to the caller with RESPONSE FAILURE and a reason.",
		Source:   srcSig + "Signaling for peer to peer sessions (RESPONSE table: result, reason)",
		Sentence: "RESPONSE table: \"result | result of operation e.g. SUCCESS or FAILURE\"; \"reason | Optionally included if FAILURE is the result.\""},
	{ID: "SESS-004", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The callee's RESPONSE, answer or rejection, reaches the caller at a topic ending in `/<calleeID>` with `result`, `transID`, `sigSessID` and `payload` unchanged.",
		Source:   srcSig + "Signaling for peer to peer sessions and Identity Propogation; " + srcJS + "src/rtcomm/connection/SigSession.js start (session_started takes the answerer from the topic)",
		Sentence: "The callee endpoint will eventually respond to the START_SESSION"},
	{ID: "SESS-005", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A PRANSWER reaches the caller with `holdTimeout` and `queuePosition` unchanged.",
		Source:   srcSig + "Signaling for peer to peer sessions (PRANSWER table); " + srcJS + "src/rtcomm/connection/SigSession.js processMessage (PRANSWER)",
		Sentence: "PRANSWER table: \"holdTimeout | ... This tells the call originator how long to wait\"; \"queuePosition | ... where the call stands in the queue\"."},
	{ID: "SESS-006", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A connector that stays in the path rewrites `fromTopic` to its own topic on every message it relays.",
		Source:   srcSig + "Signaling for peer to peer sessions (fromTopic: where subsequent messages go); " + srcJS + "src/rtcomm/connection/SigSession.js processMessage (follows the latest fromTopic)",
		Sentence: "fromTopic | Client topic where subsequent messages related to this session should be published."},
	{ID: "SESS-007", Area: "sessions", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "A relaying connector never adds a `transID` to a message that had none (the receiver drops it).",
		Source: srcJS + "src/rtcomm/connection/EndpointConnection.js processMessage (a message with an unknown transID is dropped)"},
	{ID: "SESS-008", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "STOP_SESSION is routed by `sigSessID` to the other party and is never answered.",
		Source:   srcSig + "Signaling for peer to peer sessions (STOP_SESSION); " + srcJS + "src/rtcomm/connection/SigSession.js stop (no transID)",
		Sentence: "Note: no response is sent after a stop session."},
	{ID: "SESS-009", Area: "sessions", Level: Should, Profiles: both, Subject: SubjectConnector,
		Text:   "A session not answered within the final timeout (30 s, or the PRANSWER's `holdTimeout`) is reaped: FAILURE to the caller, STOP_SESSION to the callee.",
		Source: srcJS + "src/rtcomm/connection/SigSession.js (initialTimeout 5 s, finalTimeout 30 s, holdTimeout); " + srcSig + "PRANSWER table (holdTimeout)"},
	{ID: "SESS-010", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "PRANSWER and a SUCCESS RESPONSE to START_SESSION carry `transID`, `sigSessID` and `protocols`, a PRANSWER also `fromTopic`, and `holdTimeout`/`queuePosition` are non-negative integers.",
		Source:   srcSig + "Signaling for peer to peer sessions (PRANSWER and RESPONSE tables); " + srcJS + "src/rtcomm/connection/SigSession.js pranswer, respond",
		Sentence: "PRANSWER table: protocols, transID, fromTopic, sigSessID; RESPONSE table: protocols, transID, sigSessID."},
	{ID: "SESS-011", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "STOP_SESSION carries `sigSessID`.",
		Source:   srcSig + "Signaling for peer to peer sessions (STOP_SESSION table); " + srcJS + "src/rtcomm/connection/SigSession.js stop",
		Sentence: "STOP_SESSION table: \"sigSessID | unique ID associated with this session.\""},
	{ID: "SESS-012", Area: "sessions", Level: Must, Profiles: strictOnly, Subject: SubjectEndpoint,
		Text:     "STOP_SESSION carries a `reason`.",
		Source:   srcSig + "Signaling for peer to peer sessions (STOP_SESSION table); rtcomm.js SigSession.stop sends none",
		Sentence: "STOP_SESSION table: \"reason | Reason session is ending. e.g. session terminated by endpoint\""},
	{ID: "SESS-013", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:       "Every session gets a fresh, globally unique `sigSessID`.",
		Source:     srcSig + "Signaling for peer to peer sessions (note on sigSessID)",
		Sentence:   "Note: sigSessID should be a UUID to insure it is globally unique.",
		Untestable: "global uniqueness cannot be shown by sampling; scenarios only see one run's sessions"},
	{ID: "SESS-014", Area: "sessions", Level: Must, Profiles: strictOnly, Subject: SubjectEndpoint,
		Text:     "A RESPONSE to START_SESSION carries `fromTopic`.",
		Source:   srcSig + "Signaling for peer to peer sessions (RESPONSE table); rtcomm.js SigSession.respond sends fromTopic null (the caller does not read it)",
		Sentence: "RESPONSE table: \"fromTopic | Client topic where subsequent messages related to this session should be published.\""},

	// ICE candidate trickle.
	{ID: "ICE-001", Area: "ice", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "A trickled candidate is a MESSAGE payload `webrtc: {type: icecandidate, candidate: {candidate, sdpMid, sdpMLineIndex}}` whose non-empty candidate string starts with `candidate:` (the browser's form) or `a=candidate:` (the spec's example).",
		Source:   srcSig + "Payload Definition (webrtc content) and the MESSAGE example; " + srcJS + "src/rtcomm/EndpointProvider/WebRTCConnection.js createPeerConnection (onicecandidate)",
		Sentence: "webrtc content: \"sdp or candidate | Raw data (based on standards for RTCPeerConnection)\"; example {\"type\":\"icecandidate\",\"candidate\":{\"sdpMLineIndex\":0,\"sdpMid\":\"audio\",\"candidate\":\"a=candidate:...\"}}"},
	{ID: "ICE-002", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "Candidates are relayed in both directions, before and after the answer.",
		Source:   srcSig + "Signaling for peer to peer sessions (ICE MESSAGE)",
		Sentence: "The caller and/or callee endpoint(s) may also send out another message which specifies one or more ICE candidates"},
	{ID: "ICE-003", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Each candidate sent reaches the peer once: none lost (re-sent duplicates included), none duplicated by the relay.",
		Source: srcSig + "Signaling for peer to peer sessions (ICE MESSAGE); " + srcJS + "src/rtcomm/connection/SigSession.js _processQueue (queued candidates re-sent)"},
	// Order is a SHOULD: no source requires it (the signaling spec says nothing of order, and
	// rtcomm.js hands each candidate to RTCPeerConnection.addIceCandidate as it arrives, which
	// takes candidates in any order), and the official client itself sends a session's
	// candidates over two paths (the connector's topic before the answer, the peer's fromTopic
	// after it), so even a correct route-only connector cannot keep them in order.
	{ID: "ICE-005", Area: "ice", Level: Should, Profiles: both, Subject: SubjectConnector,
		Text:   "Candidates from one sender reach the peer in the order sent.",
		Source: srcSig + "Signaling for peer to peer sessions (ICE MESSAGE: no order stated); " + srcJS + "src/rtcomm/EndpointProvider/WebRTCConnection.js _processMessage (each candidate added as it arrives)"},
	{ID: "ICE-004", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Candidates pass byte-for-byte, including IPv6, mDNS `.local`, relay and TCP candidates and the empty end-of-candidates.",
		Source: srcSig + "Payload Definition (raw RTCPeerConnection data); " + srcJS + "src/rtcomm/EndpointProvider/WebRTCConnection.js _processMessage (passes the candidate to RTCIceCandidate)"},

	// In-session messages.
	{ID: "MSG-001", Area: "messages", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "MESSAGE carries `sigSessID`, `fromTopic` and an object `payload`.",
		Source:   srcSig + "Signaling for peer to peer sessions (MESSAGE table); " + srcJS + "src/rtcomm/connection/SigSession.js createMessage",
		Sentence: "MESSAGE table: fromTopic, sigSessID, \"payload | Content associated with the message\"."},
	{ID: "MSG-002", Area: "messages", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A MESSAGE is relayed by `sigSessID` to the other party at a topic ending in `/<senderID>`, with its payload and unknown fields unchanged.",
		Source:   srcSig + "Signaling for peer to peer sessions and Identity Propogation",
		Sentence: "Either the caller or callee can send an in session message at any time."},
	{ID: "MSG-003", Area: "messages", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A MESSAGE, PRANSWER or RESPONSE sent to the connector for an unknown session or transaction is delivered to no endpoint.",
		Source: srcJS + "src/rtcomm/connection/EndpointConnection.js processMessage (RESPONSE for an unknown transaction; MULTIPLE_SERVERS)"},

	// Referral and third-party call control.
	{ID: "REF-001", Area: "referral", Level: Must, Profiles: both, Subject: SubjectEndpoint, Feature: Feature3PCC,
		Text:     "3PCC_PLACE_CALL carries `transID`, `callerEndpoint`, `calleeEndpoint` and `fromTopic`.",
		Source:   srcSvcSpec + " (3PCC request table); " + srcNode + "lib/3pcc.js ThirdPartyCC.startCall",
		Sentence: "The 3PCC request message: transID, callerEndpoint, calleeEndpoint, fromTopic \"Topic the response to the request will be sent to\"."},
	{ID: "REF-002", Area: "referral", Level: Must, Profiles: clientOnly, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "The connector takes 3PCC_PLACE_CALL on the call-control topic exactly (no sender ID appended) and publishes only JSON objects to the requester's `fromTopic`.",
		Source: srcNode + "lib/3pcc.js ThirdPartyCC.startCall (publishes to config.topic) and createMqttClient (JSON.parse of every message at its fromTopic)"},
	{ID: "REF-003", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:     "On 3PCC_PLACE_CALL the connector sends the caller a REFER carrying `transID`, `fromTopic`, `toEndpointID` and a `details` object.",
		Source:   srcSig + "Call referral (REFER table); " + srcSvcSpec,
		Sentence: "REFER table: transID, fromTopic \"topic where the response must be published to\", toEndpointID, details."},
	{ID: "REF-004", Area: "referral", Level: Must, Profiles: clientOnly, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "A REFER's `details` carries `sessionID` and `toEndpointID`, and its `fromTopic` lies under the topic path.",
		Source: srcJS + "src/rtcomm/connection/SigSession.js constructor (reads details.sessionID unchecked) and src/rtcomm/connection/EndpointConnection.js normalizeTopic (prefixes the topic path to a reply topic outside it)"},
	{ID: "REF-005", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:     "The connector answers the 3PCC requester at its `fromTopic` exactly as given, with its `transID`, within 45 s: SUCCESS when the referred session is answered, FAILURE with a reason otherwise.",
		Source:   srcSvcSpec + " (3PCC response table); " + srcNode + "lib/3pcc.js ThirdPartyCC.startCall (45 s timer)",
		Sentence: "Once the session is either up and running or fails for some reason, a response to the 3PCC request is sent back to the originating requestor."},
	{ID: "REF-006", Area: "referral", Level: Must, Profiles: both, Subject: SubjectEndpoint, Feature: Feature3PCC,
		Text:     "A referred endpoint starts a session to `details.toEndpointID` and answers the REFER with RESPONSE `orig: REFER` at `<fromTopic>/<its ID>`, before or after the session's outcome (rtcomm.js answers only once the referred session is answered or failed, and never if its user ignores the REFER).",
		Source:   srcSig + "Call referral; " + srcJS + "src/rtcomm/connection/SigSession.js start (session_started, session_failed finish the referral transaction)",
		Sentence: "A \"call referral\" is used to make a request to an endpoint to establish a call with another endpoint."},
	{ID: "REF-007", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "RTCOMM_CALL_CONTROL_SERVICE, when advertised in a service query answer, carries `topic`.",
		Source: srcJS + "src/rtcomm/connection/EndpointConnection.js parseServices (comment: RTCOMM_CALL_CONTROL_SERVICE {topic}); " + srcSig + "Service query (additional services)"},

	// Events.
	{ID: "EVT-001", Area: "events", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureEvents,
		Text:     "The connector publishes RTCOMM_EVENT_FIRED at `<event topic>/session/<action>/<from>/<to>` as a session is `started` (on START_SESSION or on the answer: no source fixes which), `stopped` and `failed` (with a `reason`).",
		Source:   srcSvc + "Event Monitoring (categories, actions, event fields); " + srcNode + "lib/RtcConnector.js Filter.buildTopics",
		Sentence: "These events are fired at a topic tree ... ../<category>/<action>/fromEndpointID/toEndpointID; \"reason | Any failed event will include a reason\"."},
	{ID: "EVT-002", Area: "events", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureEvents,
		Text:     "An event carries `timestamp` and `appContext`, its topic's action is started, modified, stopped or failed, and its last two levels are valid endpoint IDs.",
		Source:   srcSvc + "Event Monitoring (event fields, supported actions); " + srcNode + "lib/RtcConnector.js Filter",
		Sentence: "every Rtcomm event is a JSON object that contains the following key/value pairs: method, version, timestamp, appContext, reason."},
	{ID: "EVT-003", Area: "events", Level: May, Profiles: both, Subject: SubjectConnector, Feature: FeatureEvents,
		Text:     "The connector may fire `modified` when a session is renegotiated (an offer or answer in a MESSAGE).",
		Source:   srcSvc + "Event Monitoring (\"modified: Events related to modification of an existing entity\"; which changes count is not fixed, hence MAY)",
		Sentence: "modified | Events related to modification of an existing entity of a certain category type."},

	// Call queues.
	{ID: "QUE-001", Area: "queues", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureQueues,
		Text:   "RTCOMM_CALL_QUEUE_SERVICE lists `queues`, each with an `endpointID` and a `topic` that is a valid subscription filter (in the broker's shared-subscription syntax) an agent uses as given.",
		Source: srcJS + "src/rtcomm/EndpointProvider/Queues.js Queue (appends # or /# to the topic) and EndpointProvider.js joinQueue (subscribes to it as given)"},
	{ID: "QUE-002", Area: "queues", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureQueues,
		Text:   "Each START_SESSION to a queue reaches exactly one of the agents that subscribed to the queue's advertised topic as given.",
		Source: srcJS + "src/rtcomm/EndpointProvider/EndpointProvider.js joinQueue (\"only 1 endpoint will receive the inbound request\")"},

	// Scheme routing.
	{ID: "SCH-001", Area: "schemes", Level: Must, Profiles: both, Subject: fmtSenders, Feature: FeatureSchemes,
		Text:     "A call to an ID prefixed `<scheme>:` goes to the `topic` of the service advertising that scheme (endpoints send it there, a connector forwards it there); other IDs route as usual.",
		Source:   srcSig + "Service query (note on schemes); " + srcJS + "src/rtcomm/connection/ModuleGlobals.js uidRoute, routeLookup",
		Sentence: "If a returned service contains a schemes property then their must be a topic property as well define where the topic should be routed."},

	// Identity and security.
	{ID: "ID-001", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint ID is non-empty valid UTF-8 without NUL; spaces, `@`, `:` and `.` are allowed (no source bounds its length below MQTT's 65535-byte topics).",
		Source:   srcSig + "Endpoint ID Definition; MQTT 3.1.1 §1.5.3, §4.7.3",
		Sentence: "This can be any string that does not include a \"/\" which represents the Rtcomm endpoint."},
	{ID: "ID-002", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint ID contains no `/`.",
		Source:   srcSig + "Endpoint ID Definition",
		Sentence: "This can be any string that does not include a \"/\" which represents the Rtcomm endpoint."},
	{ID: "ID-003", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:     "An endpoint ID contains no MQTT wildcard `+` or `#`.",
		Source:   srcSig + "Identity Propogation (the ID is a topic level); MQTT 3.1.1 §4.7.1",
		Sentence: "the sender publishes to a topic name that is a combination of the remote topic name being subscribed on by the receiver + the senders endpoint ID."},
	{ID: "ID-004", Area: "identity", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "A message is published at `<receiver topic>/<senderID>`: the last topic level is the sender's ID, which the JSON never carries (the client profile takes 3PCC_PLACE_CALL at the call-control topic exactly, as lib.rtcomm.node publishes it).",
		Source:   srcSig + "Identity Propogation; " + srcNode + "lib/3pcc.js ThirdPartyCC.startCall (bare topic)",
		Sentence: "When an Rtcomm message is sent to a remote topic, the sender publishes to a topic name that is a combination of the remote topic name being subscribed on by the receiver + the senders endpoint ID."},
	{ID: "ID-005", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:     "A secured broker lets a client publish only to topics ending in its authenticated ID and subscribe only to its own topics.",
		Source:   srcSig + "Identity Propogation and Endpoint ID Definition",
		Sentence: "MQTT message brokers can be securely configured to only allow endpoints with proper credentials to publish to MQTT topics that include an appended endpoint ID."},
	{ID: "ID-006", Area: "identity", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The connector takes a sender's identity only from the topic's last level and relays session messages only from a party of that session.",
		Source:   srcSig + "Identity Propogation",
		Sentence: "Because of this you never see the senders endpoint ID includes in an Rtcomm message definition."},
	{ID: "ID-007", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:     "A secured broker refuses a CONNECT that is anonymous, names an unknown user or carries a wrong password.",
		Source:   srcSig + "Endpoint ID Definition (IDs relate to the broker credentials); MQTT 3.1.1 §3.2.2.3",
		Sentence: "Its a fundamental building block in the Rtcomm protocol and relates directly to the credentials used to connect to the MQTT message broker."},
	{ID: "ID-008", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:     "On a secured broker only an endpoint itself sets or clears its presence: a retained DOCUMENT, an empty clear or a will on another ID's presence topic is refused.",
		Source:   srcSig + "Identity Propogation and Endpoint Registration",
		Sentence: "MQTT message brokers can be securely configured to only allow endpoints with proper credentials to publish to MQTT topics that include an appended endpoint ID."},
	{ID: "ID-009", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:     "On a secured broker endpoints cannot publish on the event topics `<path>event/...`, which only the connector fires (an event topic ends in the callee's ID, so the last-level rule alone would let a callee forge events).",
		Source:   srcSvc + "Event Monitoring (events come from the event source); " + srcSig + "Identity Propogation",
		Sentence: "These events are fired at a topic tree ... (note that .. defines the event topic root typically configured at the event source)"},
	{ID: "ID-010", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "A secured broker never lets a CONNECT with another user's client ID (one a session of that user holds, or one naming that user) take that user's session over: it refuses it (or gives it a session of its own), with no effect on that user: no disconnect, no will fired, presence and sessions intact.",
		Source: "MQTT 3.1.1 §3.1.4 (a second CONNECT with a client ID takes the session over); " + srcSig + "Identity Propogation"},
	{ID: "ID-011", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "On a secured broker a persistent session (clean session off) is resumed only by the user that created it: its queued messages reach no one else.",
		Source: "MQTT 3.1.1 §3.1.2.4, §4.1; " + srcSig + "Identity Propogation"},
	{ID: "ID-012", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "On a secured broker no endpoint can take the connector's session over with its client ID (visible as the last level of its answers): the connector keeps serving while one tries.",
		Source: "MQTT 3.1.1 §3.1.4; " + srcSig + "Identity Propogation"},
	{ID: "ID-013", Area: "identity", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureSecure,
		Text:   "On a secured deployment the connector registers a DOCUMENT only if its address topic is the registrant's own inbox (`<path><id>` or below): calls to the registrant never reach another endpoint, and no one else is sent DOCUMENT_REPLACED.",
		Source: srcSig + "Identity Propogation and Endpoint Registration"},
	{ID: "ID-014", Area: "identity", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureSecure,
		Text:   "On a secured deployment the connector publishes an answer only into the requester's own inbox, with its own ID as sender level, and puts another endpoint's ID as sender level only when relaying that endpoint's own message.",
		Source: srcSig + "Identity Propogation (the connector must not be a confused deputy)"},
	{ID: "ID-015", Area: "identity", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureSecure,
		Text:   "On a secured deployment only configured call controllers may place third-party calls, and a 3PCC request completes only with exactly the referred session (its `sessionID`, caller and callee), never with an unrelated later call.",
		Source: srcSvcSpec + "; " + srcSig + "Identity Propogation"},
	{ID: "ID-016", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "A secured broker retains messages only where rtcomm uses them (presence) within a per-client quota: a retained message in another endpoint's inbox, which its owner could never clear, is not kept.",
		Source: srcSig + "Endpoint Registration (retained is the registration mechanism); " + srcBroker},
	{ID: "ID-017", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "A secured broker refuses topics and filters beyond its length and level limits (in PUBLISH, SUBSCRIBE and wills) cheaply, and keeps serving other clients meanwhile.",
		Source: "MQTT 3.1.1 §4.7.3 (topics up to 65,535 bytes); " + srcBroker},

	// Robustness.
	{ID: "ROB-001", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "Non-JSON, non-object, invalid UTF-8 or unknown-method payloads do not stop the connector, which ignores them or answers FAILURE to a transID (no source fixes which) and keeps serving.",
		Source:   srcSig + "Abstract (\"All Rtcomm protocols are JSON based\")",
		Sentence: "The Rtcomm protocol is JSON based and built on top of MQTT."},
	{ID: "ROB-002", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "A request with a `transID` but a missing or wrongly typed field is answered RESPONSE FAILURE with a reason.",
		Source:   srcSig + "Service query and Signaling (RESPONSE tables: result, reason)",
		Sentence: "reason | Optionally included if FAILURE is the result. String explaining why the request failed"},

	{ID: "ROB-003", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:     "The connector publishes retained messages only for presence (DOCUMENT and its empty clear), so no session or transaction state outlives what caused it.",
		Source:   srcSig + "Endpoint Registration (retained DOCUMENT is the registration mechanism)",
		Sentence: "This message is an MQTT Retained message that is consumed by the service which stores this as registration information."},

	// Message format.
	{ID: "FMT-001", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "Every non-empty payload is a UTF-8 JSON object.",
		Source:   srcSig + "Abstract and Rtcomm Protocol Definition",
		Sentence: "The Rtcomm protocol is JSON based and built on top of MQTT."},
	{ID: "FMT-002", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "`method` is present and is one of the v1.0.0 methods.",
		Source:   srcSig + "message tables (method); " + srcJS + "src/rtcomm/connection/MessageFactory.js cast (no method: not a message)",
		Sentence: "method | START_SESSION (each message table names its method)"},
	{ID: "FMT-003", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "`rtcommVer` is `v1.0.0` (the client profile also takes the `v0.0.1` lib.rtcomm.node puts on 3PCC_PLACE_CALL).",
		Source:   srcSig + "message tables (rtcommVer e.g. v1.0.0); " + srcJS + "src/rtcomm/connection/MessageFactory.js _baseHeaders; " + srcNode + "lib/3pcc.js ThirdPartyCC.startCall (v0.0.1)",
		Sentence: "This specification defines version v1.0.0 of the Rtcomm signaling protocol."},
	{ID: "FMT-004", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "Every field has the JSON type the spec gives it (strings, string arrays, integers, objects; `userDefines` an array; null stands for absent; the client profile also takes a JSON integer as the `transID` or `sessionID` of 3PCC_PLACE_CALL, which lib.rtcomm.node passes on as the application gives it).",
		Source:   srcSig + "message tables, Protocols Definition (array of strings), Payload Definition (JSON object); " + srcJS + "src/rtcomm/connection/MessageFactory.js templates (null for unset fields); " + srcNode + "lib/3pcc.js ThirdPartyCC.startCall, test/3pccTest.js (numeric sessionID and transactionID)",
		Sentence: "protocols | Array of strings; payload | JSON object; userDefines | Completely user defined Array"},
	{ID: "FMT-005", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "A RESPONSE carries `orig` (SERVICE_QUERY, START_SESSION, REFER or 3PCC_PLACE_CALL), the request's `transID`, `result` SUCCESS or FAILURE, and a `reason` with FAILURE.",
		Source:   srcSig + "RESPONSE tables; " + srcSvcSpec + " (3PCC response table)",
		Sentence: "orig | Method type that started the transaction; result | SUCCESS or FAILURE; reason | Optionally included if FAILURE is the result."},
	{ID: "FMT-006", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "Topic-valued fields (`fromTopic`, the DOCUMENT address, service topics) are valid topic names: non-empty, without `+`, `#` or NUL (a queue's topic is a subscription filter).",
		Source:   "MQTT 3.1.1 §4.7.1, §4.7.3; " + srcSig + "message tables (fromTopic)",
		Sentence: "fromTopic | topic where the response must be published to."},
	{ID: "FMT-007", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:     "`protocols` is an array of non-empty names (possibly empty), a webrtc payload entry has `type` offer, answer, pranswer, icecandidate or stream with a non-empty `sdp` for an offer or answer and an `sdp` string (possibly empty) for a pranswer, and a chat entry has a string `message`.",
		Source:   srcSig + "Protocols Definition and Payload Definition (chat and webrtc content); " + srcJS + "src/rtcomm/EndpointProvider/WebRTCConnection.js _gotAnswer and _processMessage (pranswer with sdp \"\"), src/rtcomm/EndpointProvider/RtcommEndpoint.js (protocols [] without chat and webrtc)",
		Sentence: "webrtc content: \"type | offer, answer, pranswer, icecandidate, stream\"; \"sdp or candidate | Raw data\"; chat content: \"message | String containing message to send\"."},
}

// Catalog returns a copy of every requirement, in ID order.
func Catalog() []Requirement {
	out := make([]Requirement, len(catalog))
	for i, r := range catalog {
		r.Profiles = slices.Clone(r.Profiles)
		out[i] = r
	}
	slices.SortFunc(out, func(a, b Requirement) int { return compareIDs(a.ID, b.ID) })
	return out
}

// Lookup returns the requirement with the given ID.
func Lookup(id string) (Requirement, bool) {
	for _, r := range catalog {
		if r.ID == id {
			r.Profiles = slices.Clone(r.Profiles)
			return r, true
		}
	}
	return Requirement{}, false
}

// compareIDs orders IDs by area (document order), then number.
func compareIDs(a, b string) int {
	pa, na, _ := strings.Cut(a, "-")
	pb, nb, _ := strings.Cut(b, "-")
	if pa != pb {
		return prefixRank(pa) - prefixRank(pb)
	}
	return strings.Compare(na, nb) // three digits: text order is number order
}

func prefixRank(p string) int {
	for i, a := range areas {
		if a.prefix == p {
			return i
		}
	}
	return len(areas)
}
