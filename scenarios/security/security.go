// Package security holds the conformance specs of the secured listener: authenticated endpoints bound to their IDs (area identity, label security).
package security

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// LabelSecurity selects the scenarios that attack the secured listener
// (-ginkgo.label-filter=security). They run when the target claims the secure feature;
// otherwise they are reported not-claimed.
const LabelSecurity = "security"

// Security (docs/SECURITY.md): on the secured listener, authentication binds a client to
// one endpoint ID and the broker's ACLs make the identity rule true. Every scenario here is
// an attack by "mallory", a legitimately authenticated endpoint (or a client with no or
// wrong credentials), and checks that it has no effect. Serial: the secured listener has
// one shared topic path and a fixed set of declared identities.
var _ = Describe("Security", Area("identity"), Label(LabelSecurity), Serial, func() {

	It("carries a whole call between authenticated endpoints", Req("ID-005"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		out, in := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		c, cancel := e.OpContext()
		defer cancel()
		Harness(out.Send(c, MustChat("over a secured broker")), "send")
		bob.Expect("ID-005", "an authenticated endpoint's message to its peer is delivered", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
	}, SpecTimeout(time.Minute))

	It("refuses anonymous clients, unknown users and wrong passwords", Req("ID-007"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener())
		alice := e.ID("alice")
		cred, ok := e.IdentityOf(alice)
		Harness(ErrIf(!ok, "no credentials for "+alice), "harness: secure identity")
		transports := []bool{false}
		if e.Target.URL(true, true) != "" {
			transports = append(transports, true)
		}
		for _, ws := range transports {
			via := map[bool]string{false: "TCP", true: "WebSocket"}[ws]
			// The control: the declared credentials are accepted, so a refusal below is
			// about the credentials, not the listener.
			ctl := e.MustConnect("ID-007", "alice over "+via, ConnOptions{WebSocket: ws, AsID: alice, MQTT31: true})
			ctl.Close()
			for _, bad := range []struct {
				name string
				o    ConnOptions
			}{
				{"anonymous (no user name)", ConnOptions{WebSocket: ws, MQTT31: true}},
				{"wrong password", ConnOptions{WebSocket: ws, Username: cred.Username, Password: cred.Password + "-wrong"}},
				{"another identity's password", ConnOptions{WebSocket: ws, Username: cred.Username, Password: otherPassword(e, alice)}},
				{"unknown user", ConnOptions{WebSocket: ws, Username: "nobody-" + e.Tag, Password: cred.Password}},
			} {
				c, err := e.Connect(bad.name+" over "+via, bad.o)
				if err == nil {
					c.Close()
				}
				e.CheckSoft("ID-007", err != nil, "CONNECT "+bad.name+" over "+via+" refused", "accepted")
			}
		}
	}, SpecTimeout(time.Minute))

	It("drops a publish to a topic ending in another endpoint's ID", Req("ID-005"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Prober("mallory")
		spoofed := &spec.Message{Method: spec.MethodStartSession, FromTopic: mallory.Addr, TransID: RandomUUID(), SigSessID: RandomUUID(),
			ToEndpointID: bob.ID(), Protocols: []string{spec.ProtoWebRTC}, Payload: MustOffer("chrome-audio-offer")}
		// Straight into bob's inbox, and via the connector, both claiming to be alice.
		Harness(mallory.Send(spec.Join(bob.Address(), alice.ID()), spoofed), "publish")
		Harness(mallory.Send(spec.Join(alice.ConnectorTopic(), alice.ID()), spoofed), "publish")
		bob.ExpectNone("ID-005", "no message claiming to be from alice, published by mallory, reaches bob", InSession(spoofed.SigSessID))
	}, SpecTimeout(time.Minute))

	It("lets no one read another endpoint's inbox", Req("ID-005"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		alice := e.Party("alice", PartyOptions{})
		bob := e.Party("bob", PartyOptions{})
		mallory := e.ID("mallory")
		// Every way to a filter that covers alice's inbox: directly, by wildcards, shared.
		// One connection per filter: a broker may refuse with SUBACK 0x80 or by closing the
		// connection (RabbitMQ does); both are refusals.
		var granted []string
		var listening []*Conn
		for _, f := range []string{alice.Address() + "/#", alice.Address() + "/+", e.Path + "+/#", e.Path + "#", "#",
			"$share/m-" + e.Tag + "/" + alice.Address() + "/#"} {
			c := e.MustConnect("ID-005", "mallory subscribing "+f, ConnOptions{AsID: mallory, MQTT31: true})
			if err := c.Subscribe(f, 0); err != nil {
				GinkgoWriter.Printf("subscribe %s refused: %v\n", f, err)
				c.Close()
				continue
			}
			granted = append(granted, f)
			listening = append(listening, c)
		}
		out := bob.Call(alice.ID(), MustOffer("chrome-audio-offer"))
		alice.Need("SESS-002", "bob's call reaches alice", IsStartSession(out.ID()))
		var leaked []Msg
		for _, c := range listening {
			leaked = append(leaked, c.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(m Msg) bool { return UnderTopic(m.Topic, alice.Address()) })...)
		}
		Check("ID-005", len(leaked) == 0, "mallory receives nothing of alice's inbox",
			"granted %v; mallory received %v", granted, leaked)
	}, SpecTimeout(time.Minute))

	It("refuses a DOCUMENT on another endpoint's presence topic", Req("ID-008"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		alice := e.ID("alice")
		_ = e.ID("bob")
		mallory := e.Prober("mallory")
		doc := []byte(`{"method":"DOCUMENT","rtcommVer":"v1.0.0","type":"ENDPOINT","appContext":"rtcomm","addressTopic":"` + mallory.Addr + `","topic":"` + mallory.Addr + `"}`)
		_ = mallory.Publish(e.Topics.Sphere(alice), 1, true, doc)
		mon := e.MustConnect("ID-008", "monitor", ConnOptions{AsID: mallory.ID})
		Harness(mon.Subscribe(e.Topics.SphereRoot()+"/#", 0), "subscribe presence")
		got := mon.Inbox().Collect(e.Ctx, e.Quiet(), 0, func(m Msg) bool { return m.Topic == e.Topics.Sphere(alice) && len(m.Payload) > 0 })
		Check("ID-008", len(got) == 0, "no DOCUMENT for "+alice+" published by mallory", "%v", got)
	}, SpecTimeout(time.Minute))

	It("keeps an endpoint's presence when another endpoint clears it or leaves a will on it", Req("ID-008"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		alice := e.Party("alice", PartyOptions{})
		bob := e.Party("bob", PartyOptions{})
		mallory := e.ID("mallory")
		sphere := e.Topics.Sphere(alice.ID())
		// An explicit clear (empty retained publish), at QoS 0 and 1.
		m := e.MustConnect("ID-008", "mallory", ConnOptions{AsID: mallory, MQTT31: true})
		_ = m.Publish(sphere, 0, true, nil)
		_ = m.Publish(sphere, 1, true, nil)
		// A will on alice's presence topic, fired by an abrupt end. The broker may refuse the
		// CONNECT (the will is a publish on mallory's behalf) or drop the will when it fires.
		if w, err := e.Connect("mallory with a will on alice's presence", ConnOptions{AsID: mallory, MQTT31: true,
			Will: &mqttc.Will{Topic: sphere, QoS: 1, Retained: true}}); err == nil {
			w.Kill()
		}
		mon := e.MustConnect("ID-008", "monitor", ConnOptions{AsID: bob.ID()})
		Harness(mon.Subscribe(sphere, 0), "subscribe "+sphere)
		_, present := mon.Inbox().Await(e.Ctx, e.Reply(), func(m Msg) bool { return m.Topic == sphere && m.Retained && len(m.Payload) > 0 })
		Check("ID-008", present, "alice's retained DOCUMENT still at "+sphere, "gone: %s", mon.Inbox().Summary())
		// And the connector still routes to her.
		out := bob.Call(alice.ID(), MustOffer("chrome-audio-offer"))
		alice.Expect("ID-008", "a call to alice still reaches her", IsStartSession(out.ID()))
	}, SpecTimeout(time.Minute))

	It("lets no endpoint fire events", Req("ID-009"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.ID("mallory")
		mon := e.MustConnect("ID-009", "monitor", ConnOptions{AsID: bob.ID()})
		subErr := mon.Subscribe(e.Topics.Events()+"/#", 0)
		if subErr != nil && !errors.Is(subErr, mqttc.ErrSubscriptionRefused) {
			Harness(subErr, "subscribe events")
		}
		m := e.MustConnect("ID-009", "mallory", ConnOptions{AsID: mallory, MQTT31: true})
		forged := RandomUUID()
		ev := fmt.Sprintf(`{"method":"RTCOMM_EVENT_FIRED","rtcommVer":"v1.0.0","timestamp":"%s","appContext":"rtcomm","sigSessID":"%s"}`,
			time.Now().UTC().Format(time.RFC3339), forged)
		// Topics that end in mallory's own ID (the last-level rule alone would let them
		// through) and ones that do not.
		for _, topic := range []string{
			e.Topics.SessionEvent("started", alice.ID(), mallory),
			e.Topics.SessionEvent("stopped", bob.ID(), mallory),
			e.Topics.SessionEvent("started", alice.ID(), bob.ID()),
			e.Topics.Events() + "/" + mallory,
		} {
			for _, qos := range []byte{0, 1} {
				_ = m.Publish(topic, qos, false, []byte(ev))
			}
		}
		isForged := func(m Msg) bool { return strings.Contains(string(m.Payload), forged) }
		if subErr == nil && e.Decl.Claims(FeatureEvents) {
			// The control: a genuine event reaches the same monitor, so the silence about
			// the forged ones means they were dropped, not that the monitor is deaf.
			e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
			_, ok := mon.Inbox().Await(e.Ctx, e.Reply(), func(m Msg) bool {
				return strings.HasPrefix(m.Topic, e.Topics.Events()+"/session/started/") && !isForged(m)
			})
			Check("ID-009", ok, "the connector's own session/started event reaches the monitor", "%s", mon.Inbox().Summary())
		}
		got := mon.Inbox().Collect(e.Ctx, e.Quiet(), 1, isForged)
		Check("ID-009", len(got) == 0, "no event published by mallory reaches a monitor", "%v", got)
	}, SpecTimeout(time.Minute))
})

// otherPassword is the password of a declared identity other than id ("" if none).
func otherPassword(e *Env, id string) string {
	for _, c := range e.Target.Identities {
		if c.ID != id && c.Password != "" {
			return c.Password
		}
	}
	return "not-" + id
}

// rtcommJSClientID returns a client ID shaped like rtcomm.js's (MqttConnection.js,
// generateClientID: 22 characters from 0-9 and A-Y).
func rtcommJSClientID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXY"
	b := []byte(strings.ReplaceAll(RandomUUID()+RandomUUID(), "-", ""))[:22]
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Attacks an authenticated endpoint found against secured deployments (docs/SECURITY.md,
// "Attacks"): each scenario is one attack by mallory and checks that it is refused with
// no effect on the victim, next to a control that shows the victim still works.
var _ = Describe("Security: attacks by an authenticated endpoint", Area("identity"), Label(LabelSecurity), Serial, func() {

	It("lets no CONNECT with another user's client ID affect that user", Req("ID-010"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		// alice is an rtcomm.js-like client: generated client ID, will on her presence.
		alice := e.Party("alice", PartyOptions{Configure: func(c *endpoint.Config) { c.ClientID = rtcommJSClientID() }})
		mallory := e.ID("mallory")
		mon := e.MustConnect("ID-010", "presence monitor", ConnOptions{AsID: bob.ID()})
		Harness(mon.Subscribe(e.Topics.Sphere(alice.ID()), 0), "subscribe alice's presence")
		out, in := e.Connected(bob, alice, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		victimID := alice.Client().ID()
		transports := []bool{false}
		if e.Target.URL(true, true) != "" {
			transports = append(transports, true)
		}
		var accepted []string
		for _, ws := range transports {
			for _, v31 := range []bool{true, false} {
				how := fmt.Sprintf("%s, MQTT %s", map[bool]string{false: "TCP", true: "WebSocket"}[ws], map[bool]string{true: "3.1", false: "3.1.1"}[v31])
				c, err := e.Connect("mallory with alice's client ID over "+how, ConnOptions{AsID: mallory, ClientID: victimID, WebSocket: ws, MQTT31: v31})
				if err == nil {
					accepted = append(accepted, how)
					c.Close()
				}
			}
		}
		// A broker may refuse these CONNECTs (the reference does) or give mallory a session
		// of her own (mosquitto's use_username_as_clientid): either way, alice must notice
		// nothing. No will fired, presence kept, the call goes on.
		if len(accepted) > 0 {
			GinkgoWriter.Printf("mallory's CONNECT with alice's client ID was accepted over %v; judging its effect on alice\n", accepted)
		}
		cleared := mon.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(m Msg) bool { return len(m.Payload) == 0 })
		e.CheckSoft("ID-010", len(cleared) == 0, "alice's will is not fired: no empty message on her presence topic", "%v", cleared)
		c, cancel := e.OpContext()
		defer cancel()
		Harness(out.Send(c, MustChat("are you still there?")), "send")
		alice.Expect("ID-010", "alice, still connected, receives bob's next message in their call", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
	}, SpecTimeout(2*time.Minute))

	It("lets no one else resume an endpoint's persistent session or receive its queued messages", Req("ID-011"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener())
		alice, bob, mallory := e.ID("alice"), e.ID("bob"), e.ID("mallory")
		cid := "persist-" + e.Tag
		a := e.MustConnect("ID-011", "alice (persistent session)", ConnOptions{AsID: alice, ClientID: cid, Persistent: true})
		Harness(a.Subscribe(e.Topics.InboxFilter(alice), 1), "subscribe alice's inbox at QoS 1")
		a.Close()
		b := e.MustConnect("ID-011", "bob", ConnOptions{AsID: bob})
		secret := "for alice only " + RandomUUID()
		Harness(b.Publish(spec.Join(e.Topics.Inbox(alice), bob), 1, false, []byte(secret)), "queue a QoS 1 message for alice")
		isSecret := func(m Msg) bool { return strings.Contains(string(m.Payload), secret) }
		var stolen []Msg
		for _, v31 := range []bool{false, true} {
			if m, err := e.Connect("mallory resuming alice's session", ConnOptions{AsID: mallory, ClientID: cid, Persistent: true, MQTT31: v31}); err == nil {
				stolen = append(stolen, m.Inbox().Collect(e.Ctx, e.Quiet(), 1, isSecret)...)
				m.Close()
			}
		}
		Check("ID-011", len(stolen) == 0, "mallory receives none of alice's queued messages", "received %v", stolen)
		// The control: the queue existed, and alice still gets it.
		back := e.MustConnect("ID-011", "alice resuming", ConnOptions{AsID: alice, ClientID: cid, Persistent: true})
		_, ok := back.Inbox().Await(e.Ctx, e.Reply(), isSecret)
		Harness(ErrIf(!ok, "the broker delivered no queued message to alice's resumed persistent session, so this scenario cannot tell"), "control")
		back.Close()
	}, SpecTimeout(time.Minute))

	It("keeps the connector serving while an endpoint connects with its client ID", Req("ID-012"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Prober("mallory")
		// The connector's client ID is the last level of its answers.
		answer, _ := mallory.Answer("ID-012", mallory.Query())
		connID := spec.Sender(answer.Topic)
		// mallory keeps connecting with that client ID (every 50 ms, bounded, each
		// connection left open) while the connector is asked to serve: if each CONNECT took
		// the connector's session over, it would never be online long enough to answer.
		stop, attacked := make(chan struct{}), make(chan int, 1)
		go func() {
			defer GinkgoRecover()
			var held []*Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
				attacked <- len(held)
			}()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if c, err := e.Connect("mallory as the connector", ConnOptions{AsID: mallory.ID, ClientID: connID, Quiet: true}); err == nil {
					held = append(held, c)
				}
			}
		}()
		defer func() {
			close(stop)
			if n := <-attacked; n > 0 {
				GinkgoWriter.Printf("%d CONNECTs by mallory with the connector's client ID were accepted\n", n)
			}
		}()
		time.Sleep(time.Second) // let the attack run for a while first
		_, q := mallory.Answer("ID-012", mallory.Query())
		Check("ID-012", q != nil && q.Result == spec.ResultSuccess, "the connector still answers a SERVICE_QUERY", "%v", q)
		out := bob.Call(alice.ID(), MustOffer("chrome-audio-offer"))
		alice.Expect("ID-012", "the connector still routes bob's call to alice", IsStartSession(out.ID()))
	}, SpecTimeout(time.Minute))

	It("registers a DOCUMENT only with the registrant's own inbox as address", Req("ID-013"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Prober("mallory")
		// mallory's own presence topic, alice's inbox as address, twice (a re-registration
		// would send the "older registrant", alice, DOCUMENT_REPLACED).
		for _, state := range []string{"available", "busy"} {
			doc := fmt.Sprintf(`{"method":"DOCUMENT","rtcommVer":"v1.0.0","type":"ENDPOINT","appContext":"rtcomm","state":%q,"addressTopic":%q,"topic":%q,"fromTopic":null}`,
				state, alice.Address(), alice.Address())
			Harness(mallory.Publish(e.Topics.Sphere(mallory.ID), 1, true, []byte(doc)), "publish mallory's DOCUMENT")
		}
		e.Settle()
		s := bob.Call(mallory.ID, MustOffer("chrome-audio-offer"))
		alice.ExpectNone("ID-013", "nothing addressed to mallory reaches alice's inbox (no START_SESSION, no DOCUMENT_REPLACED)",
			func(m Msg) bool { return InSession(s.ID())(m) || IsMethod(spec.MethodDocumentReplaced)(m) })
		// The control: alice's own registration still works.
		out := bob.Call(alice.ID(), MustOffer("chrome-audio-offer"))
		alice.Expect("ID-013", "bob's call to alice reaches her", IsStartSession(out.ID()))
		Harness(mallory.Publish(e.Topics.Sphere(mallory.ID), 1, true, nil), "clear mallory's presence")
	}, SpecTimeout(time.Minute))

	It("answers a request only into the requester's own inbox", Req("ID-014"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Prober("mallory")
		foreign := spec.Join(bob.Address(), alice.ID()) // bob's inbox, "from alice"
		sends := []struct {
			topic string
			m     *spec.Message
		}{
			{spec.Join(e.Topics.Management(), mallory.ID), &spec.Message{Method: spec.MethodServiceQuery, TransID: RandomUUID(), FromTopic: foreign}},
			{spec.Join(e.Topics.Connector(), mallory.ID), &spec.Message{Method: spec.MethodStartSession, TransID: RandomUUID(), SigSessID: RandomUUID(),
				FromTopic: foreign, ToEndpointID: "nobody-" + e.Tag, Protocols: []string{spec.ProtoWebRTC}, Payload: MustOffer("chrome-audio-offer")}},
		}
		if e.Decl.Claims(Feature3PCC) {
			sends = append(sends, struct {
				topic string
				m     *spec.Message
			}{spec.Join(e.Topics.CallControl(), mallory.ID), &spec.Message{Method: spec.Method3PCCPlaceCall, TransID: RandomUUID(),
				CallerEndpoint: alice.ID(), CalleeEndpoint: "nobody-" + e.Tag, FromTopic: foreign}})
		}
		for _, s := range sends {
			Harness(mallory.Send(s.topic, s.m), "publish "+string(s.m.Method))
		}
		bob.ExpectNone("ID-014", "nothing the connector answers to mallory lands in bob's inbox at "+foreign,
			func(m Msg) bool { return UnderTopic(m.Topic, foreign) })
		// The control: her own inbox is answered.
		_, q := mallory.Answer("ID-014", mallory.Query())
		Check("ID-014", q != nil && q.Result == spec.ResultSuccess, "mallory's SERVICE_QUERY from her own inbox is answered", "%v", q)
	}, SpecTimeout(time.Minute))

	It("serves third-party call control only to call controllers, bound to exactly the referred session", Req("ID-015"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		if !e.Decl.Claims(Feature3PCC) {
			NotClaimed(Feature3PCC)
		}
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.Prober("mallory")
		place := func(p *Prober, sid string) string {
			tid := RandomUUID()
			Harness(p.Send(spec.Join(e.Topics.CallControl(), p.ID), &spec.Message{Method: spec.Method3PCCPlaceCall, TransID: tid,
				CallerEndpoint: alice.ID(), CalleeEndpoint: bob.ID(), FromTopic: p.Addr, SessionID: sid}), "publish 3PCC_PLACE_CALL")
			return tid
		}
		place(mallory, "")
		alice.ExpectNone("ID-015", "no REFER reaches alice on mallory's request (mallory is no call controller)", IsMethod(spec.MethodRefer))
		if len(e.Target.CallControllers) == 0 {
			return // no declared controller: the binding to the referred session cannot be shown here
		}
		ctl := &Prober{ID: e.Target.CallControllers[0], Addr: e.Topics.Inbox(e.Target.CallControllers[0])}
		c, err := e.Connect("call controller", ConnOptions{AsID: ctl.ID, MQTT31: true})
		Harness(err, "connect the call controller")
		ctl.Conn = c
		Harness(c.Subscribe(ctl.Addr+"/#", 0), "subscribe the controller's inbox")
		tid := place(ctl, RandomUUID())
		alice.Expect("ID-015", "the call controller's request reaches alice as a REFER", IsMethod(spec.MethodRefer))
		// alice ignores the REFER and calls bob on her own: an unrelated session.
		e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		got := c.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(m Msg) bool {
			d := m.Decode()
			return IsResponse(spec.Method3PCCPlaceCall, tid)(m) && d.Result == spec.ResultSuccess
		})
		Check("ID-015", len(got) == 0, "alice's unrelated call to bob does not answer the pending 3PCC request SUCCESS", "%v", got)
	}, SpecTimeout(time.Minute))

	It("keeps no retained message in another endpoint's inbox", Req("ID-016"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener())
		alice, mallory := e.ID("alice"), e.ID("mallory")
		m := e.MustConnect("ID-016", "mallory", ConnOptions{AsID: mallory})
		sticky := "sticky " + RandomUUID()
		topic := spec.Join(e.Topics.Inbox(alice), mallory) // allowed: it ends in mallory's ID
		Harness(m.Publish(topic, 1, true, []byte(sticky)), "publish retained")
		Harness(m.Publish(spec.Join(e.Topics.Inbox(mallory), mallory), 1, true, []byte(sticky)), "publish retained")
		a := e.MustConnect("ID-016", "alice, subscribing later", ConnOptions{AsID: alice})
		Harness(a.Subscribe(e.Topics.InboxFilter(alice), 1), "subscribe")
		got := a.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(x Msg) bool { return x.Retained })
		Check("ID-016", len(got) == 0, "no retained message waits in alice's inbox", "%v", got)
		// Best effort: clear it, in case it was kept (only mallory can).
		_ = m.Publish(topic, 1, true, nil)
		_ = m.Publish(spec.Join(e.Topics.Inbox(mallory), mallory), 1, true, nil)
	}, SpecTimeout(time.Minute))

	It("refuses topics beyond its limits cheaply and keeps serving others meanwhile", Req("ID-017"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		bob := e.Party("bob", PartyOptions{})
		alice := e.Party("alice", PartyOptions{})
		mallory := e.ID("mallory")
		// Refusal, one packet at a time: a filter and a will topic of probeLevels levels
		// (~2 KB) under mallory's own subtree, which her ACLs allow. A broker that bounds
		// only PUBLISH topics grants both (the attack below would then cost it seconds of
		// topic-tree work, which only a timing check sees).
		probe := e.Topics.Inbox(mallory) + strings.Repeat("/x", probeLevels)
		p := e.MustConnect("ID-017", "mallory, deep SUBSCRIBE", ConnOptions{AsID: mallory, Quiet: true})
		subErr := p.Subscribe(probe+"/#", 0)
		Check("ID-017", refusedSubscribe(p, subErr), fmt.Sprintf("a SUBSCRIBE to a %d-level filter is refused (SUBACK 0x80 or connection closed)", levels(probe+"/#")),
			"%s", answer(subErr, p.Connected()))
		p.Close()
		willTopic := spec.Join(probe, mallory)
		w, willErr := e.Connect("mallory, deep will", ConnOptions{AsID: mallory, Quiet: true,
			Will: &mqttc.Will{Topic: willTopic, Payload: []byte("x")}})
		if w != nil {
			w.Close() // clean DISCONNECT: the will never fires
		}
		Check("ID-017", willErr != nil && !errors.Is(willErr, context.DeadlineExceeded),
			fmt.Sprintf("a CONNECT whose will topic has %d levels is refused (CONNACK refusal or connection closed)", levels(willTopic)),
			"%s", answer(willErr, w != nil))
		// 32,000 levels under mallory's own inbox (the ACLs allow her own subtree) and a
		// retained publish as deep ending in her ID; three attackers at once.
		deep := e.Topics.Inbox(mallory) + strings.Repeat("/x", 32000)
		done := make(chan error, 6)
		for i := range 3 {
			go func() {
				defer GinkgoRecover()
				m, err := e.Connect(fmt.Sprintf("mallory %d", i), ConnOptions{AsID: mallory, Quiet: true})
				if err != nil {
					done <- nil
					done <- nil
					return
				}
				done <- m.Subscribe(deep+"/#", 0)
				done <- m.Publish(spec.Join(e.Topics.Inbox(bob.ID())+strings.Repeat("/x", 32000), mallory), 0, true, []byte("x"))
				m.Close()
			}()
		}
		// Meanwhile bob's SUBSCRIBE and a call must be served as usual.
		mon := e.MustConnect("ID-017", "bob's monitor", ConnOptions{AsID: bob.ID()})
		start := time.Now()
		monErr := mon.Subscribe(e.Topics.InboxFilter(bob.ID()), 0) // bounded by the reply timeout
		took := time.Since(start)
		Check("ID-017", monErr == nil, "bob's SUBSCRIBE during the attack is answered within "+e.Reply().String(),
			"%v after %s", monErr, took.Round(time.Millisecond))
		out := bob.Call(alice.ID(), MustOffer("chrome-audio-offer"))
		alice.Expect("ID-017", "bob's call reaches alice during the attack", IsStartSession(out.ID()))
		var granted int
		for range 6 {
			if err := <-done; err == nil {
				granted++
			}
		}
		// A publish may be "accepted" and dropped (3.1.1 QoS 0 has no answer); what must not
		// happen is a retained 32,000-level message or subscription: check the first.
		late := e.MustConnect("ID-017", "late subscriber", ConnOptions{AsID: bob.ID()})
		Harness(late.Subscribe(e.Topics.InboxFilter(bob.ID()), 0), "subscribe")
		kept := late.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(m Msg) bool { return m.Retained })
		Check("ID-017", len(kept) == 0, "no 32,000-level retained message is kept", "%d kept, %d of 6 attack packets got no error", len(kept), granted)
	}, SpecTimeout(2*time.Minute))
})

// probeLevels is the depth of ID-017's single-packet probes below an inbox: over any limit a
// secured broker can sensibly set (rtcomm's deepest topic has 7 levels; the reference stops
// at 32 levels and 1,024 bytes, mosquitto 2.0 at 200 levels), yet cheap for a broker that
// wrongly accepts it.
const probeLevels = 1000

// levels counts the levels of a topic name or filter.
func levels(topic string) int { return strings.Count(topic, "/") + 1 }

// refusedSubscribe reports whether a SUBSCRIBE was refused: SUBACK 0x80, or the broker
// closed the connection (mosquitto 2.0 and the reference do). No answer in time is no refusal.
func refusedSubscribe(c *Conn, err error) bool {
	return errors.Is(err, mqttc.ErrSubscriptionRefused) || (err != nil && !c.Connected())
}

// answer describes how the broker answered a SUBSCRIBE or CONNECT (err from it; open: the
// connection is still up).
func answer(err error, open bool) string {
	switch {
	case err == nil:
		return "accepted"
	case open:
		return fmt.Sprintf("no refusal, connection still open: %v", err)
	}
	return fmt.Sprintf("%v (connection open: %v)", err, open)
}
