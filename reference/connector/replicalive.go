package connector

import (
	"encoding/json"
	"sort"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Replica liveness: who is up, the start-up hello, and ending the sessions of a
// replica that went (the ownership records are in owners.go).

// liveWill is the will that clears this replica's liveness record.
func (c *Connector) liveWill() *mqttc.Will {
	if !c.replicated() {
		return nil
	}
	return &mqttc.Will{Topic: c.livePrefix() + c.id, Payload: nil, QoS: 1}
}

// liveDoc is this replica's liveness record.
func (c *Connector) liveDoc() []byte {
	b, _ := json.Marshal(map[string]string{"replica": c.id, "sessionTopic": c.inPath})
	return b
}

// onLive tracks which replicas are up; a replica that goes has its sessions ended.
func (c *Connector) onLive(msg mqttc.Message) {
	id, ok := senderOf(msg.Topic, c.livePrefix())
	if !ok || c.cfg.Secure && !c.peerReplica(id) {
		return // not a connector of this group ID-015
	}
	if len(msg.Payload) > 0 {
		c.mu.Lock()
		c.live[id] = true
		delete(c.gone, id) // back (a restart under the same ID)
		c.mu.Unlock()
		return
	}
	if id == c.id {
		// Our own will, from a connection of ours the broker dropped: we are still here.
		if !c.closed.Load() && c.serving.Load() {
			c.publish(c.livePrefix()+c.id, 1, false, c.liveDoc())
		}
		return
	}
	var o outbox
	c.mu.Lock()
	wasLive := c.live[id]
	delete(c.live, id)
	c.markGoneLocked(id)
	n := 0
	if c.cleanerLocked() {
		for key, r := range c.owners {
			if r.Owner == id {
				c.endOrphanLocked(key, r, &o)
				n++
			}
		}
	} else {
		for key, r := range c.owners {
			if r.Owner == id {
				delete(c.owners, key) // the cleaner ends them
			}
		}
	}
	c.mu.Unlock()
	c.flush(o)
	if wasLive {
		c.log.Warn("replica gone", "replica", id, "sessionsEnded", n)
	}
}

// cleanerLocked reports whether this replica is the one that ends a dead
// replica's sessions: the lowest ID among the live ones (ties cannot happen:
// client IDs are unique on a broker).
func (c *Connector) cleanerLocked() bool {
	ids := make([]string, 0, len(c.live)+1)
	ids = append(ids, c.id)
	for id := range c.live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids[0] == c.id
}

// endOrphanLocked ends a session whose owner is gone: both parties are told, as
// the owner would have on its own shutdown, events fire, the record is cleared.
func (c *Connector) endOrphanLocked(key string, r ownRecord, o *outbox) {
	delete(c.owners, key)
	if r.RouteOnly {
		return // its parties talk directly: nothing to end
	}
	s := &session{id: r.SigSessID, transID: r.TransID, appContext: r.AppContext, toEndpointID: r.ToEndpointID,
		caller: party{id: r.Caller, topic: r.CallerTopic}, callee: party{id: r.Callee, topic: r.CalleeTopic},
		calleeBound: r.Callee != "", kind: kindEndpoint}
	if r.Callee == "" {
		s.kind = kindQueue // unbound: its callee cannot be told
	}
	if r.Established {
		s.state = stateEstablished
	}
	reason := "connector replica " + r.Owner + " went away"
	if c.checkPartyTopic(s.caller.topic) != nil {
		s.caller.topic = c.topics.Inbox(s.caller.id)
	}
	if s.calleeBound && c.checkPartyTopic(s.callee.topic) != nil {
		s.callee.topic = c.topics.Inbox(s.callee.id)
	}
	c.tellPartiesLocked(s, "", reason, o) // SESS-008
	if !r.Established {
		// The answer may have passed just before the owner went, after its last
		// record: a caller whose START_SESSION transaction is over ignores the
		// FAILURE, so it gets STOP_SESSION too (a waiting caller takes either).
		o.msg(spec.Join(s.caller.topic, s.calleeLevel()), 0, &spec.Message{Method: spec.MethodStopSession,
			RtcommVer: spec.Version, FromTopic: c.inPath, SigSessID: s.id, Reason: reason})
	}
	if r.Established {
		c.stopped.Add(1)
		c.sessionEvent(o, spec.EventStopped, s, "") // EVT-001
	} else {
		c.failed.Add(1)
		c.countFailureLocked("replica_gone")
		c.sessionEvent(o, spec.EventFailed, s, reason) // EVT-001
	}
	c.replicaEnded.Add(1)
}

// onHello answers a replica that just started: our liveness and every record we
// hold, published again (nothing is retained, so this is how it learns them).
func (c *Connector) onHello(msg mqttc.Message) {
	id, ok := senderOf(msg.Topic, c.helloPrefix())
	if !ok || id == c.id || c.cfg.Secure && !c.peerReplica(id) {
		return // ours, or not a connector of this group ID-015
	}
	var o outbox
	c.mu.Lock()
	c.live[id] = true
	delete(c.gone, id)
	for _, s := range c.sess.byID {
		c.recordLocked(s, &o)
	}
	for sid, rc := range c.roCalls {
		b, _ := json.Marshal(ownRecord{Owner: c.id, SigSessID: sid, Caller: rc.caller, Callee: rc.callee,
			CalleeTopic: rc.calleeTopic, ToEndpointID: rc.callee, RouteOnly: true})
		o = append(o, pub{topic: c.ownPrefix() + ownKey(sid), qos: 1, raw: b})
	}
	c.mu.Unlock()
	c.publish(c.livePrefix()+c.id, 1, false, c.liveDoc())
	c.flush(o)
}

// maxGone bounds the replicas remembered as gone.
const maxGone = 1024

// markGoneLocked remembers that replica id went, so that a record of it that
// arrives late does not make it look alive again.
func (c *Connector) markGoneLocked(id string) {
	if len(c.gone) >= maxGone {
		clear(c.gone)
	}
	c.gone[id] = true
}
