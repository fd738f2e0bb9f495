package watch

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// BrokerParticipant names the MQTT broker when a finding blames what it delivered.
const BrokerParticipant = "broker"

// connackWithin is how long a broker has to answer a CONNECT it read with a CONNACK.
const connackWithin = 5 * time.Second

// recentFor is how long a publish is remembered to judge its deliveries: loopback delivers
// in milliseconds; a retained message delivered later than this is not judged.
const recentFor = 30 * time.Second

// Broker judges what the broker itself does with the traffic under a topic path, from
// inside it (serve --check's hook): a CONNACK for each MQTT 3.1/3.1.1 CONNECT (BRK-009), the QoS of each delivery (BRK-007), one member per
// shared-subscription group (BRK-010), and the Last Wills it publishes against the ones
// declared in CONNECT (BRK-002); with SetRetention, its retained store (BRK-001,
// broker_retained.go). Its publish ledger (broker_ledger.go) judges the PUBLISHes it
// refused and the deliveries it never tried. Findings blame BrokerParticipant. It is safe
// for concurrent use. What it does not judge is listed in docs/CHECK.md.
type Broker struct {
	path string
	seed maphash.Seed

	mu       sync.Mutex
	subs     map[string][]brokerSub   // client ID -> its subscriptions as the client asked
	asked    map[string][]string      // client ID -> filters of the SUBSCRIBE being processed
	wills    map[any]Will             // connection -> the will its CONNECT declared (in path)
	live     map[string]liveConn      // client ID -> its current connection
	pubs     map[uint64]*brokerPub    // hash(topic, payload) -> recent publishes of it
	shared   map[shareKey]*shareDeliv // share group and publish -> members it reached
	connects map[any]pendingConnect   // connection -> its MQTT 3.1/3.1.1 CONNECT awaiting CONNACK
	findings []Finding
	swept    time.Time

	// limits, when set (SetLimits), are the topic limits the broker is configured with
	// (ID-017): a filter it grants or a will topic it accepts beyond them is its fault.
	limits   *TopicLimits
	overWill map[any]Observation // connection -> its CONNECT's will topic beyond the limits
	// secure, when set (SetSecure), holds the broker to rtcomm's identity rule: the
	// connector's user, exempt from it.
	secure  *string
	secPath string // the secured topic path (ends in "/")
	// requests: transID -> the requests authenticated users published with it (secure only),
	// to judge where the connector's RESPONSEs go (ID-014).
	requests map[string][]securedRequest
	// ident: sessions, the retention policy and the connector's deputy acts on a secured
	// broker (broker_identity.go and the files it names).
	ident identityState
	// ret, when set (SetRetention), models the retained store (broker_retained.go).
	ret *retainedModel

	// The publish ledger (broker_ledger.go): the configured payload limit (0: unknown), a
	// sequence ordering subscriptions against publishes read, the sequence of the PUBLISH
	// each connection is being read at, and the plain subscriptions indexed by filter.
	maxPayload int
	seq        uint64
	reading    map[any]uint64
	index      subIndex
}

type securedRequest struct {
	user string
	at   time.Time
	o    Observation
}

// requestsKept bounds the remembered requests; older ones than repliedWithin go first.
const (
	requestsKept  = 4096
	repliedWithin = time.Minute
)

// SetSecure makes the judge hold a secured broker to rtcomm's identity rule (ID-005,
// ID-008, ID-009, ID-014) for every publish under topicPath it let through
// (PublishedBy); superUser (the connector's) is exempt, as in the reference. Call it
// before the broker serves.
func (b *Broker) SetSecure(topicPath, superUser string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.secure = &superUser
	b.secPath = spec.NewTopics(topicPath).Path
}

// PublishedBy judges a publish under the path that the broker let through from a client
// authenticated as user, against the reference's identity rule (reference/broker/hooks.go,
// identityRule.mayPublish; docs/SECURITY.md): an endpoint publishes only on topics whose
// last level is its own ID (ID-005), sets presence only at <path>sphere/<its ID> (ID-008)
// and never publishes events (ID-009); the connector's user answers a request only into
// its requester's inbox (ID-014, blamed on the connector), and the connector's acts on
// registrations and 3PCC requests are judged too (ID-013, ID-015: broker_deputy.go).
// Nothing without SetSecure. The caller must see the publish after the broker's own
// identity check (a hook added after the reference's).
func (b *Broker) PublishedBy(user string, o Observation) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.secure == nil {
		return nil
	}
	return append(b.deputy(user, o), b.publishedBy(user, o)...) // deputy: ID-013, ID-015 (broker_deputy.go)
}

func (b *Broker) publishedBy(user string, o Observation) []Finding {
	rest, ok := strings.CutPrefix(o.Topic, b.secPath)
	if !ok {
		return nil
	}
	ev := o
	ev.Payload = slices.Clone(o.Payload[:min(len(o.Payload), 160)])
	ev.Topic = shortTopic(o.Topic)
	if *b.secure != "" && user == *b.secure {
		return b.connectorAnswer(rest, ev, o.Payload)
	}
	if m, _ := spec.Decode(o.Payload); m != nil && m.TransID != "" && m.Method != "RESPONSE" {
		b.remember(m.TransID, securedRequest{user: user, at: o.Time, o: ev})
	}
	who := fmt.Sprintf("%s (client %s)", strconv.Quote(user), o.Client)
	first, _, _ := strings.Cut(rest, "/")
	var req, expected string
	switch sender := spec.Sender(rest); {
	case first == "event":
		req, expected = "ID-009", "an endpoint's publish on the event topics refused (only the connector fires events)"
	case first == "sphere" && rest != "sphere/"+user:
		req, expected = "ID-008", fmt.Sprintf("presence set or cleared only by its endpoint: %s may publish at %ssphere/%s only", who, b.secPath, user)
	case sender != user:
		req, expected = "ID-005", fmt.Sprintf("a publish of %s only on topics ending in its authenticated ID %q", who, user)
	default:
		return nil
	}
	return b.add(Finding{Requirement: req, Participant: BrokerParticipant, Expected: expected,
		Actual: fmt.Sprintf("the broker let %s publish at %s", who, ev.Topic), Time: o.Time, Evidence: []Observation{ev}})
}

// TopicLimits are a broker's configured bounds on topic names and filters (ID-017; the
// reference's defaults: reference/broker/limits.go, 1,024 bytes and 32 levels).
type TopicLimits struct {
	MaxLength int // bytes
	MaxLevels int
}

// beyond says how a topic breaks the limits ("" when it does not); it stops counting at
// the first level over the limit, as the reference's limitsHook.topicError does.
func (l TopicLimits) beyond(t string) string {
	if l.MaxLength > 0 && len(t) > l.MaxLength {
		return fmt.Sprintf("%d bytes (limit %d)", len(t), l.MaxLength)
	}
	if l.MaxLevels <= 0 {
		return ""
	}
	levels := 1
	for i := 0; i < len(t); i++ {
		if t[i] == '/' {
			if levels++; levels > l.MaxLevels {
				return fmt.Sprintf("more than %d levels (limit %d)", l.MaxLevels, l.MaxLevels)
			}
		}
	}
	return ""
}

// SetLimits makes the judge hold the broker to its configured topic limits (ID-017): a
// SUBSCRIBE filter granted or a CONNECT will topic accepted beyond them is a finding.
// Call it before the broker serves.
func (b *Broker) SetLimits(l TopicLimits) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limits = &l
}

func (b *Broker) remember(trans string, r securedRequest) {
	if b.requests == nil {
		b.requests = map[string][]securedRequest{}
	}
	if len(b.requests) >= requestsKept {
		for k, rs := range b.requests {
			if r.at.Sub(rs[len(rs)-1].at) > repliedWithin {
				delete(b.requests, k)
			}
		}
		if len(b.requests) >= requestsKept {
			return // all recent: this one is not judged rather than a live one forgotten
		}
	}
	b.requests[trans] = append(b.requests[trans], r)
}

// connectorAnswer judges a RESPONSE the connector's user published at <path>rest: on a
// secured deployment it goes only into the inbox (<path><user>[/...]) of a user that sent
// a request with its transID (ID-014, the connector as a confused deputy: it answered a
// fromTopic naming someone else's inbox). A RESPONSE to a transaction no authenticated
// user opened here (the connector's own, a 3PCC service client's bare client ID outside
// the path) is not judged.
func (b *Broker) connectorAnswer(rest string, ev Observation, payload []byte) []Finding {
	m, _ := spec.Decode(payload)
	if m == nil || m.Method != "RESPONSE" || m.TransID == "" {
		return nil
	}
	reqs := b.requests[m.TransID]
	if len(reqs) == 0 {
		return nil
	}
	users := make([]string, 0, len(reqs))
	for _, r := range reqs {
		if rest == r.user || strings.HasPrefix(rest, r.user+"/") {
			return nil
		}
		users = append(users, strconv.Quote(r.user))
	}
	return b.add(Finding{Requirement: "ID-014", Participant: ConnectorParticipant,
		Expected: fmt.Sprintf("the connector's RESPONSE to transaction %s only in the requester's own inbox (%s%s)", m.TransID, b.secPath, strings.Trim(users[0], `"`)),
		Actual:   fmt.Sprintf("published at %s (requested by %s)", ev.Topic, strings.Join(users, ", ")), Time: ev.Time,
		Evidence: []Observation{reqs[0].o, ev}})
}

// shortTopic keeps evidence small: an attack topic may be 64 KB.
func shortTopic(t string) string {
	if len(t) > 120 {
		return t[:117] + "..."
	}
	return t
}

// Will is a Last Will as declared in CONNECT or as published.
type Will struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
}

type brokerSub struct {
	filter string // without $share/<group>/
	group  string // "" when not shared
	qos    byte
}

type brokerPub struct {
	topic  string
	qos    byte // lowest QoS it was published at
	count  int  // times it was published
	at     time.Time
	sample Observation
}

type liveConn struct {
	conn  any
	clean bool
}

type pendingConnect struct {
	client  string
	version byte
	at      time.Time
}

type shareKey struct {
	group string
	pub   uint64
}

type shareDeliv struct {
	members []string
	at      time.Time
	found   bool
}

// NewBroker returns a judge of the broker's deliveries under topicPath ("" means
// the default rtcomm path).
func NewBroker(topicPath string) *Broker {
	return &Broker{path: spec.NewTopics(topicPath).Path, seed: maphash.MakeSeed(),
		subs: map[string][]brokerSub{}, asked: map[string][]string{}, wills: map[any]Will{}, live: map[string]liveConn{},
		pubs: map[uint64]*brokerPub{}, shared: map[shareKey]*shareDeliv{}, connects: map[any]pendingConnect{},
		overWill: map[any]Observation{}}
}

// Findings returns every finding so far.
func (b *Broker) Findings() []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.findings)
}

func (b *Broker) inPath(topic string) bool { return strings.HasPrefix(topic, b.path) }

func (b *Broker) key(topic string, payload []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	return h.Sum64()
}

func (b *Broker) add(f Finding) []Finding {
	b.findings = append(b.findings, f)
	return []Finding{f}
}

// Connected notes a client's CONNECT: a clean session forgets its subscriptions, and a
// will under the path is remembered for the connection (conn identifies it; a client ID
// can be taken over by a new connection with another will).
func (b *Broker) Connected(conn any, client string, clean bool, will *Will) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.live[client]; clean || (ok && l.clean) {
		b.dropSubs(client) // a clean session, or taking over one (mochi's inheritClientSession)
	}
	b.live[client] = liveConn{conn: conn, clean: clean}
	if will != nil && b.inPath(will.Topic) {
		b.wills[conn] = *will
	}
	if will != nil && b.limits != nil {
		// Judged at the CONNACK: a hook after this one may still refuse the CONNECT.
		if why := b.limits.beyond(will.Topic); why != "" {
			b.overWill[conn] = Observation{Topic: shortTopic(will.Topic), Client: client, Payload: []byte("will topic: " + why)}
		}
	}
}

// Disconnected forgets the connection's will (mochi publishes a will before it reports the
// disconnect, so a will still here was discarded, clean DISCONNECT, or delayed, MQTT 5 will
// delay: neither judged) and, when it was the client's current clean session, its
// subscriptions (so a long run keeps only live clients' state).
func (b *Broker) Disconnected(conn any, client string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.wills, conn)
	if l, ok := b.live[client]; ok && l.conn == conn {
		delete(b.live, client)
		if l.clean {
			b.dropSubs(client)
			delete(b.asked, client)
		}
	}
	delete(b.overWill, conn)
	b.retainedGone(conn)
	delete(b.reading, conn)
}

// Subscribing notes the filters of a SUBSCRIBE as the client sent it, before any hook of
// the broker rewrote them.
func (b *Broker) Subscribing(client string, filters []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked[client] = filters
}

// Subscribed records the broker's answer: codes[i] is the granted QoS (or a refusal,
// >= 0x80) of the i-th filter of the SUBSCRIBE noted by Subscribing; granted are the
// filters as the broker applied them, used when nothing was noted. With limits set, it
// returns a finding per filter granted beyond them (ID-017).
func (b *Broker) Subscribed(client string, granted []string, codes []byte) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	filters := b.asked[client]
	delete(b.asked, client)
	if len(filters) != len(codes) {
		filters = granted
	}
	b.retainedSubscribed(client, filters, granted, codes, time.Now())
	var out []Finding
	for i, f := range filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		if b.limits != nil {
			if why := b.limits.beyond(f); why != "" {
				out = append(out, b.add(Finding{Requirement: "ID-017", Participant: BrokerParticipant,
					Expected: fmt.Sprintf("%s's SUBSCRIBE refused: a filter beyond the broker's limits (%d bytes, %d levels)", client, b.limits.MaxLength, b.limits.MaxLevels),
					Actual:   fmt.Sprintf("granted QoS %d to a filter of %s", codes[i], why), Time: time.Now(),
					Evidence: []Observation{{Topic: shortTopic(f), Client: client, Payload: []byte("SUBSCRIBE filter: " + why)}}})...)
			}
		}
		s := brokerSub{filter: f, qos: codes[i]}
		if rest, ok := strings.CutPrefix(f, "$share/"); ok {
			group, filter, ok := strings.Cut(rest, "/")
			if !ok {
				continue
			}
			s.group, s.filter = group, filter
		}
		subs := slices.DeleteFunc(b.subs[client], func(o brokerSub) bool { return o.filter == s.filter && o.group == s.group })
		b.subs[client] = append(subs, s)
		b.indexSub(client, s)
	}
	return out
}

// Unsubscribed forgets filters of a client.
func (b *Broker) Unsubscribed(client string, filters []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range filters {
		group, filter := "", f
		if rest, ok := strings.CutPrefix(f, "$share/"); ok {
			group, filter, _ = strings.Cut(rest, "/")
		}
		b.subs[client] = slices.DeleteFunc(b.subs[client], func(o brokerSub) bool { return o.filter == filter && o.group == group })
		b.unindexSub(client, brokerSub{filter: filter, group: group})
	}
}

// ConnectRead notes a CONNECT the broker decoded (before any of its hooks could refuse
// it): an MQTT 3.1 (version 3) or 3.1.1 (4) client is owed a CONNACK (BRK-009). The
// CONNECT carries no topic: every one the broker reads is judged, whatever the path.
func (b *Broker) ConnectRead(conn any, client string, version byte, at time.Time) {
	if version != 3 && version != 4 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.connects[conn] = pendingConnect{client: client, version: version, at: at}
}

// ConnackSent judges the CONNACK written to conn: any answer settles its CONNECT, but
// refusing MQTT 3.1 or 3.1.1 as an unacceptable protocol version (return code 1) breaks
// BRK-009; other refusals (credentials, client ID, unavailable) are not judged.
func (b *Broker) ConnackSent(conn any, code byte, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Finding
	if w, ok := b.overWill[conn]; ok {
		delete(b.overWill, conn)
		if code == 0 {
			w.Time = at
			out = b.add(Finding{Requirement: "ID-017", Participant: BrokerParticipant,
				Expected: fmt.Sprintf("%s's CONNECT refused: its will topic is beyond the broker's limits (%d bytes, %d levels)", w.Client, b.limits.MaxLength, b.limits.MaxLevels),
				Actual:   "CONNACK 0 (accepted), " + string(w.Payload), Time: at, Evidence: []Observation{w}})
		}
	}
	c, ok := b.connects[conn]
	if !ok {
		return out
	}
	delete(b.connects, conn)
	if code != 1 {
		return out
	}
	return append(out, b.add(Finding{Requirement: "BRK-009", Participant: BrokerParticipant,
		Expected: fmt.Sprintf("CONNACK 0 for %s's MQTT %s CONNECT", c.client, mqttVersion(c.version)),
		Actual:   "CONNACK 1 (unacceptable protocol version)", Time: at})...)
}

func mqttVersion(v byte) string {
	if v == 3 {
		return "3.1 (MQIsdp)"
	}
	return "3.1.1"
}

// Finish judges what only time shows as of now: a CONNECT left without any CONNACK for
// connackWithin (the broker read it whole, so it was not malformed, MQTT-3.1.4-1).
func (b *Broker) Finish(now time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.overdue(now)
}

// Due returns when the last pending judgement falls due (zero when none).
func (b *Broker) Due() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var due time.Time
	for _, c := range b.connects {
		if d := c.at.Add(connackWithin); d.After(due) {
			due = d
		}
	}
	if d := b.retainedDue(); d.After(due) {
		due = d
	}
	return due
}

func (b *Broker) overdue(now time.Time) []Finding {
	var out []Finding
	for conn, c := range b.connects {
		if now.Sub(c.at) < connackWithin {
			continue
		}
		delete(b.connects, conn)
		out = append(out, b.add(Finding{Requirement: "BRK-009", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("CONNACK for %s's MQTT %s CONNECT within %s", c.client, mqttVersion(c.version), connackWithin),
			Actual:   "no CONNACK (the connection was closed or left unanswered)", Time: c.at.Add(connackWithin)})...)
	}
	return append(out, b.retainedOverdue(now)...)
}

// Published notes an inbound publish as its client sent it (before the broker's hooks),
// so its deliveries can be judged; it returns what fell due meanwhile (Finish).
func (b *Broker) Published(o Observation, qos byte) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := b.sweep(o.Time)
	if !b.inPath(o.Topic) {
		return found
	}
	k := b.key(o.Topic, o.Payload)
	p := b.pubs[k]
	if p == nil {
		p = &brokerPub{topic: o.Topic, qos: qos, sample: o}
		p.sample.Payload = slices.Clone(o.Payload[:min(len(o.Payload), 160)])
		b.pubs[k] = p
	}
	p.qos = min(p.qos, qos)
	p.count++
	p.at = o.Time
	return found
}

// WillSent judges a Last Will the broker published for conn against the will its CONNECT
// declared (BRK-002): on the declared topic, and an empty will retained when declared so
// (clearing a retained registration needs no storage, so no retention policy refuses it,
// ID-016; a non-empty will's retain flag is not judged).
func (b *Broker) WillSent(conn any, client string, w Will, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.wills[conn]
	if !ok {
		return nil
	}
	delete(b.wills, conn)
	ev := []Observation{{Topic: w.Topic, Payload: w.Payload, Retained: w.Retained, Client: client, Time: at}}
	switch {
	case w.Topic != d.Topic:
		return b.add(Finding{Requirement: "BRK-002", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the Last Will of %s published at %s, the topic its CONNECT declared", client, d.Topic),
			Actual:   "published at " + w.Topic, Time: at, Evidence: ev})
	case d.Retained && len(w.Payload) == 0 && !w.Retained:
		return b.add(Finding{Requirement: "BRK-002", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the empty Last Will of %s at %s published retained, as its CONNECT declared (it clears the registration)", client, d.Topic),
			Actual:   "published without the retain flag", Time: at, Evidence: ev})
	}
	return nil
}

// Delivered judges a PUBLISH the broker wrote to a client: its QoS is that of the
// publish capped by the client's best matching subscription (BRK-007), and a message
// reaches one member of a shared-subscription group per time it was published (BRK-010).
// Deliveries of publishes it did not see (older than recentFor, a will) are not judged.
func (b *Broker) Delivered(client, topic string, payload []byte, qos byte, dup bool, at time.Time) []Finding {
	if topic == "" || !b.inPath(topic) {
		return nil // a topic alias (MQTT 5) or outside the path
	}
	k := b.key(topic, payload)
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pubs[k]
	if p == nil {
		return nil
	}
	var granted byte
	plain, group, groups := false, "", 0 // groups: share groups among the matching (> 1: not judged)
	for _, s := range b.subs[client] {
		if !TopicMatches(s.filter, topic) {
			continue
		}
		granted = max(granted, s.qos)
		switch {
		case s.group == "":
			plain = true
		case s.group != group:
			group = s.group
			groups++
		}
	}
	if !plain && groups == 0 {
		return nil // a subscription the judge did not see (before it started)
	}
	evidence := func() []Observation {
		return []Observation{p.sample, {Topic: topic, Payload: p.sample.Payload, Client: client, Time: at}}
	}
	var out []Finding
	if want := min(p.qos, granted); qos < want {
		out = append(out, b.add(Finding{Requirement: "BRK-007", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the QoS %d publish at %s delivered to %s at QoS %d (its subscription's QoS %d)", p.qos, topic, client, want, granted),
			Actual:   fmt.Sprintf("delivered at QoS %d", qos), Time: at, Evidence: evidence()})...)
	}
	if plain || groups != 1 || dup {
		return out // a plain subscription gets every message; a redelivery is not a second member
	}
	sd := b.shared[shareKey{group, k}]
	if sd == nil {
		sd = &shareDeliv{}
		b.shared[shareKey{group, k}] = sd
	}
	sd.at = at
	if !slices.Contains(sd.members, client) {
		sd.members = append(sd.members, client)
	}
	if len(sd.members) > p.count && !sd.found {
		sd.found = true
		out = append(out, b.add(Finding{Requirement: "BRK-010", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the publish at %s (published %d time(s)) delivered to one member of share group %s per publish", topic, p.count, group),
			Actual:   fmt.Sprintf("delivered to %d members: %s", len(sd.members), strings.Join(sd.members, ", ")), Time: at, Evidence: evidence()})...)
	}
	return out
}

// sweep forgets publishes and shared deliveries older than recentFor and judges overdue
// CONNECTs (at most once a second).
func (b *Broker) sweep(now time.Time) []Finding {
	if now.Sub(b.swept) < time.Second {
		return nil
	}
	b.swept = now
	for k, p := range b.pubs {
		if now.Sub(p.at) > recentFor {
			delete(b.pubs, k)
		}
	}
	for k, s := range b.shared {
		if now.Sub(s.at) > recentFor {
			delete(b.shared, k)
		}
	}
	return b.overdue(now)
}

// TopicMatches reports whether an MQTT topic filter matches a topic name: + one level,
// # the parent level and every level below; a filter starting with a wildcard does not
// match a topic starting with $ (MQTT-4.7.2-1).
func TopicMatches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			if fmore && !tmore {
				return frest == "#" // "a/#" matches "a"
			}
			return fmore == tmore
		}
		filter, topic = frest, trest
	}
}
