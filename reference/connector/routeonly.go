package connector

import (
	"encoding/json"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Route-only: the calls a route-only connector forwarded, so the caller's later
// messages on the general connector topic still reach the callee.

// routeOnlyMemory is how long a route-only connector remembers a call it forwarded,
// so that what the caller sends to the general connector topic for it (rtcomm.js:
// the START_SESSION transaction's MESSAGEs; a STOP_SESSION when it saw no PRANSWER,
// however late) still reaches the callee. The connector never sees the call end
// unless the caller's STOP passes it, hence the bound.
const routeOnlyMemory = time.Hour

// roCall is a call a route-only connector forwarded.
type roCall struct {
	caller, callerTopic, callee, calleeTopic string
	expires                                  time.Time
}

// rememberRouteOnlyLocked notes a forwarded call (bounded by MaxSessions: beyond it
// the call is not remembered and only its START_SESSION was routed).
func (c *Connector) rememberRouteOnlyLocked(sigSessID, caller, callerTopic, callee, calleeTopic string, o *outbox) {
	if _, dup := c.roCalls[sigSessID]; !dup && len(c.roCalls) >= c.cfg.MaxSessions {
		c.log.Warn("route-only: call table full; the caller's later messages to the connector topic cannot be delivered", "sigSessID", short(sigSessID))
		return
	}
	c.roCalls[sigSessID] = roCall{caller: caller, callerTopic: callerTopic, callee: callee, calleeTopic: calleeTopic,
		expires: time.Now().Add(routeOnlyMemory)}
	if c.replicated() {
		b, _ := json.Marshal(ownRecord{Owner: c.id, SigSessID: sigSessID, Caller: caller, Callee: callee,
			CalleeTopic: calleeTopic, ToEndpointID: callee, RouteOnly: true})
		*o = append(*o, pub{topic: c.ownPrefix() + ownKey(sigSessID), qos: 1, raw: b})
	}
}

// forgetRouteOnlyLocked drops a remembered call (and its ownership record).
func (c *Connector) forgetRouteOnlyLocked(sigSessID string, o *outbox) {
	delete(c.roCalls, sigSessID)
	c.unrecordLocked(sigSessID, o)
}

// endRouteOnlyCallsOfLocked tells the peers of an endpoint that left (will, clean
// unregister) that its remembered calls are over, as the in-path connector does
// (REG-008): STOP_SESSION as from the one that left. A call that had already ended
// unseen gets a STOP_SESSION for a session its peer no longer has, which clients
// ignore. O(remembered calls) per unregistration.
func (c *Connector) endRouteOnlyCallsOfLocked(id, reason string, o *outbox) {
	if !c.cfg.RouteOnly || len(c.roCalls) == 0 {
		return
	}
	for sid, rc := range c.roCalls {
		var to, from string
		switch id {
		case rc.caller:
			to, from = spec.Join(rc.calleeTopic, rc.caller), rc.callerTopic
		case rc.callee:
			to, from = spec.Join(rc.callerTopic, rc.callee), rc.calleeTopic
		default:
			continue
		}
		o.msg(to, 0, &spec.Message{Method: spec.MethodStopSession, RtcommVer: spec.Version, FromTopic: from,
			SigSessID: sid, Reason: reason}) // REG-008
		c.forgetRouteOnlyLocked(sid, o)
	}
}

// pruneRouteOnlyLocked forgets calls older than routeOnlyMemory.
func (c *Connector) pruneRouteOnlyLocked(now time.Time, o *outbox) {
	for id, rc := range c.roCalls {
		if now.After(rc.expires) {
			c.forgetRouteOnlyLocked(id, o)
		}
	}
}

// forwardRouteOnly delivers a message of a call this route-only connector forwarded
// and does not track: the caller's messages reach the callee at <callee
// address>/<caller> untouched (fromTopic stays the caller's, as for START_SESSION).
// Only the caller of a remembered call is served: that is what it could publish
// to the callee's inbox itself, so the path gives nobody new power, and a message
// for a call never forwarded (or from anyone else) is refused as before. ID-006 MSG-003
func (c *Connector) forwardRouteOnly(sender string, in *inbound, msg mqttc.Message) bool {
	if !c.cfg.RouteOnly {
		return false
	}
	var o outbox
	c.mu.Lock()
	rc, ok := c.roCalls[string(in.sigSessID)]
	if ok && sender == rc.caller && in.method == spec.MethodStopSession {
		c.forgetRouteOnlyLocked(string(in.sigSessID), &o)
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	if sender != rc.caller {
		c.reject(msg.Topic, in.msg(), msg.QoS, "not_a_party", sender+" is not the caller of session "+short(string(in.sigSessID))) // ID-006
		return true
	}
	c.publish(spec.Join(rc.calleeTopic, sender), msg.QoS, false, msg.Payload) // SESS-002 MSG-002
	c.forwarded.Add(1)
	c.flush(o)
	return true
}
