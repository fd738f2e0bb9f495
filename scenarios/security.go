package scenarios

import (
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
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
		out, in := e.Connected(alice, bob, mustOffer("chrome-audio-offer"), mustAnswer("chrome-audio-offer"))
		c, cancel := e.opCtx()
		defer cancel()
		Harness(out.Send(c, mustChat("over a secured broker")), "send")
		bob.Expect("ID-005", "an authenticated endpoint's message to its peer is delivered", And(IsMethod(spec.MethodMessage), InSession(in.ID())))
	}, SpecTimeout(time.Minute))

	It("refuses anonymous clients, unknown users and wrong passwords", Req("ID-007"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener())
		alice := e.ID("alice")
		cred, ok := e.identity(alice)
		Harness(errIf(!ok, "no credentials for "+alice), "harness: secure identity")
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
		spoofed := &spec.Message{Method: spec.MethodStartSession, FromTopic: mallory.Addr, TransID: randomUUID(), SigSessID: randomUUID(),
			ToEndpointID: bob.ID(), Protocols: []string{spec.ProtoWebRTC}, Payload: mustOffer("chrome-audio-offer")}
		// Straight into bob's inbox, and via the connector, both claiming to be alice.
		Harness(mallory.Send(spec.Join(bob.Address(), alice.ID()), spoofed), "publish")
		Harness(mallory.Send(spec.Join(alice.ConnectorTopic(), alice.ID()), spoofed), "publish")
		bob.ExpectNone("ID-005", "no message claiming to be from alice, published by mallory, reaches bob", InSession(spoofed.SigSessID))
	}, SpecTimeout(time.Minute))

	It("lets no one read another endpoint's inbox", Req("ID-005"), func(ctx SpecContext) {
		e := NewEnv(ctx, OnSecureListener(), WithConnector())
		alice := e.Party("alice", PartyOptions{})
		bob := e.Party("bob", PartyOptions{})
		mallory := e.Prober("mallory")
		// Every way to a filter that covers alice's inbox: directly, by wildcards, shared.
		var granted []string
		for _, f := range []string{alice.Address() + "/#", alice.Address() + "/+", e.Path + "+/#", e.Path + "#", "#",
			"$share/m-" + e.Tag + "/" + alice.Address() + "/#"} {
			err := mallory.Subscribe(f, 0)
			switch {
			case err == nil:
				granted = append(granted, f)
			case !errors.Is(err, mqttc.ErrSubscriptionRefused):
				Harness(err, "subscribe "+f) // a transport error, not an answer
			}
		}
		out := bob.Call(alice.ID(), mustOffer("chrome-audio-offer"))
		alice.Expect("SESS-002", "bob's call reaches alice", isStartSession(out.ID()))
		leaked := mallory.Inbox().Collect(e.Ctx, e.Quiet(), 1, func(m Msg) bool { return underTopic(m.Topic, alice.Address()) })
		Check("ID-005", len(leaked) == 0, "mallory receives nothing of alice's inbox",
			"granted %v; mallory received %v", granted, leaked)
	}, SpecTimeout(time.Minute))

	It("refuses a DOCUMENT on another endpoint's presence topic", Req("ID-005", "ID-008"), func(ctx SpecContext) {
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
		out := bob.Call(alice.ID(), mustOffer("chrome-audio-offer"))
		alice.Expect("ID-008", "a call to alice still reaches her", isStartSession(out.ID()))
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
		forged := randomUUID()
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
			e.Connected(alice, bob, mustOffer("chrome-audio-offer"), mustAnswer("chrome-audio-offer"))
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
