package referral

import (
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// controller is a 3PCC service client shaped like lib.rtcomm.node: its fromTopic is a bare
// client ID outside the topic path, and it publishes to the call-control topic exactly.
type controller struct {
	*Conn
	from string
	cc   string
	ver  string // rtcommVer: lib.rtcomm.node's v0.0.1 in the client profile (lib/3pcc.js startCall)
}

// newController connects a 3PCC requester and finds the call-control topic in the service
// query answer (default <path>callControl).
func newController(e *Env) *controller {
	GinkgoHelper()
	c, err := e.Connect("controller", ConnOptions{Validate: true})
	Harness(err, "harness: connect the 3PCC controller")
	from := "ctl-" + e.Tag
	e.Watch(from)
	e.Watch(from + "/#")
	Harness(c.Subscribe(from, 0), "subscribe")
	Harness(c.Subscribe(from+"/#", 0), "subscribe")
	cc := e.Topics.CallControl()
	probe := e.Prober("ccprobe")
	_, resp := probe.Answer("SQ-002", probe.Query())
	if s, ok := resp.Services[spec.ServiceCallControl]; ok && s.Topic != "" {
		cc = e.Topics.Resolve(s.Topic)
	}
	ver := spec.Version
	if e.Decl.Profile == ProfileClient {
		ver = spec.ServiceLibVersion // what the official library sends: a target must take it FMT-003
	}
	return &controller{Conn: c, from: from, cc: cc, ver: ver}
}

// place publishes 3PCC_PLACE_CALL and returns its transID.
func (c *controller) place(caller, callee string) string {
	GinkgoHelper()
	tid := randomUUID()
	Harness(c.Send(c.cc, &spec.Message{Method: spec.Method3PCCPlaceCall, RtcommVer: c.ver, TransID: tid, FromTopic: c.from,
		CallerEndpoint: caller, CalleeEndpoint: callee}), "publish 3PCC_PLACE_CALL")
	return tid
}

// answer waits up to 45 s (lib.rtcomm.node's timeout) for the RESPONSE to transID.
func (c *controller) answer(e *Env, tid string) (Msg, bool) {
	return c.Inbox().Await(e.Ctx, min(45*time.Second, e.Reply()*3), IsResponse(spec.Method3PCCPlaceCall, tid))
}

// needs skips a scenario whose feature the target does not claim (NewEnv already does so for
// every feature a named requirement belongs to; kept for scenarios that gate a step on it).
func needs(e *Env, f Feature) {
	GinkgoHelper()
	if !e.Decl.Claims(f) {
		NotClaimed(f)
	}
}

// awaitRefer returns the REFER the connector sends caller after a 3PCC_PLACE_CALL (REF-003).
func awaitRefer(e *Env, caller *Party) *endpoint.Refer {
	select {
	case ref := <-caller.Refers():
		return ref
	case <-time.After(e.Reply()):
		precondition("REF-003", "REFER at the caller "+caller.ID(), "nothing within %s; %s received %s", e.Reply(), caller.ID(), caller.Inbox().Summary())
		return nil // not reached: precondition fails the spec
	}
}

// referredCall has ctl ask the connector to make caller call callee: it awaits the REFER
// (REF-003), accepts it with an offer and returns the callee's invite (REF-005).
func referredCall(e *Env, ctl *controller, caller, callee *Party) (tid string, ref *endpoint.Refer, inv *endpoint.Invite) {
	GinkgoHelper()
	tid = ctl.place(caller.ID(), callee.ID())
	ref = awaitRefer(e, caller)
	c, cancel := e.opCtx()
	defer cancel()
	_, err := ref.Accept(c, endpoint.WithPayload(mustOffer("chrome-audio-offer")))
	Harness(err, "accept REFER")
	return tid, ref, callee.Invite("REF-005")
}

// Referral and third-party call control (rtcomm.service.proto.spec.md; lib.rtcomm.node).
var _ = Describe("Referral and third-party call control", Area("referral"), func() {
	for _, sh := range Shapes {

		It(sh.In("places a call on 3PCC_PLACE_CALL: REFER to the caller, a session to the callee, SUCCESS to the requester"), Req("REF-001", "REF-002", "REF-003", "REF-004", "REF-005", "REF-006"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := newController(e)
			tid := ctl.place(alice.ID(), bob.ID())

			ref := awaitRefer(e, alice)
			rm := ref.Message()
			Check("REF-003", rm.TransID != "" && rm.FromTopic != "" && rm.ToEndpointID == bob.ID() && len(rm.Details) > 0,
				"REFER with transID, fromTopic, toEndpointID "+bob.ID()+" and details", "%s", describe(rm))
			if e.Decl.Profile == ProfileClient {
				var d spec.ReferDetails
				derr := json.Unmarshal(rm.Details, &d)
				Check("REF-004", derr == nil && d.SessionID != "" && d.ToEndpointID == bob.ID() && strings.HasPrefix(e.Topics.Resolve(rm.FromTopic), e.Path),
					"details {sessionID, toEndpointID: "+bob.ID()+"} and a fromTopic under "+e.Path, "%s", describe(rm))
			}
			c, cancel := e.opCtx()
			defer cancel()
			_, err := ref.Accept(c, endpoint.WithPayload(mustOffer("chrome-audio-offer")))
			Harness(err, "accept REFER")
			inv := bob.Invite("REF-005")
			Check("REF-006", inv.Message().SigSessID == ref.Details().SessionID, "the referred session uses details.sessionID",
				"%q vs %q", inv.Message().SigSessID, ref.Details().SessionID)
			_, err = inv.Accept(c, mustAnswer("chrome-audio-offer"))
			Harness(err, "accept")
			am, ok := ctl.answer(e, tid)
			Check("REF-005", ok, "RESPONSE to 3PCC_PLACE_CALL at "+ctl.from, "%s", ctl.Inbox().Summary())
			a := am.Decode()
			Check("REF-005", am.Topic == ctl.from && a.Result == spec.ResultSuccess && a.TransID == tid,
				"SUCCESS with transID "+tid+" at "+ctl.from+" exactly", "%s at %s", describe(a), am.Topic)
			if e.Decl.Profile == ProfileClient {
				time.Sleep(e.Quiet()) // whatever the connector publishes after its answer lands too
				var bad []string
				for _, m := range e.Tap().Inbox().All() {
					if m.Topic == ctl.cc && m.Decode() == nil {
						bad = append(bad, brief(m.Payload))
					}
				}
				Check("REF-002", len(bad) == 0, "only JSON objects on "+ctl.cc, "%v", bad)
			}
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers the requester FAILURE with a reason when the referred call is rejected"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := newController(e)
			tid, _, inv := referredCall(e, ctl, alice, bob)
			c, cancel := e.opCtx()
			defer cancel()
			Harness(inv.Reject(c, "not now"), "reject")
			am, ok := ctl.answer(e, tid)
			a := am.Decode()
			Check("REF-005", ok && am.Topic == ctl.from && a.Result == spec.ResultFailure && a.Reason != "",
				"FAILURE with a reason at "+ctl.from, "%s", ctl.Inbox().Summary())
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers FAILURE when the caller refuses the REFER"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			ctl := newController(e)
			tid := ctl.place(alice.ID(), bob.ID())
			ref := awaitRefer(e, alice)
			c, cancel := e.opCtx()
			defer cancel()
			Harness(ref.Reject(c, "busy"), "reject REFER")
			am, ok := ctl.answer(e, tid)
			a := am.Decode()
			Check("REF-005", ok && a.Result == spec.ResultFailure && a.Reason != "", "FAILURE with a reason", "%s", ctl.Inbox().Summary())
		}, SpecTimeout(2*time.Minute))

		It(sh.In("answers FAILURE to a 3PCC_PLACE_CALL for an unregistered caller"), Req("REF-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			ctl := newController(e)
			tid := ctl.place(e.ID("ghost"), bob.ID())
			am, ok := ctl.answer(e, tid)
			a := am.Decode()
			Check("REF-005", ok && am.Topic == ctl.from && a.Result == spec.ResultFailure && a.Reason != "",
				"FAILURE with a reason at "+ctl.from, "%s", ctl.Inbox().Summary())
		}, SpecTimeout(time.Minute))
	}
})
