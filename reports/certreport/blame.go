package certreport

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// brokerLacks names what a failed broker requirement means for rtcomm, for blame cells.
var brokerLacks = map[string]string{
	"BRK-001": "retained messages",
	"BRK-002": "retained Last Will",
	"BRK-003": "wildcards",
	"BRK-004": "topic characters / empty first level",
	"BRK-005": "64 KB payloads",
	"BRK-006": "per-publisher order",
	"BRK-007": "QoS 0/1",
	"BRK-008": "WebSocket at /mqtt",
	"BRK-009": "MQTT 3.1",
	"BRK-010": "shared subscriptions",
}

// Explanation is what a report says next to a failed requirement: the broker requirements it
// needs that failed on the same target (spec.Blame), and the target declaration's note.
type Explanation struct {
	ID    string
	Blame []string // most specific first
	Note  string
	// Broker: the requirement is itself a broker requirement (a root cause, not a consequence).
	Broker bool
}

// Explained reports whether the failure carries a blame entry or a note.
func (e Explanation) Explained() bool { return len(e.Blame) > 0 || e.Note != "" }

// BlameText is the blame cell: "broker lacks BRK-010 (shared subscriptions)", "the broker
// itself" for a failed broker requirement, "none" otherwise.
func (e Explanation) BlameText() string {
	if len(e.Blame) == 0 {
		if e.Broker {
			return "the broker itself"
		}
		return "none"
	}
	parts := make([]string, len(e.Blame))
	for i, id := range e.Blame {
		parts[i] = id
		if what := brokerLacks[id]; what != "" {
			parts[i] += " (" + what + ")"
		}
	}
	return "broker lacks " + strings.Join(parts, ", ")
}

// Explain returns the explanation of requirement id's verdict in v (meaningful for failures).
func Explain(v *verdict.Verdicts, id string) Explanation {
	e := Explanation{ID: id, Note: v.Target.Notes[id]}
	if r, ok := spec.Lookup(id); ok {
		e.Broker = r.AppliesTo(spec.SubjectBroker)
	}
	e.Blame = spec.Blame(id, func(dep string) bool {
		r, ok := v.Get(dep)
		return ok && r.Verdict == verdict.Fail
	})
	return e
}

// Unexplained lists the failed requirements of v that carry neither a blame entry nor a note.
func Unexplained(v *verdict.Verdicts) []string {
	var out []string
	for _, r := range failedOf(v) {
		if !Explain(v, r.ID).Explained() {
			out = append(out, r.ID)
		}
	}
	return out
}

// Browser says whether the official web client (rtcomm.js on Paho JS) can use the target,
// from the broker checks: a WebSocket listener at /mqtt that echoes mqttv3.1 (BRK-008) and
// MQTT 3.1 accepted (BRK-009). "yes" only when both passed.
func Browser(v *verdict.Verdicts) string {
	ws, okWS := v.Get("BRK-008")
	v31, ok31 := v.Get("BRK-009")
	if !okWS || !ok31 {
		return "unknown (no BRK-008/BRK-009 verdict)"
	}
	var why []string
	switch ws.Verdict {
	case verdict.Pass:
	case verdict.NotClaimed:
		why = append(why, "no WebSocket listener")
	case verdict.Fail:
		why = append(why, "BRK-008 failed (WebSocket /mqtt, mqttv3.1)")
	default:
		return fmt.Sprintf("unknown (BRK-008 %s)", ws.Verdict)
	}
	switch v31.Verdict {
	case verdict.Pass:
	case verdict.Fail:
		why = append(why, "BRK-009 failed (MQTT 3.1)")
	default:
		return fmt.Sprintf("unknown (BRK-009 %s)", v31.Verdict)
	}
	if len(why) == 0 {
		return "yes"
	}
	return "no: " + strings.Join(why, "; ")
}

// explanations returns the explanations of v's failures, in catalog order.
func explanations(v *verdict.Verdicts) []Explanation {
	var out []Explanation
	for _, r := range failedOf(v) {
		out = append(out, Explain(v, r.ID))
	}
	return out
}

// staleNotes lists the IDs the declaration has notes for that did not fail here, sorted.
func staleNotes(v *verdict.Verdicts) []string {
	var out []string
	for id := range v.Target.Notes {
		if r, ok := v.Get(id); !ok || r.Verdict != verdict.Fail {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
