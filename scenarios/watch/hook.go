package watch

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook runs a Checker inside the embedded broker (broker.Config.Hooks): it sees every
// publish the broker's own hooks let in, with the MQTT client that sent it, before any
// subscriber does, so no wildcard subscription is needed and no ACL hides a topic from it.
// It also sees the Last Wills the broker publishes (they bypass OnPublish) and when a
// client goes. It never changes or refuses a publish.
type Hook struct {
	mqtt.HookBase
	Checker *Checker
	// OnFinding, when set, is called with each finding as it is made (for the log and counters).
	OnFinding func(Finding)
}

// ID names the hook in mochi's hook list.
func (h *Hook) ID() string { return "rtcomm-check" }

// Provides declares exactly the hook methods Hook implements.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWillSent || b == mqtt.OnDisconnect || b == mqtt.OnSubscribe
}

// OnSubscribe tells the checker who subscribes to what: a client that takes SERVICE_QUERYs
// is a connector, whatever it then publishes (its plain-text or retained mistakes included).
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl != nil {
		for _, f := range pk.Filters {
			h.Checker.Subscribed(cl.ID, f.Filter)
		}
	}
	return pk
}

// OnPublish judges the publish and lets it through unchanged.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.observe(cl, pk)
	return pk, nil
}

// OnWillSent judges a Last Will the broker published for a client that went away (an
// empty retained will unregisters an endpoint, REG-008).
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) { h.observe(cl, pk) }

// OnDisconnect tells the checker a client went: a connector that ends its sessions as it
// shuts down is not reaping them early (SESS-009).
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl != nil {
		h.Checker.Disconnected(cl.ID, time.Now())
	}
}

func (h *Hook) observe(cl *mqtt.Client, pk packets.Packet) {
	o := Observation{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain, Time: time.Now()}
	if cl != nil {
		o.Client = cl.ID
	}
	for _, f := range h.Checker.Observe(o) {
		if h.OnFinding != nil {
			h.OnFinding(f)
		}
	}
}
