package watch

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The broker judge's retained store (BRK-001): a model of what the broker keeps, built
// from what clients asked for (the retain flag as read, before any hook of the broker
// rewrote it) and the broker's configured retention policy (ID-016), checked against the
// retained messages the broker sends each new subscription.

// retainedWithin is how long a broker has to send a new subscription its retained messages
// (mochi sends them right after the SUBACK, in the subscriber's own goroutine).
const retainedWithin = 5 * time.Second

// willRace: a will's topic changed by another connection less than this before the broker
// reported the will is not judged (mochi stores the will first, then delivers it, then
// reports it; which of the two it stored last is unknown).
const willRace = time.Second

// Bounds of the model's memory: beyond them, new topics and subscriptions are not judged.
const (
	retainedTopicsKept = 200_000
	retainedWaitsKept  = 20_000
)

// Retention is a broker's configured retained-message policy (ID-016), as the reference
// applies it (reference/broker/limits.go, retainedPolicy): a non-empty retained message is
// kept only where PresencePath allows and within the quotas, else delivered live without
// being kept; an empty one (a clear) is always admitted.
type Retention struct {
	// PresencePath, when set (secure mode), keeps retained messages only on presence
	// topics <PresencePath>sphere/<id> and <PresencePath>sphere/<group>/<id>; "" keeps
	// them anywhere.
	PresencePath string
	// Quota is the retained payload bytes one owner may hold (the user when the client
	// authenticated, else its client ID), Total those of the whole broker.
	Quota, Total int
	// Exempt is the user never charged against Quota (the connector's), "" for none.
	Exempt string
}

// retainable reports whether the policy lets topic hold a retained message at all
// (reference/broker/limits.go, retainedPolicy.presence; presenceRest).
func (r Retention) retainable(topic string) bool {
	if r.PresencePath == "" {
		return true
	}
	rest, ok := strings.CutPrefix(topic, r.PresencePath)
	return ok && presenceRest(rest)
}

// RetainOption is what a client asked of one SUBSCRIBE filter about retained messages
// (MQTT 5 subscription options; 3.1/3.1.1 clients ask for handling 0 without No Local).
type RetainOption struct {
	Handling byte // 0: send at subscribe, 1: only if the subscription is new, 2: never
	NoLocal  bool // the subscriber's own publishes are not sent to it
}

// retainedModel is the broker judge's retained store and what it waits for.
type retainedModel struct {
	pol    Retention
	topics map[string]*retainedTopic
	// owners and sum are upper bounds of the bytes the broker charges (a message it may or
	// may not have kept counts), so "certainly within the quota" never errs.
	owners map[string]int
	sum    int
	// reading: connection -> the PUBLISH the broker is processing for it (mochi reads and
	// processes one client's packets in turn); pending bytes of those count in the bounds,
	// the broker's policy having possibly reserved them already.
	reading      map[any]*retainRead
	busy         map[string][]*retainRead // topic -> retained publishes being processed on it
	pendingOwner map[string]int
	pendingSum   int
	options      map[string][]RetainOption // client -> options of the SUBSCRIBE being processed
	waits        map[string][]*retainWait  // client -> subscriptions awaiting retained messages
	nwaits       int
}

type retainRead struct {
	asked bool
	owner string
	size  int    // counted in pending when asked and > 0
	topic string // "" when not asked or an MQTT 5 topic alias
	// overlap: another connection's retained publish on the topic was processed at the
	// same time, so which the broker stored last is unknown.
	overlap bool
}

type retainCharge struct {
	owner string
	size  int
}

// retainedTopic is what the model knows of one topic's retained message.
type retainedTopic struct {
	known   bool      // false: the broker may hold one of several messages (not judged)
	lastAt  time.Time // when the model last changed it, and for which connection
	lastBy  any
	key     uint64 // b.key(topic, payload) of the message held; meaningful when size > 0
	size    int    // 0: none held
	origin  string // client ID that published it (No Local)
	charges []retainCharge
	sample  Observation // the publish that set or cleared it (evidence)
}

// retainWait is one new subscription awaiting its retained messages.
type retainWait struct {
	client          string
	conn            any
	filter, applied string // as asked, and as the broker applied it (a hook may rewrite it)
	noLocal         bool
	// scanned: the client sent another packet after the SUBSCRIBE, so the broker had sent
	// every retained message it meant to (mochi sends them before it reads the next one).
	scanned bool
	at, due time.Time
	topics  map[string]*retainExpect
}

// retainExpect is what a subscription may receive from one topic's store: any message the
// topic held from the subscription until the delivery (a newer publish may race it).
type retainExpect struct {
	keys   []uint64
	none   bool // held nothing at some point: no delivery is lawful
	void   bool // became unknown: not judged
	got    bool
	sample Observation
	stale  []Observation // retained deliveries of a message the topic did not hold (yet)
	staleK []uint64
}

// SetRetention makes the judge model the broker's retained store under its topic path and
// check that each new subscription gets exactly the retained messages it holds (BRK-001),
// the policy's lawful drops allowed (ID-016). Call it before the broker serves: the model
// starts empty, so a retained message older than the judge would be misjudged.
func (b *Broker) SetRetention(r Retention) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ret = &retainedModel{pol: r, topics: map[string]*retainedTopic{}, owners: map[string]int{},
		reading: map[any]*retainRead{}, busy: map[string][]*retainRead{}, pendingOwner: map[string]int{}, options: map[string][]RetainOption{},
		waits: map[string][]*retainWait{}}
}

// owner is whom the policy charges (reference/broker/limits.go, retainHook.owner).
func retainOwner(client, user string) string {
	if user != "" {
		return "u:" + user
	}
	return "c:" + client
}

// PublishRead notes a PUBLISH the broker read from conn, before any of its hooks: whether
// the client asked for it to be retained (topic "" for an MQTT 5 topic alias). Call it for
// every PUBLISH read.
func (b *Broker) PublishRead(conn any, client, user, topic string, size int, retain bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.ret
	if m == nil {
		return
	}
	m.settle(conn)
	m.read(conn, client)
	if !retain {
		return // nothing to note: a publish not asked retained changes no store
	}
	r := &retainRead{asked: retain, owner: retainOwner(client, user)}
	if size > 0 {
		r.size = size
		m.pendingOwner[r.owner] += size
		m.pendingSum += size
	}
	if topic != "" {
		r.topic = topic
		if others := m.busy[topic]; len(others) > 0 {
			r.overlap = true
			for _, o := range others {
				o.overlap = true
			}
		}
		m.busy[topic] = append(m.busy[topic], r)
	}
	m.reading[conn] = r
}

// PacketRead notes that the broker read a packet other than PUBLISH from conn: the
// retained messages of the client's earlier SUBSCRIBEs have all been sent.
func (b *Broker) PacketRead(conn any, client string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ret != nil {
		b.ret.read(conn, client)
	}
}

func (m *retainedModel) read(conn any, client string) {
	for _, w := range m.waits[client] {
		if w.conn == conn {
			w.scanned = true
		}
	}
}

// settle forgets the PUBLISH noted for conn (processed, refused, or its client gone).
func (m *retainedModel) settle(conn any) (retainRead, bool) {
	r, ok := m.reading[conn]
	if !ok {
		return retainRead{}, false
	}
	delete(m.reading, conn)
	if r.size > 0 {
		if m.pendingOwner[r.owner] -= r.size; m.pendingOwner[r.owner] <= 0 {
			delete(m.pendingOwner, r.owner)
		}
		m.pendingSum -= r.size
	}
	if r.topic != "" {
		rs := slices.DeleteFunc(m.busy[r.topic], func(o *retainRead) bool { return o == r })
		if len(rs) == 0 {
			delete(m.busy, r.topic)
		} else {
			m.busy[r.topic] = rs
		}
	}
	return *r, true
}

// retainedGone forgets what was noted for a connection that closed.
func (b *Broker) retainedGone(conn any) {
	if b.ret != nil {
		b.ret.settle(conn)
	}
}

// PublishAccepted updates the model with a publish the broker accepted (mochi's
// OnPublished: every hook let it through, the store is updated): o.Retained is the flag as
// the broker kept it, expires an MQTT 5 message expiry. A flag kept means stored; a flag
// asked for but dropped is lawful only where the policy drops it: outside the retainable
// topics or over a quota; an empty retained publish always clears. A publish of a
// connection with none noted (mochi's inline client) counts only when the flag was kept.
func (b *Broker) PublishAccepted(conn any, user string, o Observation, expires bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.ret
	if m == nil || o.Topic == "" {
		return
	}
	r, noted := m.settle(conn)
	asked := o.Retained || (noted && r.asked)
	if !asked {
		return
	}
	owner := retainOwner(o.Client, user)
	switch {
	case noted && (r.overlap || r.topic != o.Topic):
		// Raced by another connection's retained publish on the topic (which one the
		// broker stored last is unknown), or published through an MQTT 5 topic alias.
		b.retainUnsure(o, owner, conn)
	case o.Retained || len(o.Payload) == 0:
		// Kept (stored), or a clear, which the policy always admits.
		b.retainSet(o, owner, expires, conn)
	case !m.pol.retainable(o.Topic):
		// Delivered live, not kept (ID-016): the topic keeps what it held.
	case m.within(owner, o.Topic, len(o.Payload)):
		b.retainSet(o, owner, expires, conn) // the policy had no reason to drop it
	default:
		b.retainUnsure(o, owner, conn)
	}
}

// within reports whether a retained message of size bytes from owner at topic is certainly
// within the quotas, counting every byte the broker may charge: the model's upper bounds
// and the other publishes still in flight (this one is settled already).
func (m *retainedModel) within(owner, topic string, size int) bool {
	use := m.owners[owner] + m.pendingOwner[owner]
	total := m.sum + m.pendingSum
	if t := m.topics[topic]; t != nil && len(t.charges) == 1 {
		if t.charges[0].owner == owner {
			use -= t.charges[0].size
		}
		total -= t.charges[0].size
	}
	if m.pol.Exempt == "" || owner != "u:"+m.pol.Exempt {
		if use+size > m.pol.Quota {
			return false
		}
	}
	return total+size <= m.pol.Total
}

// topic returns the model of a topic, created known and empty (nil when the model is full).
func (m *retainedModel) topic(name string) *retainedTopic {
	t := m.topics[name]
	if t == nil {
		if len(m.topics) >= retainedTopicsKept {
			return nil
		}
		t = &retainedTopic{known: true}
		m.topics[name] = t
	}
	return t
}

func (m *retainedModel) uncharge(t *retainedTopic) {
	for _, c := range t.charges {
		if m.owners[c.owner] -= c.size; m.owners[c.owner] <= 0 {
			delete(m.owners, c.owner)
		}
		m.sum -= c.size
	}
	t.charges = nil
}

func (m *retainedModel) charge(t *retainedTopic, owner string, size int) {
	t.charges = append(t.charges, retainCharge{owner, size})
	m.owners[owner] += size
	m.sum += size
}

// retainSet records that the topic now holds o (none when o is empty); a message that
// expires (MQTT 5) is charged but not judged.
func (b *Broker) retainSet(o Observation, owner string, expires bool, conn any) {
	m := b.ret
	t := m.topic(o.Topic)
	if t == nil {
		return
	}
	t.lastAt, t.lastBy = o.Time, conn
	m.uncharge(t)
	t.size, t.origin, t.known = len(o.Payload), o.Client, !expires
	t.sample = o
	t.sample.Payload = slices.Clone(o.Payload[:min(len(o.Payload), 160)])
	t.sample.Retained = true
	if t.size > 0 {
		t.key = b.key(o.Topic, o.Payload)
		m.charge(t, owner, t.size)
	}
	b.retainChanged(o.Topic, t)
}

// retainUnsure records that the broker may or may not have kept o: charged, not judged
// until a clear settles the topic.
func (b *Broker) retainUnsure(o Observation, owner string, conn any) {
	m := b.ret
	t := m.topic(o.Topic)
	if t == nil {
		return
	}
	t.lastAt, t.lastBy = o.Time, conn
	if len(o.Payload) > 0 {
		m.charge(t, owner, len(o.Payload))
	}
	t.known = false
	b.retainChanged(o.Topic, t)
}

// retainChanged tells the subscriptions awaiting their retained messages that the topic
// changed: its new message is as lawful to deliver as the old.
func (b *Broker) retainChanged(topic string, t *retainedTopic) {
	if !b.inPath(topic) {
		return
	}
	for _, ws := range b.ret.waits {
		for _, w := range ws {
			e := w.expect(topic, nil)
			if e == nil {
				continue
			}
			switch {
			case !t.known || (t.size > 0 && w.noLocal && t.origin == w.client):
				e.void = true // unknown, or the subscriber's own message under No Local
			case t.size == 0:
				e.none = true
			default:
				e.keys = append(e.keys, t.key)
			}
			e.sample = t.sample
		}
	}
}

// expect returns the subscription's expectation of a topic it matches (nil when it does
// not), created from t, the topic's state when it had none yet (nil: none held).
func (w *retainWait) expect(topic string, t *retainedTopic) *retainExpect {
	if e := w.topics[topic]; e != nil {
		return e
	}
	if !TopicMatches(w.filter, topic) || !TopicMatches(w.applied, topic) {
		return nil
	}
	e := &retainExpect{none: true}
	if t != nil {
		e.sample = t.sample
		switch {
		case !t.known || (t.size > 0 && w.noLocal && t.origin == w.client):
			e.void = true // unknown, or the subscriber's own message under No Local: not judged
		case t.size > 0:
			e.none = false
			e.keys = []uint64{t.key}
		}
	}
	w.topics[topic] = e
	return e
}

// WillRetained updates the model with a Last Will the broker published for conn (w as
// published, after its hooks): kept when published retained; a will declared retained but
// published without the flag may have been dropped by the policy (or is BRK-002's finding,
// WillSent): not judged. Call it before WillSent.
func (b *Broker) WillRetained(conn any, client, user string, w Will, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.ret
	if m == nil {
		return
	}
	o := Observation{Topic: w.Topic, Payload: w.Payload, Client: client, Time: at}
	owner := retainOwner(client, user)
	d, declared := b.wills[conn]
	if t := m.topics[w.Topic]; t != nil && t.lastBy != conn && at.Sub(t.lastAt) < willRace &&
		(w.Retained || (declared && d.Retained) || (!declared && len(w.Payload) > 0)) {
		// mochi stores a will before it reports it: a publish on the topic just before may
		// have been stored before or after it.
		b.retainUnsure(o, owner, conn)
		return
	}
	switch {
	case w.Retained:
		b.retainSet(o, owner, false, conn)
	case len(w.Payload) > 0 && !m.pol.retainable(w.Topic):
		// Not kept by policy: the topic keeps what it held.
	case (declared && d.Retained) || (!declared && len(w.Payload) > 0):
		b.retainUnsure(o, owner, conn)
	}
}

// SubscribeOptions notes the retained-message options of a SUBSCRIBE as the client asked
// them, one per filter (with Subscribing).
func (b *Broker) SubscribeOptions(client string, opts []RetainOption) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ret != nil {
		b.ret.options[client] = opts
	}
}

// retainedSubscribed opens a wait per filter granted to client that must get the retained
// messages (asked and applied: the filters as the client asked and as the broker applied
// them, codes its answer). Shared subscriptions get none (MQTT 5, 4.8.2); retain handling
// 1 depends on whether the subscription existed, 2 sends none: neither is judged.
func (b *Broker) retainedSubscribed(client string, asked, applied []string, codes []byte, now time.Time) {
	m := b.ret
	if m == nil {
		return
	}
	opts := m.options[client]
	delete(m.options, client)
	if len(asked) != len(codes) || len(applied) != len(codes) {
		return
	}
	l, ok := b.live[client]
	if !ok {
		return
	}
	for i, f := range asked {
		var opt RetainOption
		if len(opts) == len(asked) {
			opt = opts[i]
		}
		if codes[i] >= 0x80 || opt.Handling != 0 || strings.HasPrefix(f, "$share/") || strings.HasPrefix(applied[i], "$share/") {
			continue
		}
		if m.nwaits >= retainedWaitsKept {
			return
		}
		w := &retainWait{client: client, conn: l.conn, filter: f, applied: applied[i], noLocal: opt.NoLocal,
			at: now, due: now.Add(retainedWithin), topics: map[string]*retainExpect{}}
		if !strings.ContainsAny(f, "+#") {
			if t := m.topics[f]; t != nil && (t.size > 0 || !t.known) && b.inPath(f) {
				w.expect(f, t)
			}
		} else {
			// A topic it matches starts so ("a/#" matches "a" too).
			prefix := strings.TrimSuffix(f[:strings.IndexAny(f, "+#")], "/")
			for name, t := range m.topics {
				if (t.size > 0 || !t.known) && strings.HasPrefix(name, prefix) && b.inPath(name) {
					w.expect(name, t)
				}
			}
		}
		m.waits[client] = append(m.waits[client], w)
		m.nwaits++
	}
}

// RetainedDelivered notes a retained message the broker sent a client: from its store for a
// new subscription (mochi's OnRetainPublished, as it queues it; or dropped for a full
// queue, OnPublishDropped: lawful), or a PUBLISH with the retain flag as written (also,
// MQTT 5 Retain As Published, a live one: then the topic's new message). It is judged
// when the client's subscription is due.
func (b *Broker) RetainedDelivered(client, topic string, payload []byte, at time.Time) {
	if topic == "" || !b.inPath(topic) {
		return // a topic alias (MQTT 5) or outside the path
	}
	k := b.key(topic, payload)
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.ret
	if m == nil {
		return
	}
	t := m.topics[topic]
	for _, w := range m.waits[client] {
		e := w.topics[topic]
		if e == nil && t != nil {
			e = w.expect(topic, t) // the topic's state has not changed since the subscription
		}
		if e == nil || e.void {
			continue // not matched, or a topic the model never saw
		}
		if slices.Contains(e.keys, k) {
			e.got = true
			continue
		}
		e.staleK = append(e.staleK, k)
		e.stale = append(e.stale, Observation{Topic: topic, Payload: slices.Clone(payload[:min(len(payload), 160)]),
			Retained: true, Client: client, Time: at})
	}
}

// retainedDue returns when the last awaited subscription falls due (zero when none).
func (b *Broker) retainedDue() time.Time {
	var due time.Time
	if b.ret == nil {
		return due
	}
	for _, ws := range b.ret.waits {
		for _, w := range ws {
			if w.due.After(due) {
				due = w.due
			}
		}
	}
	return due
}

// retainedOverdue judges the subscriptions whose time is up: each retained message the
// topic held throughout was sent (unless the subscriber went), and no message it did not
// hold since the subscription.
func (b *Broker) retainedOverdue(now time.Time) []Finding {
	m := b.ret
	if m == nil {
		return nil
	}
	var out []Finding
	for client, ws := range m.waits {
		keep := ws[:0]
		for _, w := range ws {
			if now.Before(w.due) {
				keep = append(keep, w)
				continue
			}
			m.nwaits--
			out = append(out, b.judgeWait(w)...)
		}
		if len(keep) == 0 {
			delete(m.waits, client)
		} else {
			m.waits[client] = keep
		}
	}
	return out
}

func (b *Broker) judgeWait(w *retainWait) []Finding {
	var out []Finding
	sub := Observation{Topic: shortTopic(w.filter), Client: w.client, Payload: []byte("SUBSCRIBE " + w.filter), Time: w.at}
	// A subscriber gone before it sent another packet may have gone during the sending.
	gone := b.live[w.client].conn != w.conn && !w.scanned
	for _, topic := range slices.Sorted(maps.Keys(w.topics)) {
		e := w.topics[topic]
		if e.void {
			continue
		}
		for i, k := range e.staleK {
			if slices.Contains(e.keys, k) {
				e.got = true // sent before the broker reported the publish that set it
				continue
			}
			held := "no retained message (cleared by the empty retained publish in evidence)"
			if len(e.keys) > 0 {
				held = fmt.Sprintf("only the retained message(s) it held since the subscription (%d)", len(e.keys))
				if e.none {
					held += " or none"
				}
			}
			out = append(out, b.add(Finding{Requirement: "BRK-001", Participant: BrokerParticipant,
				Expected: fmt.Sprintf("%s's subscription to %s sent %s at %s", w.client, shortTopic(w.filter), held, shortTopic(topic)),
				Actual:   fmt.Sprintf("a retained PUBLISH of payload %q, which the topic did not hold since the subscription", short(e.stale[i].Payload)),
				Time:     e.stale[i].Time, Evidence: []Observation{e.sample, sub, e.stale[i]}})...)
			break // one finding per topic and subscription
		}
		if e.got || e.none || gone {
			continue
		}
		out = append(out, b.add(Finding{Requirement: "BRK-001", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the retained message at %s (published by %s) sent to %s, which subscribed to %s", shortTopic(topic), e.sample.Client, w.client, shortTopic(w.filter)),
			Actual:   fmt.Sprintf("no retained PUBLISH on it within %s (the broker did not keep it)", retainedWithin),
			Time:     w.due, Evidence: []Observation{e.sample, sub}})...)
	}
	return out
}

// The hook's side (hook.go calls these; scenarios/faulty's path checker too).

// OnRetainPublished tells the broker judge of a retained message the broker sent from its
// store to a new subscription.
func (h *Hook) OnRetainPublished(cl *mqtt.Client, pk packets.Packet) {
	if h.Broker != nil && cl != nil {
		h.Broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
	}
}

// PublishRead tells b of a PUBLISH as cl sent it (the retain flag asked, before any hook).
func PublishRead(b *Broker, cl *mqtt.Client, pk packets.Packet) {
	b.PublishRead(cl, cl.ID, string(cl.Properties.Username), pk.TopicName, len(pk.Payload), pk.FixedHeader.Retain)
}

// OnPublished tells the broker judge's retained store of a publish the broker accepted.
func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if h.Broker != nil && cl != nil {
		PublishAccepted(h.Broker, cl, pk)
	}
}

// PublishAccepted tells b of a publish the broker accepted (mochi's OnPublished: after
// every hook, the retained store updated); one it ignored (a hook's CodeSuccessIgnore)
// changes nothing.
func PublishAccepted(b *Broker, cl *mqtt.Client, pk packets.Packet) {
	if pk.Ignore {
		return
	}
	b.PublishAccepted(cl, string(cl.Properties.Username), Observation{Topic: pk.TopicName, Payload: pk.Payload,
		Retained: pk.FixedHeader.Retain, Client: cl.ID, Time: time.Now()}, pk.Properties.MessageExpiryInterval > 0)
}

// SubscribeOptions returns the retained-message options of a SUBSCRIBE's filters.
func SubscribeOptions(pk packets.Packet) []RetainOption {
	opts := make([]RetainOption, len(pk.Filters))
	for i, f := range pk.Filters {
		opts[i] = RetainOption{Handling: f.RetainHandling, NoLocal: f.NoLocal}
	}
	return opts
}
