package scenarios

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Call queues (PROTOCOL.md, "Flows: Call queues").
var _ = Describe("Call queues", Area("queues"), func() {

	It("delivers each START_SESSION to a queue to exactly one agent", Req("QUE-002", "QUE-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		needs(e, FeatureQueues)
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
		Check("QUE-001", queue.Topic != "", "the queue "+quoteList(e.Queues())+" advertised with a topic", "%s", briefJSON(resp.Services))
		qTopic := e.Topics.Resolve(queue.Topic)
		const agents, calls = 3, 6
		var as []*Conn
		for i := 0; i < agents; i++ {
			a := e.MustConnect("QUE-002", fmt.Sprintf("agent%d", i), ConnOptions{Validate: true})
			Harness(a.Subscribe("$share/agents-"+e.Tag+"/"+qTopic+"/#", 0), "agent subscribes to the queue")
			as = append(as, a)
		}
		alice := e.Party("alice", PartyOptions{})
		var ids []string
		for i := 0; i < calls; i++ {
			s := alice.Call(queue.EndpointID, mustOffer("chrome-audio-offer"), endpoint.WithTopic(qTopic))
			ids = append(ids, s.ID())
		}
		count := map[string]int{}
		time.Sleep(e.Quiet() * 2) // one window for all agents
		for _, a := range as {
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
		Check("QUE-002", len(wrong) == 0, fmt.Sprintf("each of %d calls to %s at exactly one of %d agents", calls, queue.EndpointID, agents),
			"%s", strings.Join(wrong, "; "))
	}, SpecTimeout(time.Minute))

	It("routes a call addressed to the queue ID through the connector to exactly one agent", Req("QUE-002"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		needs(e, FeatureQueues)
		probe := e.Prober("qprobe")
		_, resp := probe.Answer("SQ-002", probe.Query())
		qs := resp.Services[spec.ServiceCallQueue].Queues
		Harness(errIf(len(qs) == 0, "no queue advertised"), "service query")
		queue := qs[0]
		qTopic := e.Topics.Resolve(queue.Topic)
		var as []*Conn
		for i := 0; i < 2; i++ {
			a := e.MustConnect("QUE-002", fmt.Sprintf("agent%d", i), ConnOptions{Validate: true})
			Harness(a.Subscribe("$share/agents-"+e.Tag+"/"+qTopic+"/#", 0), "agent subscribes")
			as = append(as, a)
		}
		alice := e.Party("alice", PartyOptions{})
		s := alice.Call(queue.EndpointID, mustOffer("chrome-audio-offer")) // to the connector topic
		n := 0
		time.Sleep(e.Quiet() * 2)
		for _, a := range as {
			n += len(a.Inbox().Collect(e.Ctx, 0, 0, isStartSession(s.ID())))
		}
		Check("QUE-002", n == 1, "the call reaches exactly one agent", "%d agents got it", n)
	}, SpecTimeout(time.Minute))
})
