// Package identity holds the conformance specs of endpoint identity: who may send as whom (area identity).
package identity

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Identity and security (PROTOCOL.md, "Identity rule"): the sender is the topic's last
// level; a secured broker makes that level trustworthy (its scenarios: security.go).
var _ = Describe("Identity and security", Area("identity"), func() {

	It("routes calls between endpoint IDs with spaces, @, : and .", Req("ID-001", "SESS-002", "SESS-004"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{ID: "Bob Smith@example.com " + e.Tag})
		alice := e.Party("alice", PartyOptions{ID: "urn.x:alice-" + e.Tag})
		out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
		m := bob.Expect("SESS-002", "START_SESSION at "+bob.ID(), IsStartSession(out.ID()))
		Check("SESS-002", m.Sender() == alice.ID(), "the caller's ID "+alice.ID()+" as the last level", "at %s", m.Topic)
		inv := bob.Invite("SESS-002")
		c, cancel := e.OpContext()
		defer cancel()
		_, err := inv.Accept(c, MustAnswer("chrome-audio-offer"))
		Harness(err, "accept")
		_, err = alice.Await(out)
		Check("SESS-004", err == nil, "the call between those IDs is answered", "%v", err)
	}, SpecTimeout(time.Minute))

	It("takes the sender's identity from the topic's last level, whatever the JSON says", Req("ID-006"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.ID("mallory")
		tid, sid := RandomUUID(), RandomUUID()
		start := &spec.Message{Method: spec.MethodStartSession, FromTopic: alice.Address(), TransID: tid, SigSessID: sid,
			ToEndpointID: bob.ID(), Protocols: []string{spec.ProtoWebRTC}, Payload: MustOffer("chrome-audio-offer"),
			// Fields naming someone else must not change who the sender is.
			Extra: map[string]json.RawMessage{"fromEndpointID": json.RawMessage(`"` + mallory + `"`), "from": json.RawMessage(`"` + mallory + `"`)}}
		Harness(alice.SendRaw(spec.Join(alice.ConnectorTopic(), alice.ID()), start), "send")
		m := bob.Need("SESS-002", "START_SESSION at bob", IsStartSession(sid))
		Check("ID-006", m.Sender() == alice.ID(), "the sender is "+alice.ID()+" (the topic's last level)", "delivered at %s", m.Topic)
	}, SpecTimeout(time.Minute))

	It("relays session messages only from a party of that session", Req("ID-006"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Party("mallory", PartyOptions{})
		out, in := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		intrusion := &spec.Message{Method: spec.MethodMessage, FromTopic: mallory.Address(), SigSessID: in.ID(), Payload: MustChat("injected")}
		SkipIfDirect(in.PeerTopic(), alice.Address(), "mallory would publish to alice's inbox, which no connector guards (the broker's identity ACL keeps the sender level true)")
		Harness(mallory.SendRaw(spec.Join(in.PeerTopic(), mallory.ID()), intrusion), "send")
		stop := &spec.Message{Method: spec.MethodStopSession, SigSessID: in.ID(), Reason: "hijacked"}
		Harness(mallory.SendRaw(spec.Join(in.PeerTopic(), mallory.ID()), stop), "send")
		injected := func(m Msg) bool {
			d := m.Decode()
			return d != nil && d.SigSessID == in.ID() && (d.Method == spec.MethodStopSession || d.Method == spec.MethodMessage)
		}
		bob.ExpectNone("ID-006", "nothing from mallory in alice and bob's session reaches bob", injected)
		alice.ExpectNone("ID-006", "nothing from mallory in alice and bob's session reaches alice", injected)
		c, cancel := e.OpContext()
		defer cancel()
		Harness(out.Send(c, MustChat("still private")), "send")
		bob.Need("MSG-002", "the session still relays alice's messages", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
	}, SpecTimeout(time.Minute))
})
