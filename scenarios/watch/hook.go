package watch

import (
	"errors"
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
	// Broker, when set, also judges the broker's own deliveries and wills (broker.go); its
	// findings go to Checker (Report) and OnFinding.
	Broker *Broker
	// OnFinding, when set, is called with each finding as it is made (for the log and counters).
	OnFinding func(Finding)
}

// ID names the hook in mochi's hook list.
func (h *Hook) ID() string { return "rtcomm-check" }

// Provides declares exactly the hook methods Hook implements.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnWillSent, mqtt.OnDisconnect, mqtt.OnSubscribe, mqtt.OnPublishDropped:
		return true
	case mqtt.OnConnect, mqtt.OnSubscribed, mqtt.OnUnsubscribe, mqtt.OnUnsubscribed, mqtt.OnPacketSent, mqtt.OnPacketRead,
		mqtt.OnSessionEstablish, mqtt.OnRetainMessage, mqtt.OnClientExpired, // broker_sessions.go, broker_retainpolicy.go
		mqtt.OnPublished, mqtt.OnRetainPublished: // broker_retained.go (and OnPublishDropped, above)
		return h.Broker != nil
	}
	return false
}

// OnConnect tells the broker judge the will a CONNECT declares (it never refuses one).
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if h.Broker != nil && cl != nil {
		h.Broker.Connected(cl, cl.ID, pk.Connect.Clean, DeclaredWill(pk))
	}
	return nil
}

// DeclaredWill returns the will a CONNECT declares (nil when none).
func DeclaredWill(pk packets.Packet) *Will {
	if !pk.Connect.WillFlag {
		return nil
	}
	return &Will{Topic: pk.Connect.WillTopic, Payload: pk.Connect.WillPayload, Retained: pk.Connect.WillRetain, QoS: pk.Connect.WillQos}
}

// OnSubscribed tells the broker judge the QoS it granted per filter.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if h.Broker != nil && cl != nil {
		h.report(h.Broker.Subscribed(cl.ID, Filters(pk), codes))
	}
}

// OnUnsubscribe tells the broker judge a client's filters go, before the broker removes
// them (a publish racing the UNSUBSCRIBE is not owed to the client); it changes nothing.
func (h *Hook) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.Broker != nil && cl != nil {
		h.Broker.Unsubscribing(cl.ID, Filters(pk))
	}
	return pk
}

// OnUnsubscribed tells the broker judge a client's filters went.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if h.Broker != nil && cl != nil {
		h.Broker.Unsubscribed(cl.ID, Filters(pk))
	}
}

// Filters returns the filters of a SUBSCRIBE or UNSUBSCRIBE.
func Filters(pk packets.Packet) []string {
	fs := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		fs[i] = f.Filter
	}
	return fs
}

// OnPacketRead tells the broker judge of a CONNECT or a PUBLISH as the client sent it,
// before any hook of the broker could refuse or rewrite it (a PUBLISH read is also ordered
// against the subscriptions granted, for the publish ledger); it never changes or refuses a
// packet.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.Broker == nil || cl == nil {
		return pk, nil
	}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		h.Broker.ConnectRead(cl, pk.Connect.ClientIdentifier, pk.ProtocolVersion, time.Now())
	case packets.Publish:
		PublishRead(h.Broker, cl, pk)
		h.Broker.StampRead(cl)
		return pk, nil
	}
	h.Broker.PacketRead(cl, cl.ID)
	return pk, nil
}

// OnPublishFate hands the broker judge's publish ledger what the broker did with a PUBLISH
// it read whole (the patched mochi's mqtt.PublishFateHook, reference/broker/mochipatch/fate.go):
// refused, by whom, or published and to which clients.
func (h *Hook) OnPublishFate(cl *mqtt.Client, pk packets.Packet, f mqtt.PublishFate) {
	if h.Broker != nil && cl != nil {
		h.report(h.Broker.PublishFate(cl, cl.ID, pk.TopicName, pk.Payload, pk.FixedHeader.Qos, FateOf(f), time.Now()))
	}
}

// FateOf turns mochi's PublishFate into the judge's Fate.
func FateOf(f mqtt.PublishFate) Fate {
	out := Fate{Refused: f.Refused, By: f.Hook, ACL: f.Hook == "" && errors.Is(f.Refused, packets.ErrNotAuthorized)}
	if f.Refused == nil {
		out.Matched = make([]MatchedClient, len(f.Deliveries))
		for i, d := range f.Deliveries {
			out.Matched[i] = MatchedClient{Client: d.Client, ReadDenied: errors.Is(d.Err, packets.ErrNotAuthorized)}
		}
	}
	return out
}

// OnPacketSent judges a CONNACK or a PUBLISH the broker wrote to a client (the packet as
// written, after every hook of the broker).
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if h.Broker == nil || cl == nil {
		return
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		h.report(h.Broker.Delivered(cl.ID, pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Dup, time.Now()))
		if pk.FixedHeader.Retain {
			h.Broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
		}
	case packets.Connack:
		h.report(h.Broker.ConnackSent(cl, pk.ReasonCode, time.Now()))
		h.report(h.Broker.SessionAcked(cl, pk.ReasonCode, pk.SessionPresent, time.Now()))
	}
}

// FinishBroker judges what only time shows of the broker (a CONNECT never answered) as of
// now, reporting it like any finding.
func (h *Hook) FinishBroker(now time.Time) {
	if h.Broker != nil {
		h.report(h.Broker.Finish(now))
	}
}

func (h *Hook) report(fs []Finding) {
	for _, f := range fs {
		h.Checker.Report(f)
		if h.OnFinding != nil {
			h.OnFinding(f)
		}
	}
}

// OnSubscribe tells the checker who subscribes to what: a client that takes SERVICE_QUERYs
// is a connector, whatever it then publishes (its plain-text or retained mistakes included).
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl != nil {
		for _, f := range pk.Filters {
			h.Checker.Subscribed(cl.ID, f.Filter)
		}
		if h.Broker != nil {
			h.Broker.Subscribing(cl.ID, Filters(pk))
			h.Broker.SubscribeOptions(cl.ID, SubscribeOptions(pk))
		}
	}
	return pk
}

// OnPublish judges the publish and lets it through unchanged.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.observe(cl, pk)
	if h.Broker != nil {
		o := Observation{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain, Time: time.Now()}
		if cl != nil {
			o.Client = cl.ID
			// A hook added after the secured broker's identity hook sees only what it let through.
			h.report(h.Broker.PublishedBy(string(cl.Properties.Username), o))
		}
		h.report(h.Broker.Published(o, pk.FixedHeader.Qos))
	}
	return pk, nil
}

// OnPublishDropped tells the checker the broker dropped a delivery (a full client queue):
// a connector that never got a message is not blamed for not acting on it (dropped.go).
// It tells the broker judge of a retained message dropped so (lawful: not missing,
// broker_retained.go).
func (h *Hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl == nil {
		return
	}
	h.Checker.DeliveryDropped(cl.ID, pk.TopicName, pk.Payload)
	if h.Broker != nil && pk.FixedHeader.Retain {
		h.Broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
	}
}

// OnWillSent judges a Last Will the broker published for a client that went away (an
// empty retained will unregisters an endpoint, REG-008).
// With a Broker judge it also compares the will with the one CONNECT declared (BRK-002).
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.observe(cl, pk)
	if h.Broker != nil && cl != nil {
		h.Broker.WillRetained(cl, cl.ID, string(cl.Properties.Username), Will{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain}, time.Now())
		h.report(h.Broker.WillSent(cl, cl.ID, Will{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain, QoS: pk.FixedHeader.Qos}, time.Now()))
	}
}

// OnDisconnect tells the checker a client went: a connector that ends its sessions as it
// shuts down is not reaping them early (SESS-009).
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl != nil {
		h.Checker.Disconnected(cl.ID, time.Now())
		if h.Broker != nil {
			if expire {
				h.Broker.SessionExpiring(cl, cl.ID) // mochi unsubscribes the client right after
			}
			h.Broker.Disconnected(cl, cl.ID)
			h.report(h.Broker.SessionEnded(cl, cl.ID, expire, time.Now()))
		}
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
