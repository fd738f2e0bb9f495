// Package messages holds the conformance specs of in-session messages (area messages).
package messages

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
	. "github.com/onsi/ginkgo/v2" //nolint:revive
	"github.com/onsi/gomega"

	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// In-session MESSAGE (PROTOCOL.md, "Messages": MESSAGE carries ICE candidates,
// renegotiation and user data).
var _ = Describe("In-session messages", Area("messages"), func() {

	It("relays chat and unknown fields unchanged, at a topic ending in the sender's ID", Req("MSG-001", "MSG-002"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		out, in := e.Connected(alice, bob, MustOffer("chrome-datachannel-offer"), MustAnswer("chrome-datachannel-offer"))
		chat := MustChat("hello, alice")
		m := &spec.Message{Method: spec.MethodMessage, FromTopic: bob.Address(), SigSessID: in.ID(), Payload: chat,
			Extra: map[string]json.RawMessage{"x-harness": json.RawMessage(`{"n":1,"s":"kept"}`)}}
		Harness(bob.SendRaw(spec.Join(in.PeerTopic(), bob.ID()), m), "send")
		got := alice.Expect("MSG-002", "bob's MESSAGE at alice", And(IsMethod(spec.MethodMessage), InSession(out.ID())))
		d := got.Decode()
		That("MSG-002", got.Sender(), gomega.Equal(bob.ID()), "at a topic ending in /"+bob.ID())
		That("MSG-002", d.Payload, EqualPayload(chat), "the chat payload unchanged")
		That("MSG-002", d.Extra["x-harness"], EqualPayload(json.RawMessage(`{"n":1,"s":"kept"}`)), "the unknown field x-harness kept")
	}, SpecTimeout(time.Minute))

	It("relays a renegotiation offer and answer in MESSAGEs both ways", Req("MSG-002"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		out, in := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		c, cancel := e.OpContext()
		defer cancel()
		reoffer, reanswer := MustOffer("chrome-av-offer"), MustAnswer("chrome-av-offer")
		Harness(out.Send(c, reoffer), "send")
		m := bob.Expect("MSG-002", "the renegotiation offer at bob", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
		That("MSG-002", m.Decode().Payload, EqualPayload(reoffer), "the offer unchanged")
		Harness(in.Send(c, reanswer), "send")
		m = alice.Expect("MSG-002", "the renegotiation answer at alice", And(IsMethod(spec.MethodMessage), InSession(out.ID())))
		That("MSG-002", m.Decode().Payload, EqualPayload(reanswer), "the answer unchanged")
	}, SpecTimeout(time.Minute))

	It("delivers MESSAGE, PRANSWER and RESPONSE for an unknown session or transaction to no endpoint", Req("MSG-003"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		out, in := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		ghost := uuid.NewString()
		ghostTID := uuid.NewString()
		connTopic := spec.Join(in.PeerTopic(), bob.ID())
		SkipIfDirect(in.PeerTopic(), alice.Address(), "bob's messages go to alice's inbox, not to a connector")
		for _, m := range []*spec.Message{
			{Method: spec.MethodMessage, FromTopic: bob.Address(), SigSessID: ghost, Payload: MustChat("to nobody")},
			{Method: spec.MethodPranswer, FromTopic: bob.Address(), SigSessID: ghost, TransID: ghostTID, Protocols: []string{spec.ProtoWebRTC}},
			{Method: spec.MethodResponse, Orig: spec.MethodStartSession, Result: spec.ResultSuccess, FromTopic: bob.Address(),
				SigSessID: ghost, TransID: ghostTID, Protocols: []string{spec.ProtoWebRTC}, Payload: MustAnswer("chrome-audio-offer")},
		} {
			Harness(bob.SendRaw(connTopic, m), "send")
		}
		stray := func(m Msg) bool {
			d := m.Decode()
			return d != nil && (d.SigSessID == ghost || d.TransID == ghostTID)
		}
		alice.ExpectNone("MSG-003", "nothing of the unknown session reaches alice", stray)
		bob.ExpectNone("MSG-003", "nothing of the unknown session comes back to bob", func(m Msg) bool {
			d := m.Decode()
			return stray(m) && d.Method != spec.MethodResponse // a FAILURE answer to bob is tolerated
		})
		// The real session is unaffected.
		c, cancel := e.OpContext()
		defer cancel()
		Harness(out.Send(c, MustChat("still here")), "send")
		bob.Need("MSG-002", "the live session still relays", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
	}, SpecTimeout(time.Minute))
})
