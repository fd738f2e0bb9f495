package framework

import (
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// ReqNoRetainedLeak is the requirement a scenario fails when retained state it caused outlives
// it (proposed for the catalog; until it exists a leak fails every requirement of the scenario).
const ReqNoRetainedLeak = "ROB-003"

// messageValidator returns the check run on every message the target delivers to a harness
// endpoint: format violations become findings against the requirement they break.
func messageValidator(d *Declaration, topics spec.Topics) func(topic string, payload []byte) []Finding {
	v := spec.Validator{Topics: topics, Profile: spec.Profile(d.Profile)}
	return func(topic string, payload []byte) []Finding {
		var out []Finding
		for _, viol := range v.Validate(topic, payload) {
			out = append(out, Finding{Req: viol.Requirement, Outcome: OutcomeFail, Expected: viol.Expected,
				Actual: viol.Actual + " in " + topic + ": " + Brief(payload)})
		}
		return out
	}
}
