package framework

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Helpers the area specs share (each moved here from the area file that defined it first).

// ErrIf returns an error with msg when cond holds.
func ErrIf(cond bool, msg string) error {
	if cond {
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// First keeps the first n of xs and counts the rest.
func First(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], fmt.Sprintf("... %d more", len(xs)-n))
	}
	return xs
}

// IsStartSession matches START_SESSION with sigSessID.
func IsStartSession(sigSessID string) Match {
	return And(IsMethod(spec.MethodStartSession), InSession(sigSessID))
}

// MustChat builds a chat payload.
func MustChat(text string) []byte {
	GinkgoHelper()
	p, err := spec.NewPayload(map[string]any{spec.ProtoChat: spec.ChatPayload{Message: text, From: "harness"}})
	Harness(err, "chat payload")
	return p
}

// MsgStrings renders each message on its own line of a failure.
func MsgStrings(ms []Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// UnderTopic reports whether topic is t or lies below it.
func UnderTopic(topic, t string) bool { return topic == t || strings.HasPrefix(topic, t+"/") }

// Needs skips a scenario whose feature the target does not claim (NewEnv already does so for
// every feature a named requirement belongs to; kept for scenarios that gate a step on it).
func Needs(e *Env, f Feature) {
	GinkgoHelper()
	if !e.Decl.Claims(f) {
		NotClaimed(f)
	}
}

// Reachable calls callee from caller and reports whether the START_SESSION arrived at the
// callee (the connector found its registration), rejecting it to end the call.
func Reachable(e *Env, caller, callee *Party, req string) bool {
	GinkgoHelper()
	s := caller.Call(callee.ID(), MustOffer("chrome-audio-offer"))
	select {
	case inv := <-callee.Incoming():
		ctx, cancel := e.OpContext()
		defer cancel()
		Harness(inv.Reject(ctx, "test over"), "reject")
		_, _ = caller.Await(s)
		return true
	case <-time.After(e.Reply()):
		return false
	}
}
