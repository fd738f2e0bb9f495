package spec

import "slices"

// Broker requirements every rtcomm flow needs, whoever carries it: the official web client
// speaks MQTT 3.1 (BRK-009) at QoS 0 and 1 (BRK-007), every endpoint listens on
// <path><id>/# and the connector on <path>management/# (BRK-003), and the default topic
// path /rtcomm/ starts with an empty level while IDs carry @ : . and spaces (BRK-004).
var flowNeeds = []string{"BRK-009", "BRK-007", "BRK-003", "BRK-004"}

// A connector learns endpoints from their retained DOCUMENTs (BRK-001), which rtcomm.js
// publishes right before its SERVICE_QUERY: the two must arrive in order (BRK-006).
var registryNeeds = append([]string{"BRK-001", "BRK-006"}, flowNeeds...)

// brokerNeeds maps a requirement to the broker requirements it needs, most specific first:
// when one of those failed on the same broker, the report blames it (the connector-level
// failure may be only its consequence). Kept apart from the catalog entries so that catalog
// edits and dependency edits do not collide; TestBrokerNeedsWellFormed checks every ID.
var brokerNeeds = map[string][]string{
	// The WebSocket check talks MQTT 3.1 over the socket, as rtcomm.js does.
	"BRK-008": {"BRK-009"},

	"REG-005": registryNeeds,
	"REG-006": registryNeeds,
	"REG-007": registryNeeds,
	"REG-008": append([]string{"BRK-002"}, registryNeeds...), // the Last Will clears presence
	"REG-009": registryNeeds,
	"REG-010": registryNeeds,

	"SQ-002": flowNeeds,
	"SQ-003": flowNeeds,
	"SQ-004": flowNeeds,
	"SQ-005": flowNeeds,
	"SQ-006": flowNeeds,
	"SQ-007": flowNeeds,
	"SQ-008": flowNeeds,
	"SQ-009": flowNeeds,

	// Calls are routed to registered endpoints.
	"SESS-002": registryNeeds,
	"SESS-003": flowNeeds, // an unregistered callee: no registry needed
	"SESS-004": registryNeeds,
	"SESS-005": registryNeeds,
	"SESS-006": registryNeeds,
	"SESS-007": registryNeeds,
	"SESS-008": registryNeeds,
	"SESS-009": registryNeeds,
	"ICE-002":  registryNeeds,
	"ICE-003":  registryNeeds,
	"ICE-005":  registryNeeds, // order of candidates: BRK-006 is in registryNeeds
	"ICE-004":  append([]string{"BRK-005"}, registryNeeds...),
	"MSG-002":  registryNeeds,
	"MSG-003":  registryNeeds,

	"REF-002": flowNeeds,
	"REF-003": registryNeeds,
	"REF-004": registryNeeds,
	"REF-005": registryNeeds,
	"REF-007": flowNeeds,

	"EVT-001": registryNeeds,
	"EVT-002": registryNeeds,
	"EVT-003": registryNeeds,

	"QUE-001": flowNeeds,
	"QUE-002": append([]string{"BRK-010"}, registryNeeds...), // one agent of a shared subscription

	"SCH-001": registryNeeds,

	"ID-004": registryNeeds,
	"ID-006": registryNeeds,
	"ID-013": registryNeeds, // the registrant's own inbox
	"ID-014": registryNeeds, // answers into the requester's inbox
	"ID-015": registryNeeds, // a 3PCC request completes with the referred session

	"ROB-001": registryNeeds,
	"ROB-002": registryNeeds,
	"ROB-003": append([]string{"BRK-001"}, flowNeeds...), // retained state is read back

	"FMT-001": registryNeeds,
	"FMT-002": registryNeeds,
	"FMT-003": registryNeeds,
	"FMT-004": registryNeeds,
	"FMT-005": registryNeeds,
	"FMT-006": registryNeeds,
	"FMT-007": registryNeeds,
}

// BrokerNeeds returns the broker requirements that requirement id needs, most specific
// first (nil when it needs none or is itself a plain broker requirement).
func BrokerNeeds(id string) []string { return slices.Clone(brokerNeeds[id]) }

// Blame returns the broker requirements that id needs and that failed, most specific first:
// the "broker lacks X" a report shows next to a failure of id. failed reports whether a
// requirement failed on the same target.
func Blame(id string, failed func(id string) bool) []string {
	var out []string
	for _, dep := range brokerNeeds[id] {
		if dep != id && failed(dep) {
			out = append(out, dep)
		}
	}
	return out
}

// BrokerNeedsKeys lists the requirements the dependency table has an entry for.
func BrokerNeedsKeys() []string {
	out := make([]string, 0, len(brokerNeeds))
	for id := range brokerNeeds {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
