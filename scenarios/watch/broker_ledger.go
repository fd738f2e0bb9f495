package watch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The publish ledger: what the broker did with every PUBLISH it read whole from a client
// under the topic path. The patched mochi (reference/broker/mochipatch, fate.go) tells the
// hook each one's fate once the broker is done with it: refused (by which hook, or by the
// ACL hooks together) or published, with every client its topic tree matched. The judge
// holds that against what it knows independently: the limits the broker is configured
// with, and each client's subscriptions as the client asked (before any hook rewrote
// them). So it tells a message the broker dropped from one the client never sent.

// bigPayload is the catalog's floor: payloads of at least 64 KB are delivered intact
// (BRK-005); the reference never accepts a smaller limit (broker.MinMaxPayload).
const bigPayload = 64 << 10

// sizeSuspect is the payload size from which a refusal or a miss is put down to the size
// (BRK-005): rtcomm messages are a few KB, SDP offers with many candidates up to tens of KB.
const sizeSuspect = 16 << 10

// Fate is what the broker did with one PUBLISH it read whole from a client (mochi's
// PublishFate as the hook passes it on).
type Fate struct {
	// Refused is nil when the broker published the message; otherwise why not.
	Refused error
	// By names the hook that refused it; "" when the broker itself did (malformed, the
	// client's quota, the ACL hooks' aggregate verdict: ACL, or its connection failed).
	By string
	// ACL: the ACL hooks together refused the write.
	ACL bool
	// Matched are the clients the broker's topic tree matched when it published it.
	Matched []MatchedClient
}

// MatchedClient is one client the broker's topic tree matched for a publish.
type MatchedClient struct {
	Client string
	// ReadDenied: the ACL hooks refused this client the read (its copy was not sent).
	ReadDenied bool
}

// subIndex is the judge's own topic tree of the clients' plain subscriptions as they
// asked for them: matching a publish costs its levels, not the number of subscriptions.
type subIndex struct{ root subNode }

type subNode struct {
	kids   map[string]*subNode
	filter string            // the filter ending here
	subs   map[string]uint64 // client -> when it was granted (the judge's sequence)
}

func (x *subIndex) add(filter, client string, seq uint64) {
	n := &x.root
	for level := range strings.SplitSeq(filter, "/") {
		if n.kids == nil {
			n.kids = map[string]*subNode{}
		}
		k := n.kids[level]
		if k == nil {
			k = &subNode{}
			n.kids[level] = k
		}
		n = k
	}
	if n.subs == nil {
		n.subs, n.filter = map[string]uint64{}, filter
	}
	n.subs[client] = seq
}

// remove drops a client's filter and prunes the nodes left empty.
func (x *subIndex) remove(filter, client string) {
	levels := strings.Split(filter, "/")
	var walk func(n *subNode, i int) bool // reports whether n is left empty
	walk = func(n *subNode, i int) bool {
		if i == len(levels) {
			delete(n.subs, client)
		} else if k := n.kids[levels[i]]; k != nil && walk(k, i+1) {
			delete(n.kids, levels[i])
		}
		return len(n.subs) == 0 && len(n.kids) == 0
	}
	walk(&x.root, 0)
}

// match calls fn for every indexed subscription matching topic (TopicMatches' rules: #
// matches its parent level, a leading wildcard no topic starting with $).
func (x *subIndex) match(topic string, fn func(filter, client string, seq uint64)) {
	dollar := strings.HasPrefix(topic, "$")
	// rest is what is left of the topic after n's level; done: nothing is.
	var walk func(n *subNode, rest string, first, done bool)
	walk = func(n *subNode, rest string, first, done bool) {
		wild := !first || !dollar
		if h := n.kids["#"]; h != nil && wild {
			for c, seq := range h.subs {
				fn(h.filter, c, seq)
			}
		}
		if done {
			for c, seq := range n.subs {
				fn(n.filter, c, seq)
			}
			return
		}
		level, next, more := strings.Cut(rest, "/")
		if k := n.kids[level]; k != nil {
			walk(k, next, false, !more)
		}
		if k := n.kids["+"]; k != nil && wild {
			walk(k, next, false, !more)
		}
	}
	walk(&x.root, topic, true, false)
}

// SetMaxPayload tells the judge the broker's configured PUBLISH payload limit in bytes
// (reference: --max-payload); a publish over it that the broker refuses is lawful. Without
// it, only payloads over 64 KB may be refused (BRK-005). Call it before the broker serves.
func (b *Broker) SetMaxPayload(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxPayload = n
}

// StampRead notes that the broker read a whole PUBLISH from conn (before validation
// and before the hooks after the judge's): a subscription granted before it must get it.
func (b *Broker) StampRead(conn any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	if b.reading == nil {
		b.reading = map[any]uint64{}
	}
	b.reading[conn] = b.seq
}

// indexSub and unindexSub keep the subscription index in step with subs (plain
// subscriptions only: a share group's member is chosen by the broker).
func (b *Broker) indexSub(client string, s brokerSub) {
	if s.group == "" {
		b.seq++
		b.index.add(s.filter, client, b.seq)
	}
}

func (b *Broker) unindexSub(client string, s brokerSub) {
	if s.group == "" {
		b.index.remove(s.filter, client)
	}
}

// dropSubs forgets every subscription of a client.
func (b *Broker) dropSubs(client string) {
	for _, s := range b.subs[client] {
		b.unindexSub(client, s)
	}
	delete(b.subs, client)
}

// SessionExpiring forgets the subscriptions of a client whose connection conn is ending its
// session (mochi's OnDisconnect with expire: a clean session, or MQTT 5 with no session
// expiry), unless a newer connection took the client ID over. The broker removes them
// right after, so call it before Disconnected.
func (b *Broker) SessionExpiring(conn any, client string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.reading, conn)
	if l, ok := b.live[client]; ok && l.conn == conn {
		b.dropSubs(client)
	}
}

// Unsubscribing forgets filters as an UNSUBSCRIBE asks, before the broker removes them
// (a publish racing the UNSUBSCRIBE is then not owed to the client).
func (b *Broker) Unsubscribing(client string, filters []string) { b.Unsubscribed(client, filters) }

// PublishFate judges what the broker did with a PUBLISH it read whole from conn (client,
// authenticated as user) at topic: a refusal the judge cannot put down to a lawful reason
// is a message the broker dropped; when published, a client holding a matching plain
// subscription granted before the PUBLISH was read that the broker's topic tree did not
// match (or that it refused the read on an open broker) missed it. Lawful: a malformed or
// invalid PUBLISH, the client's receive quota, a topic beyond the configured limits
// (SetLimits), a payload over the configured limit (SetMaxPayload) and over 64 KB, any
// ACL or hook refusal on a secured broker (SetSecure: its identity rule's business), share
// groups, and deliveries the broker tried and gave up lawfully (queue full, in-flight
// quota, client gone, no-local).
func (b *Broker) PublishFate(conn any, client string, topic string, payload []byte, qos byte, f Fate, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	read, stamped := b.reading[conn]
	delete(b.reading, conn)
	if !b.inPath(topic) {
		return nil
	}
	ev := func() Observation {
		return Observation{Topic: shortTopic(topic), Payload: slices.Clone(payload[:min(len(payload), 160)]), Client: client, Time: at}
	}
	if f.Refused != nil {
		return b.refused(client, topic, payload, qos, f, ev)
	}
	if !stamped {
		return nil // read before the judge started, or by a hook ahead of it: not judged
	}
	tried := func(sub string) bool {
		for _, m := range f.Matched {
			if m.Client == sub {
				return !m.ReadDenied || b.secure != nil // a secured broker's ACL decides reads
			}
		}
		return false
	}
	var missed map[string][]string // requirement -> "client (filter)"
	b.index.match(topic, func(filter, sub string, seq uint64) {
		if seq >= read || tried(sub) {
			return // granted after the PUBLISH was read, or the broker tried to deliver it
		}
		if missed == nil {
			missed = map[string][]string{}
		}
		req := missRequirement(filter, topic, payload)
		missed[req] = append(missed[req], fmt.Sprintf("%s (subscribed to %s)", sub, shortTopic(filter)))
	})
	var out []Finding
	for _, req := range slices.Sorted(maps.Keys(missed)) {
		who := missed[req]
		slices.Sort(who)
		names := strings.Join(who[:min(len(who), 5)], ", ")
		if len(who) > 5 {
			names += fmt.Sprintf(" and %d more", len(who)-5)
		}
		out = append(out, b.add(Finding{Requirement: req, Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the publish of %s at %s (%d bytes, QoS %d) delivered to every client whose subscription, granted before it was read, matches it: %s", client, shortTopic(topic), len(payload), qos, names),
			Actual:   fmt.Sprintf("published, but the broker's topic tree did not match %d of them (it matched %d client(s)): never delivered", len(who), len(f.Matched)),
			Time:     at, Evidence: []Observation{ev()}})...)
	}
	return out
}

// refused judges a PUBLISH the broker read whole and did not publish.
func (b *Broker) refused(client, topic string, payload []byte, qos byte, f Fate, evidence func() Observation) []Finding {
	switch {
	case f.By == "" && !f.ACL:
		return nil // malformed, invalid topic, receive quota, QoS 2 retransmission, connection failed
	case b.secure != nil:
		return nil // the identity rule decides (PublishedBy judges what it let through)
	case b.limits != nil && b.limits.beyond(topic) != "":
		return nil // ID-017: the broker's configured topic limits
	case len(payload) > bigPayload && (b.maxPayload == 0 || len(payload) > b.maxPayload):
		return nil // over the configured limit, and over what BRK-005 requires
	}
	by := "the ACL hooks (write refused)"
	if !f.ACL {
		by = fmt.Sprintf("hook %s: %v", f.By, f.Refused)
		if errors.Is(f.Refused, packets.CodeSuccessIgnore) {
			by = fmt.Sprintf("hook %s: acknowledged and delivered to no one (%v)", f.By, f.Refused)
		}
	}
	limit := "up to 64 KB"
	if b.maxPayload > 0 {
		limit = fmt.Sprintf("up to %d bytes (its configured limit)", b.maxPayload)
	}
	ev := evidence()
	return b.add(Finding{Requirement: refusalRequirement(topic, payload), Participant: BrokerParticipant,
		Expected: fmt.Sprintf("the PUBLISH %s sent at %s (%d bytes, QoS %d) published: the broker read it whole, well-formed, within its topic limits, payload %s", client, ev.Topic, len(payload), qos, limit),
		Actual:   "refused by " + by, Time: ev.Time, Evidence: []Observation{ev}})
}

// refusalRequirement names the requirement a refused PUBLISH breaks. The broker does not
// say why it refused; the judge names the most specific requirement whose domain the
// publish falls in: its payload size (BRK-005), a space, @ or : in its topic (BRK-004),
// else PUBLISH itself (BRK-007).
func refusalRequirement(topic string, payload []byte) string {
	switch {
	case len(payload) > sizeSuspect:
		return "BRK-005"
	case strings.ContainsAny(topic, " @:"):
		return "BRK-004"
	}
	return "BRK-007"
}

// missRequirement names the requirement a missing delivery breaks: wildcard matching
// (BRK-003) when the subscription has a wildcard, else as refusalRequirement.
func missRequirement(filter, topic string, payload []byte) string {
	if strings.ContainsAny(filter, "#+") {
		return "BRK-003"
	}
	return refusalRequirement(topic, payload)
}
