package broker

import (
	"fmt"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Topic limits and the retained-message policy, in open and secure mode alike.
const (
	// DefaultMaxTopicLength is Config.MaxTopicLength when zero, in bytes.
	DefaultMaxTopicLength = 1024
	// DefaultMaxTopicLevels is Config.MaxTopicLevels when zero.
	DefaultMaxTopicLevels = 32
	// DefaultRetainedQuota is Config.RetainedQuota when zero: bytes of retained payload
	// one client (secure mode: one user) may hold. A DOCUMENT is a few hundred bytes.
	DefaultRetainedQuota = 256 << 10
	// DefaultMaxSubscriptions is Config.MaxSubscriptions when zero: filters one client
	// may hold (an endpoint needs about three, the connector about ten).
	DefaultMaxSubscriptions = 1000
	// DefaultRetainedTotal is Config.RetainedTotal when zero: retained payload bytes of
	// the whole broker.
	DefaultRetainedTotal = 64 << 20
)

// limitsHook enforces the topic limits before mochi does any work on a topic (ID-017).
//
// mochi's order for a packet: decode, OnPacketRead (here), validation, then per type
// OnACLCheck / OnSubscribe / OnPublish and the topic tree. A 32,000-level filter costs
// seconds of CPU in the tree; here it costs one pass over the string. It is the first
// hook after compatHook, in open and secure mode.
type limitsHook struct {
	mqtt.HookBase
	srv       *mqtt.Server
	maxLen    int
	maxLevels int
	maxSubs   int
}

// ID names the hook in mochi's logs.
func (h *limitsHook) ID() string { return "rtcomm-limits" }

// Provides declares exactly the hook methods limitsHook implements.
func (h *limitsHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnConnect
}

// topicError says why a topic name or filter breaks the limits ("" if it does not).
// It stops counting at the first level over the limit: no work grows with the input.
func (h *limitsHook) topicError(t string) string {
	if len(t) > h.maxLen {
		return fmt.Sprintf("%d bytes (limit %d)", len(t), h.maxLen)
	}
	levels := 1
	for i := 0; i < len(t); i++ {
		if t[i] == '/' {
			levels++
			if levels > h.maxLevels {
				return fmt.Sprintf("more than %d levels", h.maxLevels)
			}
		}
	}
	return ""
}

// OnPacketRead refuses PUBLISH, SUBSCRIBE and UNSUBSCRIBE packets with a topic over the
// limits: the client is disconnected (MQTT 5: DISCONNECT 0x90 or 0x8F first), before
// any topic-tree work. A topic alias (MQTT 5) is only ever bound to a topic that
// passed here, so an aliased PUBLISH with an empty topic needs no check.
func (h *limitsHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var bad, kind string
	code := packets.ErrTopicFilterInvalid
	switch pk.FixedHeader.Type {
	case packets.Publish:
		bad, kind, code = h.topicError(pk.TopicName), "topic", packets.ErrTopicNameInvalid
	case packets.Subscribe, packets.Unsubscribe:
		if pk.FixedHeader.Type == packets.Subscribe && cl.State.Subscriptions.Len()+len(pk.Filters) > h.maxSubs {
			// Counted before any filter is looked at: one SUBSCRIBE may carry 100,000s.
			bad, kind, code = fmt.Sprintf("%d filters held, %d more asked (limit %d)", cl.State.Subscriptions.Len(), len(pk.Filters), h.maxSubs),
				"subscriptions", packets.ErrQuotaExceeded
			break
		}
		for _, f := range pk.Filters {
			if bad = h.topicError(f.Filter); bad != "" {
				kind = "filter"
				break
			}
		}
	}
	if bad == "" {
		return pk, nil
	}
	h.Log.Warn("topic over the limits: disconnecting client", "client", cl.ID, "user", string(cl.Properties.Username),
		"kind", kind, "why", bad, "remote", cl.Net.Remote)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.srv.DisconnectClient(cl, code) // ID-017
	}
	return pk, fmt.Errorf("%s %s: %w", kind, bad, packets.ErrRejectPacket) // ID-017
}

// OnConnect refuses a will topic over the limits with CONNACK (MQTT 5: 0x90 "topic
// name invalid"; 3.1/3.1.1, which have no such code: 0x05 "not authorized").
func (h *limitsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	bad := h.topicError(pk.Connect.WillTopic)
	if bad == "" {
		return nil
	}
	h.Log.Info("connect refused: will topic over the limits", "client", pk.Connect.ClientIdentifier, "why", bad)
	code := packets.ErrTopicNameInvalid
	if pk.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized
	}
	if err := h.srv.SendConnack(cl, code, false, nil); err != nil { // ID-017
		return fmt.Errorf("will topic %s; send connack: %w", bad, err)
	}
	return fmt.Errorf("will topic %s: %w", bad, packets.ErrTopicNameInvalid)
}

// retainHook keeps retained messages within a per-owner byte quota and a broker-wide
// total, and in secure mode to presence topics (ID-016). It is the last hook: it sees only publishes the
// identity rule let through, and wills after compatHook restored their payload.
type retainHook struct {
	mqtt.HookBase
	policy *retainedPolicy
}

// ID names the hook in mochi's logs.
func (h *retainHook) ID() string { return "rtcomm-retained" }

// Provides declares exactly the hook methods retainHook implements.
func (h *retainHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnWill, mqtt.OnRetainMessage, mqtt.OnRetainedExpired:
		return true
	}
	return false
}

// OnPublish applies the retained policy to a retained PUBLISH that every earlier hook
// (the identity rule) let through: outside presence, or over the quota, it is delivered
// live but not retained.
func (h *retainHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain {
		return pk, nil
	}
	if why := h.policy.admit(h.owner(cl), pk.TopicName, len(pk.Payload)); why != "" {
		h.Log.Info("retain flag dropped", "client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload), "why", why)
		pk.FixedHeader.Retain = false // ID-016
	}
	return pk, nil
}

// OnWill applies the same policy to a retained will (mochi retains wills without
// OnPublish). It runs after compatHook has restored an empty will payload.
func (h *retainHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if !will.Retain {
		return will, nil
	}
	if why := h.policy.admit(h.owner(cl), will.TopicName, len(will.Payload)); why != "" {
		h.Log.Info("retain flag of a will dropped", "client", cl.ID, "topic", will.TopicName, "why", why)
		will.Retain = false // ID-016
	}
	return will, nil
}

// OnRetainMessage keeps the accounting exact when a retained message is replaced or
// cleared by anyone (a clear frees its owner's quota).
func (h *retainHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	h.policy.stored(h.owner(cl), pk.TopicName, len(pk.Payload))
}

// OnRetainedExpired frees the bytes of a retained message mochi expired (MQTT 5 expiry).
func (h *retainHook) OnRetainedExpired(topic string) {
	h.policy.stored("", topic, 0)
}

// owner is who a client's retained bytes are charged to: the user in secure mode (a
// user cannot escape the quota with new client IDs), the client ID otherwise.
func (h *retainHook) owner(cl *mqtt.Client) string {
	if len(cl.Properties.Username) > 0 {
		return "u:" + string(cl.Properties.Username)
	}
	return "c:" + cl.ID
}

// retainedPolicy decides which retained messages are kept and accounts their bytes.
type retainedPolicy struct {
	path     string // secure mode: retained only on <path>sphere/...; "" (open mode): anywhere
	quota    int    // per owner
	total    int    // broker-wide
	exempt   string // owner key never charged (the connector user), "" for none
	mu       sync.Mutex
	byTopic  map[string]retainedEntry
	perOwner map[string]int
	sum      int
}

type retainedEntry struct {
	owner string
	size  int
}

func newRetainedPolicy(path string, quota, total int, exemptUser string) *retainedPolicy {
	p := &retainedPolicy{path: path, quota: quota, total: total,
		byTopic: map[string]retainedEntry{}, perOwner: map[string]int{}}
	if exemptUser != "" {
		p.exempt = "u:" + exemptUser
	}
	return p
}

// presence reports whether topic may hold a retained message. In secure mode (path set)
// only a presence topic, the one place rtcomm retains: <path>sphere/<id> or
// <path>sphere/<group>/<id>, levels non-empty; elsewhere a retained message could sit in
// an inbox whose owner can never clear it (its last level is the publisher's). In open
// mode anyone may clear anything, and the broker serves every topic path (the harness
// gives each scenario its own), so only the quotas apply there: a connector that wrongly
// retains session messages stays visible (ROB-003).
func (p *retainedPolicy) presence(topic string) bool {
	if p.path == "" {
		return true
	}
	rest, ok := strings.CutPrefix(topic, p.path+"sphere/")
	return ok && validPresenceRest(rest)
}

// validPresenceRest: "<id>" or "<group>/<id>", no empty level.
func validPresenceRest(rest string) bool {
	first, second, two := strings.Cut(rest, "/")
	if first == "" || strings.ContainsAny(rest, "+#") {
		return false
	}
	return !two || (second != "" && !strings.Contains(second, "/"))
}

// admit reports why a retained message of size bytes from owner at topic must not be
// retained ("" = retain it). An empty payload (a clear) is always admitted. The bytes
// are reserved here, under the lock, so concurrent publishes of one user cannot
// overshoot together; stored settles the books once mochi has retained it.
func (p *retainedPolicy) admit(owner, topic string, size int) string {
	if size == 0 {
		return ""
	}
	if !p.presence(topic) {
		return "retained messages are kept only on presence topics (<path>sphere/...)" // ID-016
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.byTopic[topic]
	ownerUse := p.perOwner[owner]
	if prev.owner == owner {
		ownerUse -= prev.size
	}
	if owner != p.exempt && ownerUse+size > p.quota {
		return fmt.Sprintf("retained quota of %d bytes per client exceeded", p.quota)
	}
	if p.sum-prev.size+size > p.total {
		return fmt.Sprintf("broker-wide retained limit of %d bytes reached", p.total)
	}
	p.setLocked(owner, topic, size)
	return ""
}

// stored records what mochi retained (size 0: the topic was cleared).
func (p *retainedPolicy) stored(owner, topic string, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(owner, topic, size)
}

func (p *retainedPolicy) setLocked(owner, topic string, size int) {
	if prev, ok := p.byTopic[topic]; ok {
		p.perOwner[prev.owner] -= prev.size
		if p.perOwner[prev.owner] <= 0 {
			delete(p.perOwner, prev.owner)
		}
		p.sum -= prev.size
		delete(p.byTopic, topic)
	}
	if size == 0 {
		return
	}
	p.byTopic[topic] = retainedEntry{owner: owner, size: size}
	p.perOwner[owner] += size
	p.sum += size
}

// usage returns the retained bytes charged to owner and in total (tests, Stats).
func (p *retainedPolicy) usage(owner string) (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.perOwner[owner], p.sum
}
