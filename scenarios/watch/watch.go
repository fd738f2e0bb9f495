// Package watch is the passive protocol checker: it judges MQTT publishes it only observes
// (from a wildcard subscription, or inside the embedded broker through a hook) against the
// catalog, and blames each violation on the participant that sent it. It sits beside the
// verdict model (it imports only spec and scenarios/verdict, plus mochi for the hook), so
// cmd can run it against any broker and the embedded broker can run it in-process without
// linking the Ginkgo scenarios.
package watch

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Observation is one publish as the checker saw it.
type Observation struct {
	Topic    string
	Payload  []byte
	Retained bool
	// Client is the MQTT client ID that sent it; "" when the checker cannot know (a subscription).
	Client string
	Time   time.Time
}

// Finding is one requirement a participant broke, with the messages that show it.
type Finding struct {
	Requirement string        `json:"requirement"`
	Participant string        `json:"participant"`
	Expected    string        `json:"expected"`
	Actual      string        `json:"actual"`
	Time        time.Time     `json:"time"`
	Evidence    []Observation `json:"-"`
}

// String renders the finding h2spec style, naming who is blamed.
func (f Finding) String() string {
	return fmt.Sprintf("%s violated by %s: expected %s, actual %s", f.Requirement, f.Participant, f.Expected, f.Actual)
}

// Config says what the checker judges and how much of the traffic it sees.
type Config struct {
	TopicPath string       // "" means spec.DefaultTopicPath
	Profile   spec.Profile // client or strict (spec.Validator's profiles)
	// Participant, when set, judges only what this participant sends (an endpoint ID, an
	// MQTT client ID, or "connector").
	Participant string
	// FromStart: the checker saw the traffic from its beginning (the in-broker hook of a
	// broker it started), so a reply or relay with no request or START_SESSION before it is a
	// finding. From a subscription it is false: what began before it subscribed is unknown,
	// so those two rules are not applied (the others are).
	FromStart bool
	// ConnectorClients are MQTT client IDs of connectors (for blame when Client is known).
	ConnectorClients []string
	// AnswerTimeout is how long the connector has to answer a SERVICE_QUERY (SQ-002: 5 s).
	AnswerTimeout time.Duration
	// StopGrace tolerates relays already in flight when the connector relayed STOP_SESSION.
	StopGrace time.Duration
	// FinalTimeout is how long an unanswered session rings before the connector may reap
	// it when no PRANSWER gave a holdTimeout (SESS-009: 30 s, rtcomm.js SigSession.js).
	FinalTimeout time.Duration
	// Trace, when set, receives every observation as a line of trace.jsonl.
	Trace io.Writer
}

// ConnectorParticipant names the connector when the checker cannot see its client ID.
const ConnectorParticipant = "connector"

// Checker judges observations. It is safe for concurrent use.
type Checker struct {
	cfg    Config
	topics spec.Topics
	val    spec.Validator
	// lenient is the client profile's validator: what it passes, a connector must route.
	lenient spec.Validator
	trace   *TraceWriter

	mu       sync.Mutex
	swept    time.Time       // last sweep
	lostAt   time.Time       // last sweepLost
	badIn    []Observation   // malformed input sent to the connector (ROB-001's evidence)
	ccTopics map[string]bool // topics 3PCC_PLACE_CALLs came on (REF-002)
	ccReply  map[string]bool // their fromTopics outside the path (lib.rtcomm.node: a bare client ID)
	n        int
	requests map[string][]sent // transID -> requests carrying it
	queries  map[string]*query // SERVICE_QUERY transID -> answers seen
	started  map[string]bool   // sigSessID -> a START_SESSION was seen
	stopped  map[string]time.Time
	origs    map[origKey][]sent // what endpoints sent, for relay equality
	life     lifecycle          // registrations, events, reaping (lifecycle.go)
	findings []Finding
	passes   map[string]map[string]int // participant -> requirement -> checks that held
	dropped  int                       // deliveries to a connector the broker dropped (dropped.go)
}

// sent is one decoded publish and who sent it.
type sent struct {
	obs  Observation
	msg  *spec.Message
	who  string
	used bool // a relay matched it
	late bool // judged lost (sweepLost)
	// dropped: the broker dropped its delivery to the connector, which cannot relay it (dropped.go)
	dropped bool
	// clean: a START_SESSION without finding under the client profile (a connector routes it)
	clean bool
}

type query struct {
	req     sent
	answers int
	late    bool
}

type origKey struct {
	from, method, sigSessID string
}

// New returns a checker for cfg.
func New(cfg Config) *Checker {
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 5 * time.Second
	}
	if cfg.FinalTimeout <= 0 {
		cfg.FinalTimeout = 30 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = time.Second
	}
	if cfg.Profile == "" {
		cfg.Profile = spec.ProfileClient
	}
	t := spec.NewTopics(cfg.TopicPath)
	var tw *TraceWriter
	if cfg.Trace != nil {
		tw = NewTraceWriter(cfg.Trace)
	}
	return &Checker{trace: tw, cfg: cfg, topics: t, val: spec.Validator{Topics: t, Profile: cfg.Profile}, lenient: spec.Validator{Topics: t, Profile: spec.ProfileClient},
		requests: map[string][]sent{}, queries: map[string]*query{}, started: map[string]bool{},
		stopped: map[string]time.Time{}, origs: map[origKey][]sent{}, passes: map[string]map[string]int{},
		life: newLifecycle(t), ccTopics: map[string]bool{}, ccReply: map[string]bool{}}
}

// Config returns the configuration the checker runs with (defaults filled in).
func (c *Checker) Config() Config { return c.cfg }

// AddConnectorClient names one more MQTT client ID as a connector's (for blame), e.g. once
// the embedded broker is up and the connector's ID is chosen.
func (c *Checker) AddConnectorClient(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.ConnectorClients = append(c.cfg.ConnectorClients, id)
}

// Subscribed tells the checker an MQTT client subscribed to filter (the hook's
// OnSubscribe): one that subscribes under <path>management/ (plainly or in a shared
// group) answers SERVICE_QUERYs, so it is a connector.
func (c *Checker) Subscribed(client, filter string) {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			filter = f
		}
	}
	if !strings.HasPrefix(filter, c.topics.Management()+"/") {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.cfg.ConnectorClients, client) {
		c.cfg.ConnectorClients = append(c.cfg.ConnectorClients, client)
	}
}

// Observed is the number of publishes judged so far.
func (c *Checker) Observed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Findings returns every finding so far, in the order found.
func (c *Checker) Findings() []Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.findings)
}

// Passes returns, per participant, how many cross-message checks held per requirement.
func (c *Checker) Passes() map[string]map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]int{}
	for p, m := range c.passes {
		out[p] = map[string]int{}
		for r, n := range m {
			out[p][r] = n
		}
	}
	return out
}

// Observe judges one publish and returns the findings it produced.
func (c *Checker) Observe(o Observation) []Finding {
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.trace != nil {
		_ = c.trace.Write(o) // a trace that cannot be written does not stop the judging
	}
	before := len(c.findings)
	c.sweep(o.Time)
	_, inPath := c.topics.Under(o.Topic)
	if !inPath && !c.ccReply[o.Topic] || c.private(o.Topic) {
		return nil // not rtcomm traffic under the watched path, nor an answer to a 3PCC requester
	}
	m, _ := spec.Decode(o.Payload) // nil for a non-JSON payload: the validator reports it
	who := c.participant(o, m)
	judged := c.judges(who, o)
	var vs []spec.Violation
	if inPath { // a 3PCC requester's own topic (a bare client ID) gets the cross-message rules only
		vs = c.val.Validate(o.Topic, o.Payload)
	}
	if len(vs) > 0 && m != nil && strings.HasPrefix(who, ConnectorParticipant) {
		vs = c.inherited(o, m, vs)
	}
	if judged {
		for _, v := range vs {
			c.add(Finding{Requirement: v.Requirement, Participant: who, Expected: v.Expected, Actual: v.Actual,
				Time: o.Time, Evidence: []Observation{o}})
		}
	}
	c.publishRules(o, m, who)
	if len(o.Payload) == 0 && underTopic(o.Topic, c.topics.SphereRoot()) {
		c.unregistered(o) // a Last Will or an unregister REG-008
	}
	if m != nil && len(o.Payload) > 0 {
		c.crossMessage(sent{obs: o, msg: m, who: who, clean: c.cleanForClient(o, m, vs)}, judged)
	}
	return slices.Clone(c.findings[before:])
}

// Finish judges what only the passage of time can show (unanswered queries) as of now.
func (c *Checker) Finish(now time.Time) []Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := len(c.findings)
	c.swept, c.lostAt = time.Time{}, time.Time{} // judge now
	c.sweep(now)
	return slices.Clone(c.findings[before:])
}

// publishRules judge what the connector publishes and where, whatever it is: retained only
// for presence (ROB-003), only JSON where a 3PCC requester listens (REF-002); and note
// malformed input sent to the connector (ROB-001's evidence when it then stops answering).
func (c *Checker) publishRules(o Observation, m *spec.Message, who string) {
	conn := strings.HasPrefix(who, ConnectorParticipant)
	switch {
	case conn && o.Retained && len(o.Payload) > 0 && !underTopic(o.Topic, c.topics.SphereRoot()) && c.judges(who, o):
		c.add(Finding{Requirement: "ROB-003", Participant: who, Time: o.Time, Evidence: []Observation{o},
			Expected: "retained messages only for presence (" + c.topics.SphereRoot() + "/...)",
			Actual:   fmt.Sprintf("a retained %s at %q", methodOf(m), o.Topic)})
	case conn && m == nil && len(o.Payload) > 0 && c.ccTopics[o.Topic] && c.judges(who, o):
		c.add(Finding{Requirement: "REF-002", Participant: who, Time: o.Time, Evidence: []Observation{o},
			Expected: "only JSON objects on " + o.Topic + " (lib.rtcomm.node parses everything there)",
			Actual:   fmt.Sprintf("%q", short(o.Payload))})
	case !conn && m != nil && m.Method == spec.Method3PCCPlaceCall:
		c.ccTopics[o.Topic] = true
		if _, in := c.topics.Under(m.FromTopic); m.FromTopic != "" && !in && len(c.ccReply) < 10000 {
			c.ccReply[m.FromTopic] = true
		}
	case !conn && len(o.Payload) > 0 && (m == nil || !m.Method.Known()) &&
		(underTopic(o.Topic, c.topics.Connector()) || underTopic(o.Topic, c.topics.Management())):
		c.badIn = append(c.badIn, o)
		if len(c.badIn) > 8 {
			c.badIn = c.badIn[1:]
		}
	}
}

func methodOf(m *spec.Message) string {
	if m == nil {
		return "non-JSON payload"
	}
	return string(m.Method)
}

// cleanForClient reports whether a START_SESSION passes the client profile's single-message
// rules (vs are the configured profile's findings: the same under the client profile, so
// only a strict checker validates it again).
func (c *Checker) cleanForClient(o Observation, m *spec.Message, vs []spec.Violation) bool {
	if m.Method != spec.MethodStartSession {
		return len(vs) == 0
	}
	if c.cfg.Profile == spec.ProfileClient {
		return len(vs) == 0
	}
	return len(c.lenient.Validate(o.Topic, o.Payload)) == 0
}

// inherited drops from a relay's violations those its original already had: a connector
// that relays faithfully what a party sent (e.g. rtcomm.js's STOP_SESSION without reason,
// under the strict profile) is not to blame for it; the party is.
func (c *Checker) inherited(o Observation, m *spec.Message, vs []spec.Violation) []spec.Violation {
	if m.FromTopic == "" || m.SigSessID == "" {
		return vs
	}
	os := c.origs[origKey{from: spec.Sender(o.Topic), method: string(m.Method), sigSessID: m.SigSessID}]
	if len(os) == 0 {
		return vs
	}
	had := map[string]bool{}
	for _, v := range c.val.Validate(os[len(os)-1].obs.Topic, os[len(os)-1].obs.Payload) {
		had[v.Requirement+"|"+v.Expected] = true
	}
	return slices.DeleteFunc(vs, func(v spec.Violation) bool { return had[v.Requirement+"|"+v.Expected] })
}

// private reports a connector's own coordination topic, not rtcomm traffic: a level under
// <path>connector/ that starts with "~". The reference connector publishes a nonce to
// <path>connector/<its ID>/~sync to learn that the retained registrations have all arrived
// (reference/connector/connector.go syncTopic), and its replicas their liveness and session
// records under <path>connector/~replicas-<group>/ (reference/connector/owners.go).
func (c *Checker) private(topic string) bool {
	rest, ok := strings.CutPrefix(topic, c.topics.Connector()+"/")
	return ok && (strings.HasPrefix(rest, "~") || strings.Contains(rest, "/~"))
}

// judges reports whether the configured participant filter lets who's messages be judged.
func (c *Checker) judges(who string, o Observation) bool {
	p := c.cfg.Participant
	return p == "" || p == who || (o.Client != "" && p == o.Client)
}

// participant names the sender: its MQTT client ID when known, else the sender ID the
// topic ends in; messages that carry the connector's fromTopic, and answers to
// SERVICE_QUERY, come from the connector.
func (c *Checker) participant(o Observation, m *spec.Message) string {
	if c.isConnector(o, m) {
		if o.Client != "" && !slices.Contains(c.cfg.ConnectorClients, o.Client) {
			return ConnectorParticipant + " (" + o.Client + ")"
		}
		return ConnectorParticipant
	}
	if o.Client != "" {
		return o.Client
	}
	return spec.Sender(o.Topic)
}

func (c *Checker) isConnector(o Observation, m *spec.Message) bool {
	if o.Client != "" && slices.Contains(c.cfg.ConnectorClients, o.Client) {
		return true
	}
	if m == nil {
		return false
	}
	switch m.Method {
	case spec.MethodDocumentReplaced, spec.MethodEventFired, spec.MethodRefer:
		return true // only a connector sends these
	}
	if m.FromTopic != "" && underTopic(m.FromTopic, c.topics.Connector()) {
		return true
	}
	return m.Method == spec.MethodResponse && m.Orig == spec.MethodServiceQuery
}

// underTopic reports whether topic is t or below it.
func underTopic(topic, t string) bool {
	return topic == t || strings.HasPrefix(topic, t+"/")
}

func (c *Checker) add(f Finding) { c.findings = append(c.findings, f) }

// Report adds a finding made outside the checker (a Broker judge's), so it is in Findings
// and the bundle.
func (c *Checker) Report(f Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(f)
}

func (c *Checker) pass(who, req string) {
	m := c.passes[who]
	if m == nil {
		m = map[string]int{}
		c.passes[who] = m
	}
	m[req]++
}

// complete reports whether the checker has seen every request a reply could answer and
// every START_SESSION a relay could belong to: only from the start (the in-broker hook). A
// subscription never knows: a session may have begun before it, and last for hours.
func (c *Checker) complete(time.Time) bool { return c.cfg.FromStart }

// requestMethods are the requests a RESPONSE answers (spec/validate.go responseOrigs).
var requestMethods = []spec.Method{spec.MethodServiceQuery, spec.MethodStartSession, spec.MethodRefer, spec.Method3PCCPlaceCall}

// crossMessage applies the rules that relate messages to each other.
func (c *Checker) crossMessage(s sent, judged bool) {
	m, o := s.msg, s.obs
	conn := strings.HasPrefix(s.who, ConnectorParticipant)
	if conn && underTopic(o.Topic, c.topics.Connector()) {
		// A replica handing a party's message to the replica that owns the session (at
		// <path>connector/<owner>/<sender>): connectors among themselves, not a relay to a party.
		return
	}
	c.lifecycleRules(s, conn, conn && m.FromTopic != "", judged)
	if slices.Contains(requestMethods, m.Method) && m.TransID != "" {
		c.requests[m.TransID] = append(c.requests[m.TransID], s)
		if m.Method == spec.MethodServiceQuery {
			c.queries[m.TransID] = &query{req: s}
		}
	}
	if m.Method == spec.MethodStartSession && m.SigSessID != "" {
		c.started[m.SigSessID] = true
	}
	relay := conn && m.FromTopic != "" // the connector relays a party's message (SESS-006 fromTopic)
	if !conn {
		if m.SigSessID != "" {
			// Endpoints publish at <path>connector/<senderID>; the relay ends in the same ID.
			k := origKey{from: spec.Sender(o.Topic), method: string(m.Method), sigSessID: m.SigSessID}
			c.origs[k] = append(c.origs[k], s)
		}
		return
	}
	if !judged {
		return
	}
	if m.Method == spec.MethodResponse && m.Result == spec.ResultFailure && m.Reason == "" && !c.relayOf(s) {
		// The connector's own FAILURE says why (SESS-003 for a call it could not route,
		// ROB-002 for any other request it refuses).
		req := "ROB-002"
		if ss := c.life.sessions[m.SigSessID]; m.Orig == spec.MethodStartSession && ss != nil && !ss.forwarded {
			req = "SESS-003"
		}
		c.add(Finding{Requirement: req, Participant: s.who, Time: o.Time, Evidence: []Observation{o},
			Expected: "the connector's FAILURE with a reason", Actual: fmt.Sprintf("FAILURE to %s without reason", m.Orig)})
	}
	switch m.Method {
	case spec.MethodResponse, spec.MethodPranswer:
		c.checkReply(s)
		if m.Orig == spec.MethodServiceQuery {
			c.answered(s)
		}
	}
	if relay {
		c.checkRelay(s)
	}
	if m.Method == spec.MethodMessage && relay {
		c.checkSessionState(s)
	}
	if m.Method == spec.MethodStopSession && m.SigSessID != "" {
		c.stopped[m.SigSessID] = o.Time
	}
}
