package framework

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Msg is one message a harness client received.
type Msg struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
	At       time.Time
	Seq      int // arrival order at this client, from 0
}

// Decode parses the payload as an rtcomm message (nil for an empty or non-object payload).
func (m Msg) Decode() *spec.Message {
	d, _ := spec.Decode(m.Payload)
	return d
}

// Sender is the last topic level: the sender's ID under the identity rule.
func (m Msg) Sender() string { return spec.Sender(m.Topic) }

// String renders a message for an "Actual:" line.
func (m Msg) String() string {
	r := ""
	if m.Retained {
		r = " (retained)"
	}
	return fmt.Sprintf("%s%s: %s", m.Topic, r, Brief(m.Payload))
}

// Match selects messages.
type Match func(Msg) bool

// Any matches every message.
func Any(Msg) bool { return true }

// IsMethod matches rtcomm messages of one method.
func IsMethod(method spec.Method) Match {
	return func(m Msg) bool {
		d := m.Decode()
		return d != nil && d.Method == method
	}
}

// IsResponse matches the RESPONSE to orig with transID (any transID when empty).
func IsResponse(orig spec.Method, transID string) Match {
	return func(m Msg) bool {
		d := m.Decode()
		return d != nil && d.Method == spec.MethodResponse && d.Orig == orig && (transID == "" || d.TransID == transID)
	}
}

// OnTopic matches one exact topic.
func OnTopic(topic string) Match { return func(m Msg) bool { return m.Topic == topic } }

// InSession matches messages carrying sigSessID.
func InSession(sigSessID string) Match {
	return func(m Msg) bool {
		d := m.Decode()
		return d != nil && d.SigSessID == sigSessID
	}
}

// And matches when every matcher does.
func And(ms ...Match) Match {
	return func(m Msg) bool {
		for _, f := range ms {
			if !f(m) {
				return false
			}
		}
		return true
	}
}

// Inbox keeps every message a client received, in arrival order. Waiting for a message
// consumes it, so a second, duplicate message is still there to be found.
type Inbox struct {
	mu       sync.Mutex
	msgs     []Msg
	consumed []bool
	changed  chan struct{}
}

func newInbox() *Inbox { return &Inbox{changed: make(chan struct{})} }

func (in *Inbox) add(m Msg) {
	in.mu.Lock()
	m.Seq = len(in.msgs)
	in.msgs = append(in.msgs, m)
	in.consumed = append(in.consumed, false)
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
}

// take returns the first unconsumed match and marks it consumed.
func (in *Inbox) take(match Match) (Msg, bool, <-chan struct{}) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, m := range in.msgs {
		if !in.consumed[i] && match(m) {
			in.consumed[i] = true
			return m, true, nil
		}
	}
	return Msg{}, false, in.changed
}

// Await waits up to timeout for the first unconsumed message that matches.
func (in *Inbox) Await(ctx context.Context, timeout time.Duration, match Match) (Msg, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		m, ok, changed := in.take(match)
		if ok {
			return m, true
		}
		select {
		case <-changed:
		case <-timer.C:
			m, ok, _ := in.take(match)
			return m, ok
		case <-ctx.Done():
			return Msg{}, false
		}
	}
}

// Collect waits for window (or until n matches arrived, n > 0) and returns the unconsumed
// matches, consuming them.
func (in *Inbox) Collect(ctx context.Context, window time.Duration, n int, match Match) []Msg {
	deadline := time.NewTimer(window)
	defer deadline.Stop()
	var out []Msg
	for {
		for {
			m, ok, _ := in.take(match)
			if !ok {
				break
			}
			out = append(out, m)
		}
		if n > 0 && len(out) >= n {
			return out
		}
		in.mu.Lock()
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			for {
				m, ok, _ := in.take(match)
				if !ok {
					return out
				}
				out = append(out, m)
			}
		case <-ctx.Done():
			return out
		}
	}
}

// Mark returns a position: messages received from now on have Seq >= it.
func (in *Inbox) Mark() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// After matches messages received since mark.
func After(mark int) Match { return func(m Msg) bool { return m.Seq >= mark } }

// All returns every message received so far.
func (in *Inbox) All() []Msg {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Msg(nil), in.msgs...)
}

// Summary lists what arrived, for an "Actual:" line.
func (in *Inbox) Summary() string {
	all := in.All()
	if len(all) == 0 {
		return "no message at all"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d message(s): ", len(all))
	for i, m := range all {
		if i == 8 {
			fmt.Fprintf(&b, "; ... %d more", len(all)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		d := m.Decode()
		switch {
		case len(m.Payload) == 0:
			fmt.Fprintf(&b, "%s (empty)", m.Topic)
		case d != nil && d.Method == spec.MethodResponse:
			fmt.Fprintf(&b, "%s RESPONSE/%s %s", m.Topic, d.Orig, d.Result)
		case d != nil:
			fmt.Fprintf(&b, "%s %s", m.Topic, d.Method)
		default:
			fmt.Fprintf(&b, "%s %d bytes", m.Topic, len(m.Payload))
		}
	}
	return b.String()
}
