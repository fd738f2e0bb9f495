// Package queues holds the conformance specs of call queues (area queues).
package queues

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Call queues (PROTOCOL.md, "Flows: Call queues"). Agents join a queue the way rtcomm.js
// does (EndpointProvider.js joinQueue, Queues.js): by subscribing to the advertised topic
// as given, "#" or "/#" appended when it has none. So the advertised topic must be a
// shared-subscription filter, and each call must reach exactly one agent.
var _ = Describe("Call queues", Area("queues"), func() {
	for _, sh := range Shapes {

		It(sh.In("delivers each START_SESSION published behind a queue's advertised filter to exactly one agent"), Req("QUE-002", "QUE-001"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			Needs(e, FeatureQueues)
			queue := advertisedQueue(e)
			// Every agent joins through the advertised topic as given, as rtcomm.js does.
			agents := joinAgents(e, queue, sh.O(), sh.O(), sh.O())
			alice := e.Party("alice", sh.O())
			behind := spec.QueueTopic(queue.Topic) // where a caller (or the connector) publishes
			var ids []string
			for range 6 {
				ids = append(ids, alice.Call(queue.EndpointID, MustOffer("chrome-audio-offer"), endpoint.WithTopic(behind)).ID())
			}
			checkOneAgentEach(e, agents, ids, queue)
		}, SpecTimeout(time.Minute))

		It(sh.In("routes calls to the queue ID through the connector to exactly one agent each"), Req("QUE-002", "QUE-001"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			Needs(e, FeatureQueues)
			queue := advertisedQueue(e)
			agents := joinAgents(e, queue, sh.O(), sh.O(), sh.O())
			alice := e.Party("alice", sh.O())
			var ids []string
			for range 4 {
				ids = append(ids, alice.Call(queue.EndpointID, MustOffer("chrome-audio-offer")).ID()) // to the connector topic
			}
			checkOneAgentEach(e, agents, ids, queue)
		}, SpecTimeout(time.Minute))
	}
})

// advertisedQueue queries services and returns the scenario's queue as advertised,
// checking its topic is a subscription filter an agent can use as given. QUE-001
func advertisedQueue(e *Env) spec.Queue {
	GinkgoHelper()
	probe := e.Prober("qprobe")
	_, resp := probe.Answer("SQ-002", probe.Query())
	var queue spec.Queue
	for _, q := range resp.Services[spec.ServiceCallQueue].Queues {
		for _, want := range e.Queues() {
			if q.EndpointID == want {
				queue = q
			}
		}
	}
	Check("QUE-001", queue.Topic != "", "the queue "+QuoteList(e.Queues())+" advertised with a topic", "%s", BriefJSON(resp.Services))
	err := spec.ValidateFilter(spec.QueueFilter(queue.Topic))
	Check("QUE-001", err == nil, "the advertised topic a subscription filter an agent uses as given", "%q: %v", queue.Topic, err)
	return queue
}

// joinAgents connects one agent per options and subscribes each to the queue's advertised
// topic exactly as rtcomm.js does (endpoint.JoinQueue).
func joinAgents(e *Env, queue spec.Queue, opts ...PartyOptions) []*Party {
	GinkgoHelper()
	var agents []*Party
	for i, o := range opts {
		o.NoRegister = true // an agent needs no presence to take queued calls
		a := e.Party(fmt.Sprintf("agent%d", i), o)
		c, cancel := e.OpContext()
		Harness(a.JoinQueue(c, queue.Topic), "agent joins the queue through "+queue.Topic)
		cancel()
		agents = append(agents, a)
	}
	return agents
}

// checkOneAgentEach counts, per call, the agents the START_SESSION reached. QUE-002
func checkOneAgentEach(e *Env, agents []*Party, ids []string, queue spec.Queue) {
	GinkgoHelper()
	count := map[string]int{}
	time.Sleep(e.Quiet() * 2) // one window for all agents
	for _, a := range agents {
		for _, m := range a.Inbox().Collect(e.Ctx, 0, 0, IsMethod(spec.MethodStartSession)) {
			count[m.Decode().SigSessID]++
		}
	}
	var wrong []string
	for _, id := range ids {
		if count[id] != 1 {
			wrong = append(wrong, fmt.Sprintf("session %s reached %d agents", id[:8], count[id]))
		}
	}
	Check("QUE-002", len(wrong) == 0, fmt.Sprintf("each of %d calls to %s at exactly one of %d agents that joined %s as given",
		len(ids), queue.EndpointID, len(agents), queue.Topic), "%s", strings.Join(wrong, "; "))
}
