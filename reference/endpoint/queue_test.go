package endpoint_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// queueDeliveries runs calls to a call queue served by the reference connector (share
// syntax share) with agents rtcomm.js-shaped endpoints that joined the queue through its
// advertised topic, and returns how many agents received each call. QUE-001 QUE-002
func queueDeliveries(t *testing.T, url, share string, agents, calls int) map[string]int {
	t.Helper()
	v := &env{t: t, url: url, path: newPath()}
	ctx := testCtx(t)
	cfg := connector.DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath, cfg.Queues, cfg.QueueShare = v.url, v.path, []string{"support"}, share
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	got := map[string]int{}
	for i := range agents {
		acfg := v.config(fmt.Sprintf("agent%d", i))
		acfg.Shape = endpoint.ShapeRtcommJS
		acfg.OnMessage = func(_ string, m *spec.Message, _ []byte, _ time.Time) {
			if m != nil && m.Method == spec.MethodStartSession {
				mu.Lock()
				got[m.SigSessID]++
				mu.Unlock()
			}
		}
		a := v.dial(acfg)
		services, err := a.ServiceQuery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		qs := services[spec.ServiceCallQueue].Queues
		if len(qs) != 1 || spec.ValidateFilter(qs[0].Topic) != nil {
			t.Fatalf("advertised queues: expected one with a valid filter, actual %+v", qs)
		}
		if err := a.JoinQueue(ctx, qs[0].Topic); err != nil { // as given, like rtcomm.js
			t.Fatal(err)
		}
	}
	ccfg := v.config("caller")
	ccfg.Shape = endpoint.ShapeRtcommJS
	caller := v.dial(ccfg)
	if _, err := caller.ServiceQuery(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range calls {
		s, err := caller.Call(ctx, "support", sdp(spec.SDPOffer))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID())
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		out[id] = got[id]
	}
	return out
}

func TestQueueOneAgentPerCall(t *testing.T) {
	t.Parallel()
	brokers := map[string]func(*testing.T) string{
		"embedded":  func(t *testing.T) string { return startEmbedded(t) },
		"mosquitto": func(t *testing.T) string { return extbroker.MosquittoForTest(t).TCP },
	}
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			for id, n := range queueDeliveries(t, url, "", 3, 6) {
				if n != 1 {
					t.Errorf("call %s: expected exactly one agent, actual %d", id, n)
				}
			}
			// The fault the check exists for: a queue advertised as a plain topic reaches
			// every agent that joins it as given.
			for id, n := range queueDeliveries(t, url, connector.QueueShareNone, 3, 2) {
				if n != 3 {
					t.Errorf("plain queue topic, call %s: expected all 3 agents (the fault shows), actual %d", id, n)
				}
			}
		})
	}
}
