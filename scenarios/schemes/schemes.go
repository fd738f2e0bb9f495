// Package schemes holds the conformance specs of scheme routing (area schemes).
package schemes

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Scheme routing (PROTOCOL.md, "Service query answer": a service carrying schemes).
var _ = Describe("Scheme routing", Area("schemes"), func() {

	It("routes a call to <scheme>:<id> to the scheme's topic and other IDs as usual", Req("SCH-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		probe := e.Prober("schprobe")
		_, resp := probe.Answer("SQ-002", probe.Query())
		var scheme, topic string
		for _, s := range resp.Services {
			for _, sc := range s.Schemes {
				if scheme == "" && s.Topic != "" {
					scheme, topic = sc, e.Topics.Resolve(s.Topic)
				}
			}
		}
		Harness(ErrIf(scheme == "", "no service advertises a scheme"), "service query")
		gw := e.MustConnect("SCH-001", "gateway", ConnOptions{Validate: true})
		Harness(gw.Subscribe(topic+"/#", 0), "gateway subscribes")
		e.Watch(topic + "/#")
		alice := e.Party("alice", PartyOptions{})
		bob := e.Party("bob", PartyOptions{})
		target := scheme + ":bob-" + e.Tag + "@example.com"
		s := alice.Call(target, MustOffer("chrome-audio-offer"))
		m, ok := gw.Inbox().Await(e.Ctx, e.Reply(), IsStartSession(s.ID()))
		Check("SCH-001", ok, "START_SESSION for "+target+" at the gateway topic "+topic, "%s", gw.Inbox().Summary())
		Check("SCH-001", strings.HasPrefix(m.Topic, topic+"/") && m.Decode().ToEndpointID == target, "at "+topic+"/..., toEndpointID "+target,
			"%s at %s", Brief(m.Payload), m.Topic)
		plain := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
		bob.Expect("SCH-001", "a call to a plain ID goes to the callee", IsStartSession(plain.ID()))
		stray := gw.Inbox().Collect(e.Ctx, e.Quiet(), 1, IsStartSession(plain.ID()))
		Check("SCH-001", len(stray) == 0, "the plain call does not reach the gateway", "%v", stray)
		_ = spec.Version
	}, SpecTimeout(time.Minute))
})
