// Package format holds the conformance specs of the message format the target sends and accepts (area format).
package format

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// formatReqs are the message-format requirements checked on everything the target sends.
var formatReqs = []string{"FMT-001", "FMT-002", "FMT-003", "FMT-004", "FMT-005", "FMT-006", "FMT-007", "ID-004"}

// Message format: every message the target delivers is checked by spec.Validator (in every
// scenario); this scenario drives one of each kind and reports the format requirements.
var _ = Describe("Message format", Area("format"), func() {

	It("delivers only well-formed messages through a complete call", Req(formatReqs...), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mon := e.MustConnect("FMT-001", "monitor", ConnOptions{})
		if e.Decl.Claims(FeatureEvents) {
			Harness(mon.Subscribe(e.Topics.Events()+"/#", 0), "subscribe events")
		}
		out := alice.Call(bob.ID(), MustOffer("safari-av-offer"))
		inv := bob.Invite("SESS-002")
		c, cancel := e.OpContext()
		defer cancel()
		hold := 10
		Harness(inv.Pranswer(c, endpoint.PranswerOptions{HoldTimeout: &hold}), "pranswer")
		in, err := inv.Accept(c, MustAnswer("safari-av-offer"))
		Harness(err, "accept")
		_, err = alice.Await(out)
		Harness(err, "answer")
		for _, cand := range MustCandidates("caller-full")[:4] {
			Harness(out.SendCandidate(c, cand), "candidate")
		}
		Harness(in.Send(c, MustChat("formats")), "chat")
		Harness(out.Stop(c, "done"), "stop")
		bob.Need("SESS-008", "STOP_SESSION at bob", And(IsMethod(spec.MethodStopSession), InSession(in.ID())))
		unknown := alice.Call(e.ID("nobody"), MustOffer("chrome-audio-offer"))
		alice.Need("SESS-003", "FAILURE for an unknown callee", IsResponse(spec.MethodStartSession, unknown.TransID()))
		time.Sleep(e.Quiet() / 2)

		v := spec.Validator{Topics: e.Topics, Profile: spec.Profile(e.Decl.Profile)}
		byReq := map[string][]string{}
		n := 0
		var msgs []Msg
		msgs = append(msgs, alice.Inbox().All()...)
		msgs = append(msgs, bob.Inbox().All()...)
		msgs = append(msgs, mon.Inbox().All()...)
		for _, m := range msgs {
			n++
			for _, viol := range v.Validate(m.Topic, m.Payload) {
				byReq[viol.Requirement] = append(byReq[viol.Requirement], fmt.Sprintf("%s (%s: %s)", viol.Actual, m.Topic, Brief(m.Payload)))
			}
		}
		Harness(ErrIf(n < 8, "too few messages to judge the format"), "harness")
		for _, id := range formatReqs {
			Check(id, len(byReq[id]) == 0, fmt.Sprintf("every one of the %d messages delivered meets %s", n, id),
				"%s", strings.Join(First(byReq[id], 3), "; "))
		}
	}, SpecTimeout(time.Minute))
})
