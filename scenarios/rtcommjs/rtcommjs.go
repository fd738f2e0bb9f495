// Package rtcommjs holds the conformance specs of the session, referral and registration flows with rtcomm.js-shaped parties (areas sessions, referral, registration).
package rtcommjs

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	"github.com/onsi/gomega"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// The same flows as the Go-native scenarios, with parties shaped like the official web
// client (PartyOptions.Shape = endpoint.ShapeRtcommJS): what a target must take from
// rtcomm.js 1.0.x on the wire, e.g. two PRANSWERs, trickled candidates carrying the
// START_SESSION's transID, RESPONSEs with fromTopic null, STOP_SESSION without a reason, a
// REFER answered after the referred session, presence groups, a reset 500 ms after
// DOCUMENT_REPLACED. The call-queue scenarios (queues.go) mix both kinds of agent.

// candidateLine is the candidate string of an icecandidate MESSAGE ("" otherwise).
func candidateLine(m Msg) string {
	d := m.Decode()
	if d == nil {
		return ""
	}
	w, ok, _ := d.WebRTC()
	if !ok || w.Candidate == nil {
		return ""
	}
	return w.Candidate.Candidate
}

// asRejected reports whether err is the callee's (or connector's) FAILURE.
func asRejected(err error, rej **endpoint.Rejected) bool { return errors.As(err, rej) }

var _ = Describe("Sessions with rtcomm.js-shaped parties", Area("sessions"), func() {

	It("relays an rtcomm.js call: two PRANSWERs, candidates with the START_SESSION's transID, the answer, Busy, STOP_SESSION", Req("SESS-002", "SESS-004", "SESS-005", "SESS-006", "SESS-008", "ICE-002", "ICE-003", "ICE-005"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", JS())
		alice := e.Party("alice", JS())
		carol := e.Party("carol", JS())
		out := alice.Call(bob.ID(), MustOffer("chrome-av-offer"))
		inv := bob.Invite("SESS-002")
		That("SESS-002", inv.Caller(), gomega.Equal(alice.ID()), "START_SESSION at a topic ending in /"+alice.ID())
		// rtcomm.js PRANSWERs twice (no payload, then {type: pranswer, sdp: ""}): both reach alice.
		for i := 0; i < 2; i++ {
			pm := alice.Expect("SESS-005", "both PRANSWERs at alice", And(IsMethod(spec.MethodPranswer), InSession(out.ID())))
			That("SESS-005", pm.Sender(), gomega.Equal(bob.ID()), "PRANSWER at a topic ending in /"+bob.ID())
			if !RouteOnly(e) { // route-only forwards with the callee's own fromTopic (SESS-006 n/a)
				That("SESS-006", pm.Decode().FromTopic, gomega.Not(gomega.Equal(bob.Address())), "PRANSWER fromTopic rewritten to the connector's")
			}
		}
		c, cancel := e.OpContext()
		defer cancel()
		cands := MustCandidates("caller-full")[:3]
		for _, cd := range cands { // held until the PRANSWER, then sent with the START_SESSION's transID
			Harness(out.SendCandidate(c, cd), "candidate")
		}
		for _, cd := range cands {
			m := bob.Expect("ICE-003", "alice's candidate "+cd.Candidate[:20]+" at bob",
				And(IsMethod(spec.MethodMessage), InSession(out.ID())))
			That("ICE-005", candidateLine(m), gomega.Equal(cd.Candidate), "candidates in the order sent")
		}
		// A second call to bob while he is in one: rtcomm.js answers FAILURE "Busy".
		busy := carol.Call(bob.ID(), MustOffer("chrome-audio-offer"))
		_, err := carol.Await(busy)
		var rej *endpoint.Rejected
		Check("SESS-004", asRejected(err, &rej) && rej.Reason == "Busy", "bob's FAILURE \"Busy\" relayed to carol", "%v", err)
		in, err := inv.Accept(c, MustAnswer("chrome-av-offer")) // RESPONSE with fromTopic null
		Harness(err, "accept")
		resp, err := alice.Await(out)
		Check("SESS-004", err == nil && PayloadEqual(resp.Payload, MustAnswer("chrome-av-offer")), "the answer relayed to alice unchanged", "%v", err)
		for _, cd := range MustCandidates("callee-full")[:2] {
			Harness(in.SendCandidate(c, cd), "candidate")
			m := alice.Expect("ICE-002", "bob's candidate after the answer at alice", And(IsMethod(spec.MethodMessage), InSession(out.ID())))
			That("ICE-002", candidateLine(m), gomega.Equal(cd.Candidate), "candidate unchanged")
		}
		Harness(out.Stop(c, ""), "stop") // no reason, payload null
		bob.Expect("SESS-008", "STOP_SESSION at bob", And(IsMethod(spec.MethodStopSession), InSession(out.ID())))
	}, SpecTimeout(time.Minute))
})

var _ = Describe("Referral with rtcomm.js-shaped parties", Area("referral"), func() {

	It("completes 3PCC with an rtcomm.js caller, which answers the REFER only after the referred session is answered", Req("REF-003", "REF-005", "REF-006"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		Needs(e, Feature3PCC)
		bob := e.Party("bob", JS())
		alice := e.Party("alice", JS())
		ctl := NewController(e)
		tid, ref, inv := ReferredCall(e, ctl, alice, bob) // alice answers the REFER only after bob does
		c, cancel := e.OpContext()
		defer cancel()
		Check("REF-006", inv.Message().SigSessID == ref.Details().SessionID, "the referred session uses details.sessionID",
			"%q vs %q", inv.Message().SigSessID, ref.Details().SessionID)
		_, err := inv.Accept(c, MustAnswer("chrome-audio-offer"))
		Harness(err, "accept")
		am, ok := ctl.Response(e, tid)
		a := am.Decode()
		Check("REF-005", ok && am.Topic == ctl.From && a.Result == spec.ResultSuccess && a.TransID == tid,
			"SUCCESS with transID "+tid+" at "+ctl.From+" though the REFER is answered after the session", "%s", ctl.Inbox().Summary())
	}, SpecTimeout(2*time.Minute))
})

var _ = Describe("Registration with rtcomm.js-shaped parties", Area("registration"), func() {

	It("routes to a presence group, replaces it and, in the client profile, survives the replaced client's reset", Req("REG-006", "REG-007", "REG-008", "REG-009"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		id := e.ID("bob")
		older := e.Party("bob-old", PartyOptions{ID: id, Shape: endpoint.ShapeRtcommJS, PresenceGroup: "agents"})
		alice := e.Party("alice", JS())
		reach := func(p *Party, req, expected string) {
			GinkgoHelper()
			Check(req, Reachable(e, alice, p, req), expected, "nothing arrived; %s received %s", p.Role, p.Inbox().Summary())
		}
		reach(older, "REG-006", "a call reaches bob registered in the presence group agents")
		newer := e.Party("bob-new", PartyOptions{ID: id, Shape: endpoint.ShapeRtcommJS, PresenceGroup: "agents"})
		older.Expect("REG-007", "DOCUMENT_REPLACED at the older registrant", IsMethod(spec.MethodDocumentReplaced))
		// rtcomm.js resets 500 ms later: clears the presence topic the newcomer registered on.
		select {
		case <-older.Done():
		case <-time.After(e.Reply()):
			Harness(ErrNoAnswer, "the replaced rtcomm.js-shaped party did not reset")
		}
		if e.Decl.Profile == ProfileClient {
			time.Sleep(e.Quiet())
			reach(newer, "REG-009", "the newcomer stays reachable after the replaced client cleared its presence topic")
		}
		c, cancel := e.OpContext()
		defer cancel()
		Harness(newer.Endpoint.Unregister(c), "unregister") // the empty retained message on sphere/agents/<id>
		time.Sleep(e.Quiet())
		gone := alice.Call(id, MustOffer("chrome-audio-offer"))
		_, err := alice.Await(gone)
		var rej *endpoint.Rejected
		Check("REG-008", asRejected(err, &rej), "a call to the unregistered bob answered FAILURE", "%v", err)
	}, SpecTimeout(time.Minute))
})
