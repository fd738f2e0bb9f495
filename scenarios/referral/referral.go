// Package referral holds the conformance specs of referral and third-party call control (area referral).
package referral

import (
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Referral and third-party call control (rtcomm.service.proto.spec.md; lib.rtcomm.node).
var _ = Describe("Referral and third-party call control", Area("referral"), func() {
	for _, sh := range Shapes {

		It(sh.In("places a call on 3PCC_PLACE_CALL: REFER to the caller, a session to the callee, SUCCESS to the requester"), Req("REF-001", "REF-002", "REF-003", "REF-004", "REF-005", "REF-006"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := NewController(e)
			tid := ctl.Place(alice.ID(), bob.ID())

			ref := AwaitRefer(e, alice)
			rm := ref.Message()
			Check("REF-003", rm.TransID != "" && rm.FromTopic != "" && rm.ToEndpointID == bob.ID() && len(rm.Details) > 0,
				"REFER with transID, fromTopic, toEndpointID "+bob.ID()+" and details", "%s", MessageString(rm))
			if e.Decl.Profile == ProfileClient {
				var d spec.ReferDetails
				derr := json.Unmarshal(rm.Details, &d)
				Check("REF-004", derr == nil && d.SessionID != "" && d.ToEndpointID == bob.ID() && strings.HasPrefix(e.Topics.Resolve(rm.FromTopic), e.Path),
					"details {sessionID, toEndpointID: "+bob.ID()+"} and a fromTopic under "+e.Path, "%s", MessageString(rm))
			}
			c, cancel := e.OpContext()
			defer cancel()
			_, err := ref.Accept(c, endpoint.WithPayload(MustOffer("chrome-audio-offer")))
			Harness(err, "accept REFER")
			inv := bob.Invite("REF-005")
			Check("REF-006", inv.Message().SigSessID == ref.Details().SessionID, "the referred session uses details.sessionID",
				"%q vs %q", inv.Message().SigSessID, ref.Details().SessionID)
			_, err = inv.Accept(c, MustAnswer("chrome-audio-offer"))
			Harness(err, "accept")
			am, ok := ctl.Response(e, tid)
			Check("REF-005", ok, "RESPONSE to 3PCC_PLACE_CALL at "+ctl.From, "%s", ctl.Inbox().Summary())
			a := am.Decode()
			Check("REF-005", am.Topic == ctl.From && a.Result == spec.ResultSuccess && a.TransID == tid,
				"SUCCESS with transID "+tid+" at "+ctl.From+" exactly", "%s at %s", MessageString(a), am.Topic)
			if e.Decl.Profile == ProfileClient {
				time.Sleep(e.Quiet()) // whatever the connector publishes after its answer lands too
				var bad []string
				for _, m := range e.Tap().Inbox().All() {
					if m.Topic == ctl.CC && m.Decode() == nil {
						bad = append(bad, Brief(m.Payload))
					}
				}
				Check("REF-002", len(bad) == 0, "only JSON objects on "+ctl.CC, "%v", bad)
			}
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers the requester FAILURE with a reason when the referred call is rejected"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := NewController(e)
			tid, _, inv := ReferredCall(e, ctl, alice, bob)
			c, cancel := e.OpContext()
			defer cancel()
			Harness(inv.Reject(c, "not now"), "reject")
			am, ok := ctl.Response(e, tid)
			a := am.Decode()
			Check("REF-005", ok && am.Topic == ctl.From && a.Result == spec.ResultFailure && a.Reason != "",
				"FAILURE with a reason at "+ctl.From, "%s", ctl.Inbox().Summary())
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers FAILURE when the caller refuses the REFER"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := NewController(e)
			tid := ctl.Place(alice.ID(), bob.ID())
			ref := AwaitRefer(e, alice)
			c, cancel := e.OpContext()
			defer cancel()
			Harness(ref.Reject(c, "busy"), "reject REFER")
			am, ok := ctl.Response(e, tid)
			a := am.Decode()
			Check("REF-005", ok && a.Result == spec.ResultFailure && a.Reason != "", "FAILURE with a reason", "%s", ctl.Inbox().Summary())
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers FAILURE to a 3PCC_PLACE_CALL for an unregistered caller"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			ctl := NewController(e)
			tid := ctl.Place(e.ID("ghost"), bob.ID())
			am, ok := ctl.Response(e, tid)
			a := am.Decode()
			Check("REF-005", ok && am.Topic == ctl.From && a.Result == spec.ResultFailure && a.Reason != "",
				"FAILURE with a reason at "+ctl.From, "%s", ctl.Inbox().Summary())
		}, SpecTimeout(time.Minute))
	}
})
