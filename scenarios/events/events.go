// Package events holds the conformance specs of the connector's event topics (area events).
package events

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// eventTopic returns the event-monitoring root the connector advertises (default <path>event).
func eventTopic(e *Env) string {
	GinkgoHelper()
	probe := e.Prober("evprobe")
	_, resp := probe.Answer("SQ-002", probe.Query())
	if s, ok := resp.Services[spec.ServiceConnector]; ok && s.EventMonitoringTopic != "" {
		return e.Topics.Resolve(s.EventMonitoringTopic)
	}
	return e.Topics.Events()
}

// isEvent matches RTCOMM_EVENT_FIRED for one session action between two endpoints.
func isEvent(root, action, from, to string) Match {
	topic := root + "/session/" + action + "/" + from + "/" + to
	return func(m Msg) bool { return m.Topic == topic }
}

// eventProblems lists what is wrong with one event (EVT-002).
func eventProblems(root string, m Msg) []string {
	var bad []string
	d := m.Decode()
	if d == nil || d.Method != spec.MethodEventFired {
		return []string{"not RTCOMM_EVENT_FIRED: " + Brief(m.Payload)}
	}
	if d.Timestamp == "" {
		bad = append(bad, "no timestamp")
	}
	if d.AppContext == "" {
		bad = append(bad, "no appContext")
	}
	rest := strings.TrimPrefix(m.Topic, root+"/session/")
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return append(bad, "topic "+m.Topic+" is not <root>/session/<action>/<from>/<to>")
	}
	switch parts[0] {
	case spec.EventStarted, spec.EventModified, spec.EventStopped, spec.EventFailed:
	default:
		bad = append(bad, "action "+parts[0])
	}
	for _, id := range parts[1:] {
		if err := spec.ValidateEndpointID(id); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}

// Events (PROTOCOL.md, "Flows: Events").
var _ = Describe("Events", Area("events"), func() {

	// sessionEvents starts a scenario only a connector in the session path can pass (why says
	// what it must see) with bob, alice, and a validating monitor (its refusal failing req)
	// subscribed to every session event under root, the event topic the connector advertises.
	sessionEvents := func(ctx SpecContext, req, why string) (e *Env, root string, alice, bob *Party, mon *Conn) {
		GinkgoHelper()
		e = NewEnv(ctx, WithConnector())
		SkipUnlessInPath(e, why)
		root = eventTopic(e)
		bob = e.Party("bob", PartyOptions{})
		alice = e.Party("alice", PartyOptions{})
		mon = e.MustConnect(req, "monitor", ConnOptions{Validate: true})
		Harness(mon.Subscribe(root+"/session/#", 0), "subscribe events")
		return e, root, alice, bob, mon
	}

	It("fires started (on the call or on the answer) and stopped when it ends, at topics a wildcard can filter", Req("EVT-001", "EVT-002"), func(ctx SpecContext) {
		e, root, alice, bob, mon := sessionEvents(ctx, "EVT-001", "only a connector in the path sees the answer and the STOP_SESSION")
		startedByAlice := e.MustConnect("EVT-001", "filtered", ConnOptions{})
		Harness(startedByAlice.Subscribe(root+"/session/started/"+alice.ID()+"/#", 0), "subscribe filtered")

		out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
		inv := bob.Invite("SESS-002")
		// started may fire on the START_SESSION or on the answer: no source fixes which
		// (rtcomm.service.proto.spec.md: "creation of a new entity"), so either passes.
		c, cancel := e.OpContext()
		defer cancel()
		in, err := inv.Accept(c, MustAnswer("chrome-audio-offer"))
		Harness(err, "accept")
		started, ok := mon.Inbox().Await(e.Ctx, e.Reply(), isEvent(root, spec.EventStarted, alice.ID(), bob.ID()))
		Check("EVT-001", ok, "started at "+root+"/session/started/"+alice.ID()+"/"+bob.ID(), "%s", mon.Inbox().Summary())
		Check("EVT-002", len(eventProblems(root, started)) == 0, "timestamp, appContext, a valid action and endpoint IDs",
			"%s", strings.Join(eventProblems(root, started), "; "))
		Check("EVT-002", started.Decode().SigSessID == "" || started.Decode().SigSessID == out.ID(), "sigSessID (when given) "+out.ID(), "%s", Brief(started.Payload))
		_, ok = startedByAlice.Inbox().Await(e.Ctx, e.Reply(), isEvent(root, spec.EventStarted, alice.ID(), bob.ID()))
		Check("EVT-001", ok, "the started event matches the filter "+root+"/session/started/"+alice.ID()+"/#", "%s", startedByAlice.Inbox().Summary())
		Harness(in.Stop(c, "done"), "stop")
		// The callee hangs up, yet from and to stay caller and callee (lib.rtcomm.node's monitor
		// filters on them): the full topic, levels in order.
		stopped, ok := mon.Inbox().Await(e.Ctx, e.Reply(), isEvent(root, spec.EventStopped, alice.ID(), bob.ID()))
		Check("EVT-001", ok, "stopped at "+root+"/session/stopped/"+alice.ID()+"/"+bob.ID(), "%s", mon.Inbox().Summary())
		Check("EVT-002", len(eventProblems(root, stopped)) == 0, "a well-formed stopped event", "%s", strings.Join(eventProblems(root, stopped), "; "))
		others := startedByAlice.Inbox().Collect(e.Ctx, e.Quiet()/2, 0, func(m Msg) bool { return !strings.Contains(m.Topic, "/started/") })
		Check("EVT-001", len(others) == 0, "the filtered monitor sees only started events", "%v", others)
	}, SpecTimeout(time.Minute))

	It("fires failed with a reason when a call is rejected", Req("EVT-001", "EVT-002"), func(ctx SpecContext) {
		e, root, alice, bob, mon := sessionEvents(ctx, "EVT-001", "only a connector in the path sees the rejection")
		out := alice.Call(bob.ID(), MustOffer("chrome-audio-offer"))
		inv := bob.Invite("SESS-002")
		c, cancel := e.OpContext()
		defer cancel()
		Harness(inv.Reject(c, "declined"), "reject")
		_, _ = alice.Await(out)
		failed, ok := mon.Inbox().Await(e.Ctx, e.Reply(), isEvent(root, spec.EventFailed, alice.ID(), bob.ID()))
		Check("EVT-001", ok && failed.Decode().Reason != "", "failed with a reason at "+root+"/session/failed/"+alice.ID()+"/"+bob.ID(),
			"%s", mon.Inbox().Summary())
		Check("EVT-002", len(eventProblems(root, failed)) == 0, "a well-formed failed event", "%s", strings.Join(eventProblems(root, failed), "; "))
	}, SpecTimeout(time.Minute))

	It("fires modified on a renegotiation", Req("EVT-003"), func(ctx SpecContext) {
		e, root, alice, bob, mon := sessionEvents(ctx, "EVT-003", "only a connector in the path sees the renegotiation")
		out, _ := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
		c, cancel := e.OpContext()
		defer cancel()
		Harness(out.Send(c, MustOffer("chrome-av-offer")), "renegotiate")
		_, ok := mon.Inbox().Await(e.Ctx, e.Reply(), isEvent(root, spec.EventModified, alice.ID(), bob.ID()))
		Check("EVT-003", ok, "modified at "+root+"/session/modified/"+alice.ID()+"/"+bob.ID()+" after the renegotiation offer", "%s", mon.Inbox().Summary())
	}, SpecTimeout(time.Minute))
})
