package framework

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

// Trace limits keep a failed scenario's report readable and bounded.
const (
	maxTraceEvents  = 1000
	maxTracePayload = 2048
)

// Trace directions.
const (
	DirSent = "sent" // the harness published it
	DirRecv = "recv" // a harness client received it
)

// TraceEvent is one MQTT message a harness client sent or received during a scenario.
type TraceEvent = verdict.TraceEvent

// Trace records the messages of one scenario; safe for concurrent use.
type Trace struct {
	start   time.Time
	mu      sync.Mutex
	events  []TraceEvent
	dropped int
}

func newTrace() *Trace { return &Trace{start: time.Now()} }

// Add records one message.
func (t *Trace) Add(dir, client, topic string, retained bool, qos byte, payload []byte) {
	if t == nil {
		return
	}
	ev := TraceEvent{
		At:  time.Since(t.start).Round(time.Millisecond).String(),
		Dir: dir, Client: client, Topic: topic, Retained: retained, QoS: qos,
		Payload: printable(payload), Size: len(payload),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) >= maxTraceEvents {
		t.dropped++
		return
	}
	t.events = append(t.events, ev)
}

// Events returns a copy of the trace; a final marker event says how many were dropped.
func (t *Trace) Events() []TraceEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]TraceEvent(nil), t.events...)
	if t.dropped > 0 {
		out = append(out, TraceEvent{Dir: "note", Payload: fmt.Sprintf("%d further messages not recorded", t.dropped)})
	}
	return out
}

// String renders the trace, one message per line.
func (t *Trace) String() string { return TraceLog(t.Events()).String() }

// TraceLog is a recorded trace as attached to a failed scenario's report.
type TraceLog []TraceEvent

// String renders one message per line (Ginkgo prints report entries with it).
func (l TraceLog) String() string {
	var b strings.Builder
	for _, e := range l {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// printable returns the payload as text: UTF-8 as is (compact JSON), anything else as hex,
// truncated to maxTracePayload bytes.
func printable(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	suffix := ""
	if len(p) > maxTracePayload {
		suffix = fmt.Sprintf("... (%d bytes)", len(p))
		p = p[:maxTracePayload]
	}
	if utf8.Valid(p) {
		return string(p) + suffix
	}
	return fmt.Sprintf("%x", p) + suffix
}

// Brief renders a payload for an "Actual:" line.
func Brief(p []byte) string {
	if len(p) == 0 {
		return "(empty payload)"
	}
	const max = 300
	if len(p) > max {
		return string(p[:max]) + fmt.Sprintf("... (%d bytes)", len(p))
	}
	return string(p)
}

// BriefJSON renders a value as compact JSON for an "Actual:" line.
func BriefJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return Brief(b)
}
