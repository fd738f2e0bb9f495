package verdict

import "fmt"

// Outcome of one check.
const (
	OutcomePass = "pass"
	OutcomeFail = "fail"
)

// Finding is one requirement checked by a scenario: what was expected and what the target did.
type Finding struct {
	Req      string `json:"req"`
	Outcome  string `json:"outcome"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
}

// String renders the finding the way failures read (h2spec style).
func (f Finding) String() string {
	if f.Outcome == OutcomePass {
		return f.Req + ": pass"
	}
	return fmt.Sprintf("%s violated\nExpected: %s\nActual:   %s", f.Req, f.Expected, f.Actual)
}

// TraceEvent is one MQTT message a harness client sent or received during a scenario.
type TraceEvent struct {
	// At is the offset from the scenario's start.
	At       string `json:"at"`
	Dir      string `json:"dir"`
	Client   string `json:"client"` // harness role, e.g. "alice" or "monitor"
	Topic    string `json:"topic"`
	Retained bool   `json:"retained,omitempty"`
	QoS      byte   `json:"qos,omitempty"`
	// Payload is the payload as text (truncated), "" for an empty payload.
	Payload string `json:"payload"`
	Size    int    `json:"size"`
}

// String renders one line of a trace.
func (e TraceEvent) String() string {
	flags := ""
	if e.Retained {
		flags = " retained"
	}
	p := e.Payload
	if e.Size == 0 {
		p = "(empty)"
	}
	return fmt.Sprintf("%8s %-4s %-10s %s%s %s", e.At, e.Dir, e.Client, e.Topic, flags, p)
}
