package faulty

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// brokerFault is a mochi hook that breaks one thing; each method it sets is one bug.
type brokerFault struct {
	mqtt.HookBase
	name      string
	onPublish func(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error)
	onSub     func(pk packets.Packet) packets.Packet
	onWill    func(w mqtt.Will) mqtt.Will
	onACL     func(topic string, write bool) bool
	onRead    func(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error)
	onEncode  func(pk packets.Packet) packets.Packet
	onConnect func(pk packets.Packet) error
}

// ID names the hook in mochi's logs.
func (h *brokerFault) ID() string { return "faulty-" + h.name }

// Provides declares the hook methods this fault overrides.
func (h *brokerFault) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish:
		return h.onPublish != nil
	case mqtt.OnSubscribe:
		return h.onSub != nil
	case mqtt.OnWill:
		return h.onWill != nil
	case mqtt.OnACLCheck:
		return h.onACL != nil
	case mqtt.OnPacketRead:
		return h.onRead != nil
	case mqtt.OnPacketEncode:
		return h.onEncode != nil
	case mqtt.OnConnect:
		return h.onConnect != nil
	}
	return false
}

// OnPublish runs the fault's publish bug.
func (h *brokerFault) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return h.onPublish(cl, pk)
}

// OnSubscribe runs the fault's subscribe bug.
func (h *brokerFault) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	return h.onSub(pk)
}

// OnWill runs the fault's will bug.
func (h *brokerFault) OnWill(_ *mqtt.Client, w mqtt.Will) (mqtt.Will, error) { return h.onWill(w), nil }

// OnACLCheck runs the fault's ACL bug (it is the last word: the open broker allows all).
func (h *brokerFault) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	return h.onACL(topic, write)
}

// OnPacketRead runs the fault's packet bug.
func (h *brokerFault) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return h.onRead(cl, pk)
}

// OnPacketEncode runs the fault's delivery bug.
func (h *brokerFault) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	return h.onEncode(pk)
}

// OnConnect runs the fault's CONNECT bug (an error refuses the client: connection closed).
func (h *brokerFault) OnConnect(_ *mqtt.Client, pk packets.Packet) error { return h.onConnect(pk) }

// brokerFaults are bugs of the MQTT broker, planted as mochi hooks on an embedded broker
// that replaces the target's.
func brokerFaults() []Fault {
	fault := func(name, desc, req, check string, h *brokerFault) Fault {
		h.name = name
		return Fault{Name: name, Description: desc, Breaks: []string{req}, Check: check,
			hooks: []func() mqtt.Hook{func() mqtt.Hook { return h }}}
	}
	return []Fault{
		fault("forgets-retained", "the broker delivers retained messages live but does not keep them for later subscribers",
			"BRK-001", "one retained message at", &brokerFault{onPublish: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
				if len(pk.Payload) > 0 {
					pk.FixedHeader.Retain = false
				}
				return pk, nil
			}}),
		fault("empty-retained-does-not-clear", "the broker forwards an empty retained PUBLISH but keeps the retained message it should clear",
			"BRK-001", "no retained message after the empty retained publish", &brokerFault{onPublish: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
				if pk.FixedHeader.Retain && len(pk.Payload) == 0 {
					pk.FixedHeader.Retain = false
				}
				return pk, nil
			}}),
		fault("will-not-retained", "the broker publishes a Last Will without its retain flag, so an empty will never clears the registration",
			"BRK-002", "the retained empty will clears the registration", &brokerFault{onWill: func(w mqtt.Will) mqtt.Will {
				w.Retain = false
				return w
			}}),
		fault("loses-wills", "the broker publishes a client's Last Will on the wrong topic (it never reaches the will topic)",
			"BRK-002", "the empty Last Will at", &brokerFault{onWill: func(w mqtt.Will) mqtt.Will {
				w.TopicName = "$faulty/lost-will"
				return w
			}}),
		fault("hash-as-plus", "the broker implements # as a single level (no parent level, no deeper levels)",
			"BRK-003", "gets", &brokerFault{onSub: func(pk packets.Packet) packets.Packet {
				for i, f := range pk.Filters {
					if strings.HasSuffix(f.Filter, "/#") {
						pk.Filters[i].Filter = strings.TrimSuffix(f.Filter, "#") + "+"
					}
				}
				return pk
			}}),
		fault("refuses-spaces", "the broker silently drops PUBLISHes to topics with a space in a level",
			"BRK-004", "every topic delivered once", &brokerFault{onPublish: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
				if strings.Contains(pk.TopicName, " ") {
					return pk, packets.CodeSuccessIgnore // acknowledged, delivered to no one
				}
				return pk, nil
			}}),
		fault("payload-limit-48k", "the broker refuses PUBLISH payloads over 48 KB (SDP offers with many candidates exceed it)",
			"BRK-005", "-byte PUBLISH is accepted", &brokerFault{onRead: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
				if pk.FixedHeader.Type == packets.Publish && len(pk.Payload) > 48<<10 {
					return pk, errors.Join(errors.New("payload over 48 KB"), packets.ErrRejectPacket)
				}
				return pk, nil
			}}),
		fault("downgrades-qos", "the broker delivers every message at QoS 0, whatever the subscription's QoS",
			"BRK-007", "at QoS 1", &brokerFault{onEncode: func(pk packets.Packet) packets.Packet {
				if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
					pk.FixedHeader.Qos, pk.PacketID = 0, 0
				}
				return pk
			}}),
		fault("refuses-mqtt31", "the broker speaks only MQTT 3.1.1 and refuses MQTT 3.1 (MQIsdp) clients such as rtcomm.js",
			"BRK-009", "CONNACK 0 for a clean-session MQTT", &brokerFault{onRead: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
				if pk.FixedHeader.Type == packets.Connect && pk.ProtocolVersion == 3 {
					return pk, errors.Join(errors.New("MQTT 3.1 refused"), packets.ErrRejectPacket)
				}
				return pk, nil
			}}),
		fault("ignores-share-groups", "the broker treats $share/<group>/<filter> as a plain subscription to <filter>: every member gets every message",
			"BRK-010", "to exactly one of", &brokerFault{onSub: func(pk packets.Packet) packets.Packet {
				for i, f := range pk.Filters {
					if rest, ok := strings.CutPrefix(f.Filter, "$share/"); ok {
						if _, filter, ok := strings.Cut(rest, "/"); ok {
							pk.Filters[i].Filter = filter
						}
					}
				}
				return pk
			}}),
		{
			Name:        "websocket-without-mqttv31",
			Description: "the broker's WebSocket listener offers only the subprotocol mqtt and never echoes rtcomm.js's mqttv3.1",
			Breaks:      []string{"BRK-008"},
			Check:       "echoing subprotocol",
			apply:       mqttOnlyWebSocket,
		},
		{
			Name:        "loses-publisher-order",
			Description: "the broker dispatches on a pool of workers: every fifth message of a publisher is overtaken by the next",
			Breaks:      []string{"BRK-006"},
			Check:       "in publish order",
			apply: inFrontOfBroker(func() Rewrite {
				var n atomic.Int64
				return func(p Publish) []Publish {
					if n.Add(1)%5 == 0 {
						p.Delay = 30 * time.Millisecond
					}
					return []Publish{p}
				}
			}),
		},
		limitsFault("limits-skip-filters", "the secured broker bounds PUBLISH and will topics (1,024 bytes, 32 levels) but not SUBSCRIBE filters, which only its topic tree's 1,024-level guard stops",
			"-level filter is refused", false, true),
		limitsFault("limits-skip-wills", "the secured broker bounds PUBLISH topics and SUBSCRIBE filters (1,024 bytes, 32 levels) but not will topics, which only its topic tree's 1,024-level guard stops",
			"levels is refused (CONNACK refusal", true, false),
		{
			Name:        "lets-ids-be-spoofed",
			Description: "the \"secured\" listener authenticates anyone and enforces no identity ACLs",
			// No authentication: any CONNECT with a client ID takes that session over.
			// Open-mode retention: a retained message in alice's inbox is kept.
			Breaks: []string{"ID-005", "ID-007", "ID-008", "ID-009", "ID-010", "ID-011", "ID-012", "ID-016"},
			Check:  "",
			apply: func(t *scenarios.Target) error {
				openAsSecure(t, t.TCP, t.WS, "-spoofable")
				return nil
			},
		},
	}
}

// openAsSecure makes an open listener (tcp, ws) stand in for the target's secured one, with
// identities alice, bob and mallory (suffixed) that any password logs in.
func openAsSecure(t *scenarios.Target, tcp, ws, suffix string) {
	t.SecureTCP, t.SecureWS, t.SecurePath = tcp, ws, t.Decl.TopicPath
	t.Identities = nil
	for _, role := range []string{"alice", "bob", "mallory"} {
		id := role + suffix
		t.Identities = append(t.Identities, scenarios.Identity{ID: id, Username: id, Password: "any"})
	}
	t.ConnectorIdentity = &scenarios.Identity{ID: "connector", Username: "connector", Password: "any"}
}

// limitsFault is a secured broker that bounds topics by the reference's limits (1,024
// bytes, 32 levels) in PUBLISH, and in SUBSCRIBE/UNSUBSCRIBE filters and will topics only
// when filters and wills say so. What it forgets is stopped only by a loose guard of 4,096
// bytes and 1,024 levels (the reference's own limits hook, reconfigured), so the scenario's
// 32,000-level attack stays cheap and ID-017's refusal checks catch the fault, not timing.
func limitsFault(name, desc, check string, filters, wills bool) Fault {
	over := func(topic string) bool {
		return len(topic) > broker.DefaultMaxTopicLength || strings.Count(topic, "/")+1 > broker.DefaultMaxTopicLevels
	}
	h := &brokerFault{name: name, onRead: func(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
		bad := false
		switch pk.FixedHeader.Type {
		case packets.Publish:
			bad = over(pk.TopicName)
		case packets.Subscribe, packets.Unsubscribe:
			for _, f := range pk.Filters {
				bad = bad || (filters && over(f.Filter))
			}
		}
		if bad {
			return pk, errors.Join(errors.New("topic over the limits"), packets.ErrRejectPacket)
		}
		return pk, nil
	}}
	if wills {
		h.onConnect = func(pk packets.Packet) error {
			if pk.Connect.WillFlag && over(pk.Connect.WillTopic) {
				return errors.New("will topic over the limits")
			}
			return nil
		}
	}
	return Fault{Name: name, Description: desc, Breaks: []string{"ID-017"}, Check: check,
		apply: withSecureBroker(func(c *broker.Config) {
			c.MaxTopicLength, c.MaxTopicLevels = 4096, 1024
			c.Hooks = append(c.Hooks, h)
		})}
}
