package watch

import (
	"bytes"
	"slices"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// DeliveryDropped tells the checker the broker dropped its delivery of a publish to client
// (the hook's OnPublishDropped: the client's queue was full). A connector that never got a
// party's message cannot be blamed for not acting on it: a drop is the deployment's capacity
// problem (docs/CHECK.md), which load reports as lost messages. So what the checker expects
// of the connector in answer to that publish is no longer judged: its relay (sweepLost), the
// answer to a SERVICE_QUERY (SQ-002), a DOCUMENT_REPLACED for the registration it made
// (REG-007), and the routing of calls to the endpoint whose presence it changed (REG-005,
// REG-006, REG-008, REG-009, SESS-002), until that endpoint's next registration the
// connector gets. Drops to other clients change nothing: no rule expects an endpoint to act.
func (c *Checker) DeliveryDropped(client, topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.cfg.ConnectorClients, client) {
		return
	}
	c.dropped++
	if underTopic(topic, c.topics.SphereRoot()) {
		id := spec.Sender(topic)
		c.life.unsure[id] = true // the connector's registry may differ from the checker's
		for _, r := range c.life.replaced {
			if r.now.Topic == topic && bytes.Equal(r.now.Payload, payload) {
				r.done = true // the connector never learned of the replacement REG-007
			}
		}
		return
	}
	m, _ := spec.Decode(payload)
	if m == nil {
		return
	}
	if q := c.queries[m.TransID]; q != nil && m.Method == spec.MethodServiceQuery && q.req.obs.Topic == topic {
		q.late = true // SQ-002 not judged, nor an answer that still comes
		return
	}
	if m.SigSessID == "" || !strings.HasPrefix(topic, c.topics.Connector()+"/") {
		return
	}
	os := c.origs[origKey{from: spec.Sender(topic), method: string(m.Method), sigSessID: m.SigSessID}]
	for i := len(os) - 1; i >= 0; i-- {
		if o := &os[i]; !o.used && !o.dropped && o.obs.Topic == topic && bytes.Equal(o.obs.Payload, payload) {
			o.dropped = true
			return
		}
	}
}

// DroppedToConnectors is how many deliveries to a connector the broker dropped (their
// consequences not judged, DeliveryDropped).
func (c *Checker) DroppedToConnectors() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}
