// Package registration holds the conformance specs of registration: presence documents, the registry, replacement, the will (area registration).
package registration

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Registration: presence DOCUMENTs, the connector's registry, replacement, will
// (PROTOCOL.md, "Flows: Registration").
var _ = Describe("Registration", Area("registration"), func() {
	for _, sh := range Shapes {

		offer := func() []byte { return MustOffer("chrome-audio-offer") }
		answer := func() []byte { return MustAnswer("chrome-audio-offer") }

		It(sh.In("routes a call to an endpoint registered with a retained DOCUMENT, at the address the DOCUMENT names"), Req("REG-001", "REG-005"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			alice := e.Party("alice", sh.O())
			// The address is <path><MQTT client ID>, not <path><ID>, as rtcomm.js registers:
			// only a connector that reads the DOCUMENT's address can reach bob.
			bobs := []struct {
				role string
				o    PartyOptions
			}{{"bob", sh.O(PartyOptions{Configure: func(c *endpoint.Config) { c.AddressFromClientID = true }})}}
			if sh.JS() {
				grouped := sh.O(PartyOptions{PresenceGroup: "agents"}) // <path>sphere/agents/<id>, rtcomm.js with presence.topic
				bobs = append(bobs, struct {
					role string
					o    PartyOptions
				}{"bob-group", grouped})
			}
			for _, b := range bobs {
				bob := e.Party(b.role, b.o)
				mon := e.MustConnect("REG-001", "monitor-"+b.role, ConnOptions{})
				Harness(mon.Subscribe(bob.Presence(), 0), "subscribe presence")
				doc, ok := mon.Inbox().Await(e.Ctx, e.Reply(), func(m Msg) bool { return m.Retained && len(m.Payload) > 0 })
				Check("REG-001", ok && doc.Decode() != nil && doc.Decode().Method == spec.MethodDocument,
					b.role+"'s retained DOCUMENT at "+bob.Presence(), "%s", mon.Inbox().Summary())
				Check("REG-005", Reachable(e, alice, bob, "REG-005"),
					"START_SESSION for "+b.role+" delivered at the address of its DOCUMENT ("+bob.Address()+")", "nothing arrived within %s; it received %s", e.Reply(), bob.Inbox().Summary())
			}
		}, SpecTimeout(time.Minute))

		It(sh.In("replaces a registration from another address and sends DOCUMENT_REPLACED to the older registrant"), Req("REG-006", "REG-007"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			id := e.ID("bob")
			// The older registrant behaves as the profile's clients do: rtcomm.js (client) clears
			// its presence topic on DOCUMENT_REPLACED, a written-spec client (strict) goes silently.
			older := e.Party("bob-old", sh.O(PartyOptions{ID: id, Configure: func(c *endpoint.Config) {
				c.AddressFromClientID = true
				c.KeepRegistrationOnReplace = e.Decl.Profile == ProfileStrict
			}}))
			newer := e.Party("bob-new", sh.O(PartyOptions{ID: id, Configure: func(c *endpoint.Config) {
				c.AddressFromClientID = true
				c.KeepRegistrationOnReplace = true
			}}))
			// The call goes to the newcomer (REG-006) before anything is said about DOCUMENT_REPLACED.
			alice := e.Party("alice", sh.O())
			Check("REG-006", Reachable(e, alice, newer, "REG-006"), "the call goes to the newer registration",
				"the newer bob got nothing; the older received %s", older.Inbox().Summary())
			older.ExpectNone("REG-006", "nothing for the replaced registration", IsMethod(spec.MethodStartSession))
			replaced := older.Expect("REG-007", "DOCUMENT_REPLACED at the older registrant's address "+older.Address(), IsMethod(spec.MethodDocumentReplaced))
			// Like every message the connector sends, it ends in the connector's ID (ID-004): one
			// level below the old address, not the registrant's own ID (replicas may each have
			// their own). rtcomm.js takes it only when it matches none of its transactions: no
			// transID, no sigSessID (PROTOCOL.md, known differences).
			sender, below := strings.CutPrefix(replaced.Topic, older.Address()+"/")
			Check("REG-007", below && sender != "" && !strings.Contains(sender, "/") && sender != id,
				"DOCUMENT_REPLACED at <old address>/<connector ID> (one level, not "+id+")", "at %s", replaced.Topic)
			d := replaced.Decode()
			Check("REG-007", d != nil && d.TransID == "" && d.SigSessID == "", "DOCUMENT_REPLACED without transID and sigSessID",
				"%s", Brief(replaced.Payload))
			newer.ExpectNone("REG-007", "no DOCUMENT_REPLACED for the newer registrant", IsMethod(spec.MethodDocumentReplaced))
		}, SpecTimeout(time.Minute))

		It(sh.In("does not send DOCUMENT_REPLACED when an endpoint re-publishes its DOCUMENT from the same address"), Req("REG-006", "REG-007"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			c, cancel := e.OpContext()
			defer cancel()
			opts := []endpoint.RegisterOption{endpoint.WithState("busy")}
			if e.Decl.Profile == ProfileStrict {
				opts = append(opts, endpoint.WithStrictDocument())
			}
			Harness(bob.Register(c, opts...), "re-register")
			bob.ExpectNone("REG-007", "no DOCUMENT_REPLACED for a re-registration from the same address", IsMethod(spec.MethodDocumentReplaced))
			alice := e.Party("alice", sh.O())
			Check("REG-006", Reachable(e, alice, bob, "REG-006"), "bob stays reachable after re-registering",
				"nothing arrived; bob received %s", bob.Inbox().Summary())
		}, SpecTimeout(time.Minute))

		It(sh.In("keeps the newcomer's registration when the replaced client clears its presence topic"), Req("REG-009"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			if e.Decl.Profile != ProfileClient {
				NotApplicable("REG-009 holds connectors to rtcomm.js behaviour (profile client)")
			}
			id := e.ID("bob")
			keep := func(c *endpoint.Config) {
				c.AddressFromClientID = true
				c.KeepRegistrationOnReplace = true
			}
			olderCfg := keep
			if sh.JS() {
				// An rtcomm.js-shaped endpoint says its goodbye itself (endpoint jsReset).
				olderCfg = func(c *endpoint.Config) { c.AddressFromClientID = true }
			}
			older := e.Party("bob-old", sh.O(PartyOptions{ID: id, Configure: olderCfg}))
			newer := e.Party("bob-new", sh.O(PartyOptions{ID: id, Configure: keep}))
			older.Need("REG-007", "DOCUMENT_REPLACED for the older registrant", IsMethod(spec.MethodDocumentReplaced))
			// The older one behaves like rtcomm.js: it destroys itself and, no sooner than about
			// 500 ms after DOCUMENT_REPLACED, publishes an empty retained message on the presence
			// topic the newcomer just registered on (PROTOCOL.md). A grace shorter than that
			// lets the goodbye remove the newcomer.
			time.Sleep(replacedGoodbye)
			if !sh.JS() {
				Harness(older.PublishRaw(e.Topics.Sphere(id), true, nil), "the replaced client's goodbye")
			}
			time.Sleep(e.Quiet()) // the goodbye lands
			alice := e.Party("alice", sh.O())
			Check("REG-009", Reachable(e, alice, newer, "REG-009"), "the newcomer is still reachable",
				"the call did not reach the newer bob; he received %s", newer.Inbox().Summary())
		}, SpecTimeout(time.Minute))

		It(sh.In("removes the registration on the Last Will and ends the endpoint's sessions"), Req("REG-008", "REG-002"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			out, _ := e.Connected(alice, bob, offer(), answer())
			mon := e.MustConnect("REG-008", "presence monitor", ConnOptions{})
			Harness(mon.Subscribe(e.Topics.Sphere(bob.ID()), 1), "subscribe presence")
			bob.Kill()
			// The call below must follow the will: wait until the broker has published it (the
			// connector, subscribed before the monitor, gets it no later than the call).
			_, willSeen := mon.Inbox().Await(e.Ctx, e.Reply(), func(m Msg) bool { return len(m.Payload) == 0 })
			Harness(ErrIf(!willSeen, "the broker published no will for bob"), "harness: wait for bob's will (BRK-002)")
			select {
			case <-out.Done():
				_, stopped := out.Err().(*endpoint.Stopped)
				Check("REG-008", stopped, "STOP_SESSION to alice when bob's will removes him", "alice's session ended with %v", out.Err())
			case <-time.After(e.Reply()):
				Violate("REG-008", "STOP_SESSION to alice when bob's will removes him", "alice's session still up after %s; alice received %s", e.Reply(), alice.Inbox().Summary())
			}
			s := alice.Call(bob.ID(), offer())
			_, err := alice.Await(s)
			_, rejected := err.(*endpoint.Rejected)
			Check("REG-008", rejected, "a call to bob after his will is answered FAILURE", "%v", err)
		}, SpecTimeout(time.Minute))

		It(sh.In("removes a newcomer's registration when it unregisters soon after replacing a registrant that left silently"), Req("REG-008", "ROB-003"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			if e.Decl.Profile != ProfileStrict {
				NotApplicable("under the client profile a replaced client always clears its presence topic (REG-009)")
			}
			id := e.ID("bob")
			silent := func(c *endpoint.Config) { c.AddressFromClientID = true; c.KeepRegistrationOnReplace = true }
			older := e.Party("bob-old", sh.O(PartyOptions{ID: id, Configure: silent}))
			newer := e.Party("bob-new", sh.O(PartyOptions{ID: id, Configure: silent}))
			older.Need("REG-007", "DOCUMENT_REPLACED for the older registrant", IsMethod(spec.MethodDocumentReplaced))
			c, cancel := e.OpContext()
			defer cancel()
			Harness(newer.Unregister(c), "unregister")
			time.Sleep(e.Quiet())
			mon := e.MustConnect("REG-008", "monitor", ConnOptions{})
			Harness(mon.Subscribe(e.Topics.Sphere(id), 0), "subscribe presence")
			docs := mon.Inbox().Collect(e.Ctx, e.Quiet(), 0, func(m Msg) bool { return m.Retained && len(m.Payload) > 0 })
			Check("ROB-003", len(docs) == 0, "no DOCUMENT re-published for bob after he unregistered", "%v", docs)
			alice := e.Party("alice", sh.O())
			s := alice.Call(id, offer())
			_, err := alice.Await(s)
			_, rejected := err.(*endpoint.Rejected)
			Check("REG-008", rejected, "a call to bob after his unregister is answered FAILURE", "%v", err)
		}, SpecTimeout(time.Minute))

		It(sh.In("removes the registration on a clean unregister"), Req("REG-008"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			c, cancel := e.OpContext()
			defer cancel()
			Harness(bob.Unregister(c), "unregister")
			e.Settle()
			time.Sleep(e.Quiet() / 4)
			s := alice.Call(bob.ID(), offer())
			_, err := alice.Await(s)
			_, rejected := err.(*endpoint.Rejected)
			Check("REG-008", rejected, "a call to an unregistered bob is answered FAILURE", "%v", err)
			bob.ExpectNone("REG-008", "no START_SESSION for an unregistered endpoint", IsMethod(spec.MethodStartSession))
		}, SpecTimeout(time.Minute))

		It(sh.In("keeps registrations under different appContexts apart"), Req("REG-010"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			id := e.ID("bob")
			viaClient := func(c *endpoint.Config) { c.AddressFromClientID = true }
			bobA := e.Party("bob-app1", sh.O(PartyOptions{ID: id, AppContext: "app1", Configure: viaClient}))
			bobB := e.Party("bob-app2", sh.O(PartyOptions{ID: id, AppContext: "app2", Configure: viaClient}))
			bobA.ExpectNone("REG-010", "no DOCUMENT_REPLACED across appContexts", IsMethod(spec.MethodDocumentReplaced))
			alice := e.Party("alice", PartyOptions{AppContext: "app2"})
			s := alice.Call(id, offer(), endpoint.WithAppContext("app2"))
			inv := bobB.Invite("REG-010")
			Check("REG-010", inv != nil, "the app2 call reaches bob's app2 registration", "nothing")
			bobA.ExpectNone("REG-010", "the app2 call does not reach bob's app1 registration", IsMethod(spec.MethodStartSession))
			c, cancel := e.OpContext()
			defer cancel()
			Harness(inv.Reject(c, "test over"), "reject")
			_, _ = alice.Await(s)
		}, SpecTimeout(time.Minute))

		It(sh.In("shows every registration to a presence monitor and withdraws it on unregister"), Req("REG-001", "BRK-001"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			alice := e.Party("alice", sh.O())
			bob := e.Party("bob", sh.O())
			mon := e.MustConnect("REG-001", "monitor", ConnOptions{})
			Harness(mon.Subscribe(e.Topics.SphereRoot()+"/#", 0), "subscribe presence")
			docs := mon.Inbox().Collect(e.Ctx, e.Quiet(), 0, func(m Msg) bool { return m.Retained && len(m.Payload) > 0 })
			seen := map[string]bool{}
			for _, d := range docs {
				seen[d.Sender()] = true
			}
			Check("REG-001", seen[alice.ID()] && seen[bob.ID()], "retained DOCUMENTs of alice and bob in presence", "%v", docs)
			c, cancel := e.OpContext()
			defer cancel()
			Harness(bob.Unregister(c), "unregister")
			_, ok := mon.Inbox().Await(e.Ctx, e.Reply(), func(m Msg) bool { return m.Topic == e.Topics.Sphere(bob.ID()) && len(m.Payload) == 0 })
			Check("BRK-001", ok, "the monitor sees bob's empty unregister message", "%s", mon.Inbox().Summary())
		}, SpecTimeout(time.Minute))
	}

	// The DOCUMENT field is what this scenario varies; its parties are native.
	It("takes the address from `topic` (written spec) and from `addressTopic` (rtcomm.js)", Req("REG-005", "REG-003", "REG-004"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		viaClient := func(c *endpoint.Config) { c.AddressFromClientID = true }
		bobTopic := e.Party("bob", PartyOptions{Configure: viaClient, Register: []endpoint.RegisterOption{endpoint.WithStrictDocument()}})
		carolAddr := e.Party("carol", PartyOptions{Configure: viaClient, Register: []endpoint.RegisterOption{endpoint.WithAddressField(endpoint.AddressTopicField)}})
		alice := e.Party("alice", PartyOptions{})
		Check("REG-005", Reachable(e, alice, bobTopic, "REG-005"), "a call reaches bob, registered with `topic`",
			"nothing arrived; bob received %s", bobTopic.Inbox().Summary())
		Check("REG-005", Reachable(e, alice, carolAddr, "REG-005"), "a call reaches carol, registered with `addressTopic`",
			"nothing arrived; carol received %s", carolAddr.Inbox().Summary())
	}, SpecTimeout(time.Minute))
})

// replacedGoodbye is when rtcomm.js's replaced client clears its presence after
// DOCUMENT_REPLACED: no sooner than about 500 ms (PROTOCOL.md), here with scheduling margin.
const replacedGoodbye = 700 * time.Millisecond
