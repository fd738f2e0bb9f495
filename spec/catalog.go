package spec

import (
	"slices"
	"strings"
)

// CatalogVersion changes whenever an entry is added, removed or reworded; IDs never change meaning.
const CatalogVersion = "1.1.0"

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

// Optional features a target must claim before the requirements that need them apply.
const (
	FeatureWebSocket = "websocket"
	FeatureSecure    = "secure"
	FeatureQueues    = "queues"
	Feature3PCC      = "3pcc"
	FeatureEvents    = "events"
	FeatureSchemes   = "schemes"
	FeatureShared    = "shared-subscriptions"
)

// Requirement is one checkable statement of the protocol, with a stable ID.
type Requirement struct {
	ID         string    // stable, e.g. "REG-003"; prefix names the area
	Area       string    // e.g. "registration"
	Level      Level     // MUST, SHOULD or MAY
	Text       string    // one sentence in our words
	Source     string    // where it comes from
	Profiles   []Profile // the profiles that hold a target to it
	Subject    string    // who must do it: broker, connector, endpoint (comma-joined when several)
	Feature    string    // "" for core; otherwise the optional feature that must be claimed
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

const (
	srcBroker  = "PROTOCOL.md, what a broker must support"
	srcRtcJS   = "rtcomm.js 1.0.9 behaviour"
	srcNode    = "lib.rtcomm.node"
	srcSvcSpec = "service spec (rtcomm.service.proto.spec.md)"
	fmtSenders = SubjectConnector + "," + SubjectEndpoint
)

// catalog is the source of truth; Catalog hands out copies.
var catalog = []Requirement{
	// Broker capabilities.
	{ID: "BRK-001", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "A retained PUBLISH reaches every later matching subscriber, a newer one replaces it, and an empty retained PUBLISH clears it.",
		Source: "MQTT 3.1.1 §3.3.1.3; " + srcBroker},
	{ID: "BRK-002", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "On an abrupt disconnect the broker publishes the client's Last Will, retained when the will says so; a clean DISCONNECT discards the will.",
		Source: "MQTT 3.1.1 §3.1.2.5-§3.1.2.7; " + srcBroker},
	{ID: "BRK-003", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "A `#` filter matches its parent level and every level below; `+` matches exactly one level.",
		Source: "MQTT 3.1.1 §4.7.1.2, §4.7.1.3; " + srcBroker},
	{ID: "BRK-004", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "Topic levels containing `@ : . - _` and spaces, and an empty first level (leading `/`), are accepted and matched literally.",
		Source: "MQTT 3.1.1 §4.7.1.1, §4.7.3; " + srcBroker},
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
		Source: srcRtcJS + " (Paho JS 1.0.x); MQTT 3.1.1 §6; " + srcBroker},
	{ID: "BRK-009", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker,
		Text:   "The broker accepts clean-session clients speaking MQTT 3.1 (`MQIsdp`, level 3) and 3.1.1 (`MQTT`, level 4) with 23-character client IDs and a 60 s keepalive.",
		Source: srcRtcJS + "; MQTT 3.1.1 §3.1.2.2, §3.1.3.1; " + srcBroker},
	{ID: "BRK-010", Area: "broker", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureShared,
		Text:   "A shared subscription (`$share/<group>/<filter>`) delivers each message to exactly one member of the group.",
		Source: "MQTT 5.0 §4.8.2; signaling spec, call queues"},

	// Registration.
	{ID: "REG-001", Area: "registration", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint registers by publishing a retained DOCUMENT at `<path>sphere/<endpointID>` with `type` ENDPOINT or SERVICE and an `appContext`.",
		Source: "signaling spec, registration flow and DOCUMENT; " + srcRtcJS},
	{ID: "REG-002", Area: "registration", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint connects with an empty retained Last Will on its own sphere topic, and publishes an empty payload nowhere else.",
		Source: "signaling spec, transport and registration flow"},
	{ID: "REG-003", Area: "registration", Level: Must, Profiles: strictOnly, Subject: SubjectEndpoint,
		Text:   "A DOCUMENT names the endpoint's address topic in the field `topic`.",
		Source: "signaling spec, DOCUMENT fields (PROTOCOL.md known differences)"},
	{ID: "REG-004", Area: "registration", Level: Must, Profiles: clientOnly, Subject: SubjectEndpoint,
		Text:   "A DOCUMENT names the endpoint's address topic in the field `addressTopic`.",
		Source: srcRtcJS + " (PROTOCOL.md known differences)"},
	{ID: "REG-005", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector takes a registrant's address from `addressTopic` or, when that is absent, from `topic`.",
		Source: "PROTOCOL.md known differences"},
	{ID: "REG-006", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector keeps one address per (endpoint ID, appContext): a newer DOCUMENT for the pair replaces the older one.",
		Source: "signaling spec, registration flow"},
	{ID: "REG-007", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "When a registration is taken over from a different address, the connector sends DOCUMENT_REPLACED to the older registrant's address topic.",
		Source: "signaling spec, registration flow and DOCUMENT_REPLACED"},
	{ID: "REG-008", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "An empty retained message on a sphere topic (Last Will or unregister) removes that registration, and the connector ends every session of that endpoint.",
		Source: "signaling spec, registration flow"},
	{ID: "REG-009", Area: "registration", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "The empty retained message a replaced client publishes must not remove the newcomer's registration on the same sphere topic.",
		Source: srcRtcJS + " (destroys itself and clears its presence on DOCUMENT_REPLACED)"},
	{ID: "REG-010", Area: "registration", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Registrations of one endpoint ID under different appContexts are kept, replaced and routed separately.",
		Source: "signaling spec, registration flow (endpointID + appContext registry)"},

	// Service query.
	{ID: "SQ-001", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint publishes SERVICE_QUERY, with `transID` and `fromTopic`, at `<path>management/<senderID>`.",
		Source: "signaling spec, messages (SERVICE_QUERY); " + srcRtcJS},
	{ID: "SQ-002", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector answers each SERVICE_QUERY exactly once, within 5 s.",
		Source: srcRtcJS + " (a second or late answer resets the client: \"multiple servers\"); signaling spec, client timeouts"},
	{ID: "SQ-003", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The answer is a RESPONSE with `orig: SERVICE_QUERY` and the query's `transID`, published under the query's `fromTopic`.",
		Source: "signaling spec, common fields and messages; " + srcRtcJS},
	{ID: "SQ-004", Area: "service-query", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "The answer to a SERVICE_QUERY has `result: SUCCESS`.",
		Source: srcRtcJS},
	{ID: "SQ-005", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A successful answer's `services` contains RTCOMM_CONNECTOR_SERVICE with a `topic`.",
		Source: "signaling spec, service query answer; " + srcRtcJS + " (throws without it)"},
	{ID: "SQ-006", Area: "service-query", Level: Must, Profiles: strictOnly, Subject: SubjectConnector,
		Text:   "RTCOMM_CONNECTOR_SERVICE also carries `sphereTopic`, `iceURL` and `eventMonitoringTopic`.",
		Source: "signaling spec, service query answer"},
	{ID: "SQ-007", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A non-empty `iceURL` is a comma-separated list of well-formed `stun:`, `stuns:`, `turn:` or `turns:` URLs.",
		Source: "signaling spec, service query answer; RFC 7064, RFC 7065"},
	{ID: "SQ-008", Area: "service-query", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureSchemes,
		Text:   "An advertised service that carries `schemes` (non-empty names without `:`) also carries `topic`.",
		Source: "signaling spec, service query answer"},

	// Sessions.
	{ID: "SESS-001", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "START_SESSION carries `transID`, `sigSessID`, `fromTopic` and `protocols` (its `payload` usually holds the offer), and `toEndpointID` when sent to the connector.",
		Source: "signaling spec, messages (START_SESSION)"},
	{ID: "SESS-002", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector forwards START_SESSION to the callee's registered address at a topic ending in `/<callerID>`, with `transID`, `sigSessID`, `payload` and `protocols` unchanged.",
		Source: "signaling spec, call flow; " + srcNode},
	{ID: "SESS-003", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A START_SESSION to an unregistered callee is answered to the caller with RESPONSE FAILURE and a reason.",
		Source: "signaling spec, call flow"},
	{ID: "SESS-004", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The callee's RESPONSE, answer or rejection, reaches the caller at a topic ending in `/<calleeID>` with `result`, `transID`, `sigSessID` and `payload` unchanged.",
		Source: "signaling spec, call flow; " + srcNode},
	{ID: "SESS-005", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A PRANSWER reaches the caller with `holdTimeout` and `queuePosition` unchanged.",
		Source: "signaling spec, messages (PRANSWER) and client timeouts"},
	{ID: "SESS-006", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A connector that stays in the path rewrites `fromTopic` to its own topic on every message it relays.",
		Source: "signaling spec, call flow; " + srcRtcJS},
	{ID: "SESS-007", Area: "sessions", Level: Must, Profiles: clientOnly, Subject: SubjectConnector,
		Text:   "A relaying connector never adds a `transID` to a message that had none (the receiver drops it).",
		Source: srcRtcJS},
	{ID: "SESS-008", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "STOP_SESSION is routed by `sigSessID` to the other party and is never answered.",
		Source: "signaling spec, messages (STOP_SESSION); " + srcNode},
	{ID: "SESS-009", Area: "sessions", Level: Should, Profiles: both, Subject: SubjectConnector,
		Text:   "A session not answered within the final timeout (30 s, or the PRANSWER's `holdTimeout`) is reaped: FAILURE to the caller, STOP_SESSION to the callee.",
		Source: "signaling spec, call flow (client timeouts)"},
	{ID: "SESS-010", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "PRANSWER and a SUCCESS RESPONSE to START_SESSION carry `transID`, `sigSessID`, `fromTopic` and `protocols` common with the caller's, the SUCCESS also the answer `payload`, and `holdTimeout`/`queuePosition` are non-negative integers.",
		Source: "signaling spec, messages (PRANSWER, RESPONSE to START_SESSION)"},
	{ID: "SESS-011", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "STOP_SESSION carries `sigSessID`.",
		Source: "signaling spec, messages (STOP_SESSION); " + srcRtcJS},
	{ID: "SESS-012", Area: "sessions", Level: Must, Profiles: strictOnly, Subject: SubjectEndpoint,
		Text:   "STOP_SESSION carries a `reason`.",
		Source: "signaling spec, messages (STOP_SESSION); rtcomm.js 1.0.9 sends none"},
	{ID: "SESS-013", Area: "sessions", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:       "Every session gets a fresh, globally unique `sigSessID`.",
		Source:     "signaling spec, common fields",
		Untestable: "global uniqueness cannot be shown by sampling; scenarios only see one run's sessions"},

	// ICE candidate trickle.
	{ID: "ICE-001", Area: "ice", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "A trickled candidate is a MESSAGE payload `webrtc: {type: icecandidate, candidate: {candidate, sdpMid, sdpMLineIndex}}` whose non-empty candidate string starts with `candidate:`.",
		Source: "signaling spec, common fields (payload); " + srcRtcJS},
	{ID: "ICE-002", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Candidates are relayed in both directions, before and after the answer.",
		Source: "signaling spec, call flow"},
	{ID: "ICE-003", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Each candidate sent reaches the peer once, in the order sent: none lost (re-sent duplicates included), none duplicated by the relay.",
		Source: "signaling spec, call flow; " + srcRtcJS + " (callers re-send candidates)"},
	{ID: "ICE-004", Area: "ice", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Candidates pass byte-for-byte, including IPv6, mDNS `.local`, relay and TCP candidates and the empty end-of-candidates.",
		Source: "signaling spec, call flow; " + srcNode + " (payload passes unchanged)"},

	// In-session messages.
	{ID: "MSG-001", Area: "messages", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "MESSAGE carries `sigSessID`, `fromTopic` and an object `payload`.",
		Source: "signaling spec, messages (MESSAGE)"},
	{ID: "MSG-002", Area: "messages", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A MESSAGE is relayed by `sigSessID` to the other party at a topic ending in `/<senderID>`, with its payload and unknown fields unchanged.",
		Source: "signaling spec, messages (MESSAGE) and identity rule"},
	{ID: "MSG-003", Area: "messages", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A MESSAGE, PRANSWER or RESPONSE sent to the connector for an unknown session or transaction is delivered to no endpoint.",
		Source: "PROTOCOL.md known differences (clients accept only their own transactions)"},

	// Referral and third-party call control.
	{ID: "REF-001", Area: "referral", Level: Must, Profiles: both, Subject: SubjectEndpoint, Feature: Feature3PCC,
		Text:   "3PCC_PLACE_CALL carries `transID`, `callerEndpoint`, `calleeEndpoint` and `fromTopic`.",
		Source: srcSvcSpec},
	{ID: "REF-002", Area: "referral", Level: Must, Profiles: clientOnly, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "The connector takes 3PCC_PLACE_CALL on the call-control topic exactly (no sender ID appended) and publishes only JSON objects there.",
		Source: srcNode},
	{ID: "REF-003", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "On 3PCC_PLACE_CALL the connector sends the caller a REFER carrying `transID`, `fromTopic`, `toEndpointID` and a `details` object.",
		Source: "signaling spec, messages (REFER); " + srcSvcSpec},
	{ID: "REF-004", Area: "referral", Level: Must, Profiles: clientOnly, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "A REFER's `details` carries `sessionID` and `toEndpointID`, and its `fromTopic` lies under the topic path.",
		Source: srcNode + " (the client reads details unchecked)"},
	{ID: "REF-005", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "The connector answers the 3PCC requester at its `fromTopic` exactly as given, with its `transID`, within 45 s: SUCCESS when the referred session is answered, FAILURE with a reason otherwise.",
		Source: srcSvcSpec + "; " + srcNode + " (45 s timeout)"},
	{ID: "REF-006", Area: "referral", Level: Must, Profiles: both, Subject: SubjectEndpoint, Feature: Feature3PCC,
		Text:   "A referred endpoint answers REFER with RESPONSE `orig: REFER` at `<fromTopic>/<its ID>` and then starts a session to `details.toEndpointID`.",
		Source: "signaling spec, referral flow; " + srcNode},
	{ID: "REF-007", Area: "referral", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: Feature3PCC,
		Text:   "RTCOMM_CALL_CONTROL_SERVICE, when advertised in a service query answer, carries `topic`.",
		Source: "signaling spec, service query answer"},

	// Events.
	{ID: "EVT-001", Area: "events", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureEvents,
		Text:   "The connector publishes RTCOMM_EVENT_FIRED at `<event topic>/session/<action>/<from>/<to>` as a session is `started` (answered), `modified`, `stopped` and `failed` (with a `reason`).",
		Source: "signaling spec, events flow; " + srcNode},
	{ID: "EVT-002", Area: "events", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureEvents,
		Text:   "An event carries `timestamp` and `appContext`, its topic's action is started, modified, stopped or failed, and its last two levels are valid endpoint IDs.",
		Source: "signaling spec, messages (RTCOMM_EVENT_FIRED); " + srcNode},

	// Call queues.
	{ID: "QUE-001", Area: "queues", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureQueues,
		Text:   "RTCOMM_CALL_QUEUE_SERVICE lists `queues`, each with an `endpointID` and a `topic`.",
		Source: "signaling spec, service query answer"},
	{ID: "QUE-002", Area: "queues", Level: Must, Profiles: both, Subject: SubjectConnector, Feature: FeatureQueues,
		Text:   "Each START_SESSION to a queue reaches exactly one agent.",
		Source: "signaling spec, call queues flow"},

	// Scheme routing.
	{ID: "SCH-001", Area: "schemes", Level: Must, Profiles: both, Subject: fmtSenders, Feature: FeatureSchemes,
		Text:   "A call to an ID prefixed `<scheme>:` goes to the `topic` of the service advertising that scheme (endpoints send it there, a connector forwards it there); other IDs route as usual.",
		Source: "signaling spec, service query answer"},

	// Identity and security.
	{ID: "ID-001", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint ID is non-empty valid UTF-8 without NUL, at most 1024 bytes; spaces, `@`, `:` and `.` are allowed.",
		Source: "signaling spec, identity rule; MQTT 3.1.1 §1.5.3, §4.7.3"},
	{ID: "ID-002", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint ID contains no `/`.",
		Source: "signaling spec, identity rule"},
	{ID: "ID-003", Area: "identity", Level: Must, Profiles: both, Subject: SubjectEndpoint,
		Text:   "An endpoint ID contains no MQTT wildcard `+` or `#`.",
		Source: "signaling spec, identity rule; MQTT 3.1.1 §4.7.1"},
	{ID: "ID-004", Area: "identity", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "A message is published at `<receiver topic>/<senderID>`: the last topic level is the sender's ID, which the JSON never carries.",
		Source: "signaling spec, identity rule"},
	{ID: "ID-005", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "A secured broker lets a client publish only to topics ending in its authenticated ID and subscribe only to its own topics.",
		Source: "signaling spec, identity rule; " + srcBroker},
	{ID: "ID-006", Area: "identity", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector takes a sender's identity only from the topic's last level and relays session messages only from a party of that session.",
		Source: "signaling spec, identity rule"},
	{ID: "ID-007", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "A secured broker refuses a CONNECT that is anonymous, names an unknown user or carries a wrong password.",
		Source: "signaling spec, identity rule (IDs are authenticated); MQTT 3.1.1 §3.2.2.3"},
	{ID: "ID-008", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "On a secured broker only an endpoint itself sets or clears its presence: a retained DOCUMENT, an empty clear or a will on another ID's `<path>sphere/<id>` is refused.",
		Source: "signaling spec, identity rule and registration flow"},
	{ID: "ID-009", Area: "identity", Level: Must, Profiles: both, Subject: SubjectBroker, Feature: FeatureSecure,
		Text:   "On a secured broker endpoints cannot publish on the event topics `<path>event/...`, which only the connector fires (an event topic ends in the callee's ID, so the last-level rule alone would let a callee forge events).",
		Source: srcSvcSpec + ", events; signaling spec, identity rule"},

	// Robustness.
	{ID: "ROB-001", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "Non-JSON, non-object, invalid UTF-8 or unknown-method payloads do not stop the connector, which ignores them (or answers FAILURE to a transID) and keeps serving.",
		Source: "signaling spec, transport; " + srcNode + " (parses without error handling)"},
	{ID: "ROB-002", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "A request with a `transID` but a missing or wrongly typed field is answered RESPONSE FAILURE with a reason.",
		Source: "signaling spec, common fields (RESPONSE)"},

	{ID: "ROB-003", Area: "robustness", Level: Must, Profiles: both, Subject: SubjectConnector,
		Text:   "The connector publishes retained messages only for presence (DOCUMENT and its empty clear), so no session or transaction state outlives what caused it.",
		Source: "signaling spec, transport and registration flow (retained is the registration mechanism)"},

	// Message format.
	{ID: "FMT-001", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "Every non-empty payload is a UTF-8 JSON object.",
		Source: "signaling spec, transport"},
	{ID: "FMT-002", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "`method` is present and is one of the v1.0.0 methods.",
		Source: "signaling spec, common fields and messages"},
	{ID: "FMT-003", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "`rtcommVer` is `v1.0.0`.",
		Source: "signaling spec, common fields"},
	{ID: "FMT-004", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "Every field has the JSON type the spec gives it (strings, string arrays, integers, objects; `userDefines` an array).",
		Source: "signaling spec, common fields and messages"},
	{ID: "FMT-005", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "A RESPONSE carries `orig` (SERVICE_QUERY, START_SESSION, REFER or 3PCC_PLACE_CALL), the request's `transID`, `result` SUCCESS or FAILURE, and a `reason` with FAILURE.",
		Source: "signaling spec, common fields"},
	{ID: "FMT-006", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "Topic-valued fields (`fromTopic`, the DOCUMENT address, service topics) are valid topic names: non-empty, without `+`, `#` or NUL.",
		Source: "MQTT 3.1.1 §4.7.1, §4.7.3; signaling spec, common fields"},
	{ID: "FMT-007", Area: "format", Level: Must, Profiles: both, Subject: fmtSenders,
		Text:   "`protocols` is a non-empty array of names, a webrtc payload entry has `type` offer, answer, pranswer, icecandidate or stream with an `sdp` for the first three, and a chat entry has a string `message`.",
		Source: "signaling spec, common fields (protocols, payload)"},
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
