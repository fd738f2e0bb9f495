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
	trace  *TraceWriter

	mu       sync.Mutex
	swept    time.Time // last sweep
	n        int
	requests map[string][]sent // transID -> requests carrying it
	queries  map[string]*query // SERVICE_QUERY transID -> answers seen
	started  map[string]bool   // sigSessID -> a START_SESSION was seen
	stopped  map[string]time.Time
	origs    map[origKey][]sent // what endpoints sent, for relay equality
	life     lifecycle          // registrations, events, reaping (lifecycle.go)
	findings []Finding
	passes   map[string]map[string]int // participant -> requirement -> checks that held
}

// sent is one decoded publish and who sent it.
type sent struct {
	obs  Observation
	msg  *spec.Message
	who  string
	used bool
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
	return &Checker{trace: tw, cfg: cfg, topics: t, val: spec.Validator{Topics: t, Profile: cfg.Profile},
		requests: map[string][]sent{}, queries: map[string]*query{}, started: map[string]bool{},
		stopped: map[string]time.Time{}, origs: map[origKey][]sent{}, passes: map[string]map[string]int{},
		life: newLifecycle(t)}
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
	if _, ok := c.topics.Under(o.Topic); !ok || c.private(o.Topic) {
		return nil // not rtcomm traffic under the watched path
	}
	m, _ := spec.Decode(o.Payload) // nil for a non-JSON payload: the validator reports it
	who := c.participant(o, m)
	judged := c.judges(who, o)
	vs := c.val.Validate(o.Topic, o.Payload)
	if len(vs) > 0 && m != nil && strings.HasPrefix(who, ConnectorParticipant) {
		vs = c.inherited(o, m, vs)
	}
	if judged {
		for _, v := range vs {
			c.add(Finding{Requirement: v.Requirement, Participant: who, Expected: v.Expected, Actual: v.Actual,
				Time: o.Time, Evidence: []Observation{o}})
		}
	}
	if len(o.Payload) == 0 && underTopic(o.Topic, c.topics.SphereRoot()) {
		c.unregistered(o) // a Last Will or an unregister REG-008
	}
	if m != nil && len(o.Payload) > 0 {
		c.crossMessage(sent{obs: o, msg: m, who: who}, judged)
	}
	return slices.Clone(c.findings[before:])
}

// Finish judges what only the passage of time can show (unanswered queries) as of now.
func (c *Checker) Finish(now time.Time) []Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := len(c.findings)
	c.swept = time.Time{} // judge now
	c.sweep(now)
	return slices.Clone(c.findings[before:])
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

// private reports a connector's own marker topic, not rtcomm traffic: the reference
// connector publishes a nonce to <path>connector/<its ID>/~sync to learn that the retained
// registrations have all arrived (reference/connector/connector.go syncTopic).
func (c *Checker) private(topic string) bool {
	return underTopic(topic, c.topics.Connector()) && strings.HasPrefix(spec.Sender(topic), "~")
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
