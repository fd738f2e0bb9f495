// Package sessions holds the conformance specs of offer/answer sessions (area sessions).
package sessions

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	"github.com/onsi/gomega"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// relayedInPath reports whether the connector stays in the signaling path: the
// START_SESSION it forwarded carries its own fromTopic instead of the caller's address.
func relayedInPath(start *spec.Message, callerAddr string) bool {
	return start != nil && start.FromTopic != "" && start.FromTopic != callerAddr
}

// audioCall starts a scenario from an established call through a connector: alice (the
// caller) and bob, both of party shape sh, on the Chrome audio offer and answer.
func audioCall(ctx SpecContext, sh PartyShape) (e *Env, alice, bob *Party, out, in *endpoint.Session) {
	GinkgoHelper()
	e = NewEnv(ctx, WithConnector())
	bob = e.Party("bob", sh.O())
	alice = e.Party("alice", sh.O())
	out, in = e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
	return e, alice, bob, out, in
}

// Offer/answer (PROTOCOL.md, "Flows: Call").
var _ = Describe("Offer/answer", Area("sessions"), func() {
	for _, sh := range Shapes {

		It(sh.In("forwards START_SESSION to the callee's address with the caller ID as last level and its fields unchanged"), Req("SESS-001", "SESS-002", "SESS-004", "ID-004"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			offer := MustOffer("chrome-av-offer")
			out := alice.Call(bob.ID(), offer, endpoint.WithProtocols(spec.ProtoWebRTC, spec.ProtoChat))
			sent := out.Start()
			m := bob.Expect("SESS-002", "START_SESSION at "+bob.Address()+"/"+alice.ID(), IsStartSession(sent.SigSessID))
			got := m.Decode()
			That("SESS-002", m.Topic, gomega.HavePrefix(bob.Address()+"/"), "delivered under bob's address "+bob.Address())
			That("ID-004", m.Sender(), gomega.Equal(alice.ID()), "last topic level = the caller's ID "+alice.ID())
			That("SESS-002", got.TransID, gomega.Equal(sent.TransID), "transID "+sent.TransID+" unchanged")
			That("SESS-002", got.Payload, EqualPayload(sent.Payload), "the offer payload unchanged")
			That("SESS-002", got.Protocols, gomega.Equal(sent.Protocols), "protocols "+QuoteList(sent.Protocols)+" unchanged")
			That("SESS-002", got.ToEndpointID, gomega.Or(gomega.BeEmpty(), gomega.Equal(bob.ID())), "toEndpointID (if kept) still "+bob.ID())
			// Exactly once: rtcomm.js answers a second copy "Busy" and so rejects its own call.
			dups := bob.Inbox().Collect(e.Ctx, e.Quiet(), 0, IsStartSession(sent.SigSessID))
			Check("SESS-002", len(dups) == 0, "the START_SESSION delivered to "+bob.ID()+" exactly once",
				"%d further cop(ies): %v", len(dups), First(MsgStrings(dups), 2))
			inv := bob.Invite("SESS-002")
			c, cancel := e.OpContext()
			defer cancel()
			_, err := inv.Accept(c, MustAnswer("chrome-av-offer"))
			Harness(err, "accept")
			_, err = alice.Await(out)
			Check("SESS-004", err == nil, "the call is answered", "%v", err)
		}, SpecTimeout(time.Minute))

		It(sh.In("relays PRANSWER with holdTimeout and queuePosition, then the answer, unchanged, at a topic ending in the callee's ID"), Req("SESS-004", "SESS-005", "SESS-010", "SESS-014"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			out := alice.Call(bob.ID(), MustOffer("firefox-av-offer"))
			inv := bob.Invite("SESS-002")
			hold, pos := 20, 2
			c, cancel := e.OpContext()
			defer cancel()
			isPranswer := And(IsMethod(spec.MethodPranswer), InSession(out.ID()))
			if sh.JS() {
				// rtcomm.js PRANSWERs on its own at once (twice for a webrtc offer); the one
				// under test comes after those.
				alice.Inbox().Collect(e.Ctx, e.Reply(), 2, isPranswer)
			}
			mark := alice.Inbox().Mark()
			Harness(inv.Pranswer(c, endpoint.PranswerOptions{HoldTimeout: &hold, QueuePosition: &pos}), "pranswer")
			pm := alice.Expect("SESS-005", "PRANSWER at alice", And(isPranswer, After(mark)))
			pr := pm.Decode()
			That("SESS-005", pm.Sender(), gomega.Equal(bob.ID()), "PRANSWER at a topic ending in /"+bob.ID())
			Check("SESS-005", pr.HoldTimeout != nil && *pr.HoldTimeout == hold && pr.QueuePosition != nil && *pr.QueuePosition == pos,
				"holdTimeout 20 and queuePosition 2 unchanged", "%s", MessageString(pr))
			answer := MustAnswer("firefox-av-offer")
			_, err := inv.Accept(c, answer)
			Harness(err, "accept")
			rm := alice.Expect("SESS-004", "RESPONSE SUCCESS at alice", IsResponse(spec.MethodStartSession, out.TransID()))
			r := rm.Decode()
			That("SESS-004", rm.Sender(), gomega.Equal(bob.ID()), "RESPONSE at a topic ending in /"+bob.ID())
			Check("SESS-004", r.Result == spec.ResultSuccess && r.SigSessID == out.ID() && PayloadEqual(r.Payload, answer),
				"result SUCCESS, sigSessID "+out.ID()+", the answer payload unchanged", "%s", MessageString(r))
		}, SpecTimeout(time.Minute))

		It(sh.In("relays the callee's rejection as RESPONSE FAILURE with its reason"), Req("SESS-004"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			alice := e.Party("alice", sh.O())
			// rtcomm.js rejects with fromTopic null, payload null and its protocols (SigSession.js respond).
			bob := e.Party("bob", sh.O())
			out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
			inv := bob.Invite("SESS-002")
			c, cancel := e.OpContext()
			defer cancel()
			Harness(inv.Reject(c, "busy here"), "reject")
			rm := alice.Expect("SESS-004", "RESPONSE FAILURE at alice", IsResponse(spec.MethodStartSession, out.TransID()))
			r := rm.Decode()
			Check("SESS-004", rm.Sender() == bob.ID() && r.Result == spec.ResultFailure && r.Reason == "busy here" && r.SigSessID == out.ID(),
				"FAILURE with reason \"busy here\" and sigSessID "+out.ID()+" at a topic ending in /"+bob.ID(), "%s at %s", MessageString(r), rm.Topic)
		}, SpecTimeout(time.Minute))

		It(sh.In("answers a call to an unregistered callee with RESPONSE FAILURE and a reason"), Req("SESS-003"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			alice := e.Party("alice", sh.O())
			nobody := e.ID("nobody")
			out := alice.Call(nobody, MustOffer("chrome-audio-offer"))
			rm := alice.Expect("SESS-003", "RESPONSE FAILURE for a call to "+nobody, IsResponse(spec.MethodStartSession, out.TransID()))
			r := rm.Decode()
			Check("SESS-003", r.Result == spec.ResultFailure && strings.TrimSpace(r.Reason) != "", "result FAILURE with a reason",
				"%s", MessageString(r))
		}, SpecTimeout(time.Minute))

		It(sh.In("rewrites fromTopic to its own topic on every message it relays when it stays in the path"), Req("SESS-006"), func(ctx SpecContext) {
			e, alice, bob, out, in := audioCall(ctx, sh)
			var start *spec.Message
			for _, m := range bob.Inbox().All() {
				if d := m.Decode(); d != nil && d.Method == spec.MethodStartSession {
					start = d
				}
			}
			if !relayedInPath(start, alice.Address()) {
				NotApplicable("the connector forwards START_SESSION with the caller's fromTopic: it does not stay in the path")
			}
			c, cancel := e.OpContext()
			defer cancel()
			Harness(in.Send(c, MustChat("hello from bob")), "send")
			Harness(out.Send(c, MustChat("hello from alice")), "send")
			alice.Need("MSG-002", "bob's MESSAGE at alice", And(IsMethod(spec.MethodMessage), InSession(out.ID())))
			bob.Need("MSG-002", "alice's MESSAGE at bob", And(IsMethod(spec.MethodMessage), InSession(out.ID())))
			var leaks []string
			for _, p := range []*Party{alice, bob} {
				peer := bob.Address()
				if p == bob {
					peer = alice.Address()
				}
				for _, m := range p.Inbox().All() {
					d := m.Decode()
					if d == nil || d.FromTopic == "" || d.Method == spec.MethodResponse && d.Orig == spec.MethodServiceQuery {
						continue
					}
					if d.FromTopic == peer {
						leaks = append(leaks, string(d.Method)+" at "+p.ID()+" carries the peer's address "+peer)
					}
				}
			}
			Check("SESS-006", len(leaks) == 0, "every relayed message carries the connector's fromTopic", "%s", strings.Join(leaks, "; "))
		}, SpecTimeout(time.Minute))

		It(sh.In("never adds a transID to a relayed message that had none"), Req("SESS-007"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			if e.Decl.Profile != ProfileClient {
				NotApplicable("SESS-007 holds connectors to rtcomm.js behaviour (profile client)")
			}
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			out, in := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
			c, cancel := e.OpContext()
			defer cancel()
			Harness(out.Send(c, MustChat("no transID here")), "send")
			m := bob.Need("MSG-002", "alice's MESSAGE at bob", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
			Check("SESS-007", m.Decode().TransID == "", "the relayed MESSAGE without transID", "%s", Brief(m.Payload))
			Harness(out.Stop(c, "bye"), "stop")
			sm := bob.Need("SESS-008", "STOP_SESSION at bob", And(IsMethod(spec.MethodStopSession), InSession(in.ID())))
			Check("SESS-007", sm.Decode().TransID == "", "the relayed STOP_SESSION without transID", "%s", Brief(sm.Payload))
		}, SpecTimeout(time.Minute))

		It(sh.In("routes STOP_SESSION from the caller to the callee and answers nothing"), Req("SESS-008", "SESS-011", "SESS-012"), func(ctx SpecContext) {
			e, alice, bob, out, in := audioCall(ctx, sh)
			c, cancel := e.OpContext()
			defer cancel()
			mark := alice.Inbox().Mark()
			Harness(out.Stop(c, "hang up"), "stop")
			sm := bob.Expect("SESS-008", "STOP_SESSION at bob", And(IsMethod(spec.MethodStopSession), InSession(in.ID())))
			// rtcomm.js sends no reason (SigSession.js stop); a reason sent is relayed.
			Check("SESS-008", sm.Sender() == alice.ID() && (sh.JS() || sm.Decode().Reason == "hang up"), "STOP_SESSION from "+alice.ID()+" (with its reason, if it gave one)",
				"%s at %s", Brief(sm.Payload), sm.Topic)
			alice.ExpectNone("SESS-008", "no reply to STOP_SESSION", And(After(mark), InSession(out.ID())))
		}, SpecTimeout(time.Minute))

		It(sh.In("routes STOP_SESSION from the callee to the caller and answers nothing"), Req("SESS-008"), func(ctx SpecContext) {
			e, alice, bob, out, in := audioCall(ctx, sh)
			c, cancel := e.OpContext()
			defer cancel()
			mark := bob.Inbox().Mark()
			Harness(in.Stop(c, "callee hangs up"), "stop")
			sm := alice.Expect("SESS-008", "STOP_SESSION at alice", And(IsMethod(spec.MethodStopSession), InSession(out.ID())))
			That("SESS-008", sm.Sender(), gomega.Equal(bob.ID()), "STOP_SESSION at a topic ending in /"+bob.ID())
			bob.ExpectNone("SESS-008", "no reply to STOP_SESSION", And(After(mark), InSession(in.ID())))
		}, SpecTimeout(time.Minute))

		It(sh.In("reaps a session not answered within the PRANSWER's holdTimeout, no sooner, with FAILURE and a reason"), Req("SESS-009"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			SkipUnlessInPath(e, "only a connector in the path sees the PRANSWER and the answer")
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
			inv := bob.Invite("SESS-002")
			const hold = 2
			c, cancel := e.OpContext()
			defer cancel()
			Harness(inv.Pranswer(c, endpoint.PranswerOptions{HoldTimeout: ptr(hold)}), "pranswer")
			alice.Need("SESS-005", "PRANSWER at alice", And(IsMethod(spec.MethodPranswer), InSession(out.ID())))
			t0 := time.Now()
			// Nobody answers: after holdTimeout the connector (which stays in the path) reaps the session.
			m, ok := alice.Inbox().Await(e.Ctx, hold*time.Second+e.Reply(), IsResponse(spec.MethodStartSession, out.TransID()))
			waited := time.Since(t0)
			Check("SESS-009", ok, fmt.Sprintf("RESPONSE FAILURE to alice about %d s after the PRANSWER", hold), "%s", alice.Inbox().Summary())
			r := m.Decode()
			Check("SESS-009", r.Result == spec.ResultFailure && strings.TrimSpace(r.Reason) != "", "the reaped call ends in FAILURE with a reason",
				"%s", MessageString(r))
			// A callee may answer until the declared timeout: reaping at a fraction of it drops live calls.
			Check("SESS-009", waited >= hold*time.Second*8/10, fmt.Sprintf("no reaping before the %d s holdTimeout", hold),
				"FAILURE %s after the PRANSWER", waited.Round(time.Millisecond))
			_, ok = bob.Inbox().Await(e.Ctx, e.Reply(), And(IsMethod(spec.MethodStopSession), InSession(out.ID())))
			Check("SESS-009", ok, "STOP_SESSION to bob", "%s", bob.Inbox().Summary())
		}, SpecTimeout(time.Minute))

		It(sh.In("keeps a call ringing without PRANSWER for several seconds, and one with a PRANSWER until half its holdTimeout"), Req("SESS-009"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			// rtcomm.js waits 5 s for a first reply; the harness's default may be shorter.
			alice := e.Party("alice", sh.O(PartyOptions{Configure: func(c *endpoint.Config) { c.PranswerTimeout = ringRing + time.Second }}))
			// Without PRANSWER the final timeout is 30 s; a callee that takes its time (here
			// ringRing, within rtcomm.js's 5 s wait for a first reply) must still get through. A
			// reaper at a tenth of 30 s drops it.
			out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
			inv := bob.Invite("SESS-002")
			time.Sleep(ringRing)
			c, cancel := e.OpContext()
			defer cancel()
			// A reaped call cannot be accepted any more: that is the violation, not a harness error.
			_, err := inv.Accept(c, MustAnswer("chrome-audio-offer"))
			if err == nil {
				_, err = alice.Await(out)
			}
			Check("SESS-009", err == nil, fmt.Sprintf("the call answered %s after START_SESSION (final timeout 30 s) succeeds", ringRing), "%v", err)
			// With a PRANSWER holdTimeout of 4 s, answering at 2 s must succeed too.
			const hold = 4
			dave := e.Party("dave", sh.O())
			carol := e.Party("carol", sh.O())
			out2 := carol.Call(dave.ID(), MustOffer("chrome-audio-offer"))
			inv2 := dave.Invite("SESS-002")
			Harness(inv2.Pranswer(c, endpoint.PranswerOptions{HoldTimeout: ptr(hold)}), "pranswer")
			time.Sleep(hold * time.Second / 2)
			c2, cancel2 := e.OpContext()
			defer cancel2()
			_, err = inv2.Accept(c2, MustAnswer("chrome-audio-offer"))
			if err == nil {
				_, err = carol.Await(out2)
			}
			Check("SESS-009", err == nil, fmt.Sprintf("the call answered %d s after a PRANSWER with holdTimeout %d succeeds", hold/2, hold), "%v", err)
		}, SpecTimeout(time.Minute))
	}
})

// ringRing is how long SESS-009's callee lets an un-PRANSWERed call ring: well within the
// 30 s final timeout, and longer than a reaper at a tenth of it allows.
const ringRing = 4 * time.Second

func ptr[T any](v T) *T { return &v }
