package framework

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Env is one scenario's private world: its topic path, unique endpoint IDs and client-ID
// prefix, the MQTT connections it opened, the message trace, and the retained-state check
// that runs when the scenario ends.
type Env struct {
	Ctx    context.Context
	Target *Target
	Decl   *Declaration
	// Path is the scenario's topic path; Topics its layout.
	Path   string
	Topics spec.Topics
	// Tag makes this scenario's IDs unique (6 random characters).
	Tag string
	// Secure is set when the scenario runs on the secured listener.
	Secure bool

	trace *Trace

	usesConnector bool
	softFails     []string

	mu         sync.Mutex
	tearing    bool
	parties    []*Party
	jsIDs      map[string]bool // IDs of rtcomm.js-shaped parties (party.go)
	jsValidate func(topic string, payload []byte) []Finding
	tap        *Conn
	conns      []*Conn
	ids        []string
	identities int
	violations []Finding
	stop       func()
	validate   func(topic string, payload []byte) []Finding
	leakScope  []string // extra topic filters to scan for retained leftovers
}

// EnvOption configures NewEnv.
type EnvOption func(*envConfig)

type envConfig struct {
	connector bool
	secure    bool
	connParam func(*ConnectorParams)
}

// WithConnector gives the scenario a connector: in modes embedded and broker the harness
// starts the reference connector on the scenario's own topic path; in mode connector it is
// the target's connector on the declared path.
func WithConnector() EnvOption { return func(c *envConfig) { c.connector = true } }

// OnSecureListener runs the scenario on the target's secured listener with declared identities.
func OnSecureListener() EnvOption { return func(c *envConfig) { c.secure = true } }

// ConnectorTweak adjusts the harness-started connector's parameters for this scenario.
func ConnectorTweak(f func(*ConnectorParams)) EnvOption {
	return func(c *envConfig) { c.connParam = f }
}

// current is the target of the running suite (set by Run before Ginkgo starts).
var current struct {
	sync.Mutex
	target *Target
}

func activeTarget() *Target {
	current.Lock()
	defer current.Unlock()
	return current.target
}

// NewEnv prepares a scenario. Call it first in an It; teardown is registered with DeferCleanup.
func NewEnv(ctx context.Context, opts ...EnvOption) *Env {
	GinkgoHelper()
	t := activeTarget()
	if t == nil {
		Fail("harness: no target (scenarios must be run through scenarios.Run)")
	}
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	skipUnclaimed(&t.Decl)
	e := &Env{
		Ctx: ctx, Target: t, Decl: &t.Decl, Tag: RandomTag(6), trace: newTrace(),
	}
	switch {
	case cfg.secure:
		if !t.Decl.Claims(FeatureSecure) {
			NotClaimed(FeatureSecure)
		}
		e.Secure = true
		e.Path = t.SecurePath
	case cfg.connector && !t.HarnessRunsConnector():
		e.Path = t.Decl.TopicPath
	case cfg.connector:
		e.Path = t.Decl.TopicPath + "s-" + e.Tag + "/"
	default:
		// Broker-only scenarios: a private path with an empty first level, like /rtcomm/.
		e.Path = "/h-" + e.Tag + "/"
	}
	e.Topics = spec.NewTopics(e.Path)
	e.usesConnector = cfg.connector
	e.validate = messageValidator(&t.Decl, e.Topics)
	DeferCleanup(e.teardown)
	if cfg.connector && t.HarnessRunsConnector() {
		p := ConnectorParams{
			BrokerURL: t.URL(false, e.Secure), TopicPath: e.Path, TLSConfig: t.TLSConfig,
			Events: t.Decl.Claims(FeatureEvents), CallCtl: t.Decl.Claims(Feature3PCC), Profile: t.Decl.Profile,
			Topology: t.Decl.Topology, Broker: t.embedded,
			Logger: t.Logger.With("component", "connector", "path", e.Path),
		}
		if e.Secure {
			p.Broker = t.secureEmbedded
		}
		if t.Decl.Claims(FeatureQueues) {
			p.Queues = []string{"queue-" + e.Tag}
		}
		if t.Decl.Claims(FeatureSchemes) {
			p.Schemes = t.Decl.Schemes
		}
		if e.Secure {
			p.Secure, p.CallControllers = true, t.CallControllers
		}
		if e.Secure && t.ConnectorIdentity != nil {
			p.Username, p.Password = t.ConnectorIdentity.Username, t.ConnectorIdentity.Password
		} else if c := t.Decl.ConnectorCredentials; c != nil {
			p.Username, p.Password = c.Username, c.Password
		} else if t.Decl.Broker.Username != "" {
			p.Username, p.Password = t.Decl.Broker.Username, t.Decl.Broker.Password
		}
		if cfg.connParam != nil {
			cfg.connParam(&p)
		}
		cctx, cancel := context.WithTimeout(ctx, e.Decl.ReplyTimeout()*2)
		stop, err := t.StartConnector(cctx, p)
		cancel()
		Harness(err, "harness: start the connector on "+e.Path)
		e.stop = stop
	}
	if cfg.connector && !e.Secure {
		e.startTap()
	}
	return e
}

// skipUnclaimed skips the scenario as "not claimed" when a requirement it names belongs to
// an optional feature the target does not claim: the catalog's Feature is the only gate.
func skipUnclaimed(d *Declaration) {
	GinkgoHelper()
	for _, id := range requirementLabels(CurrentSpecReport().Labels()) {
		if r, ok := spec.Lookup(id); ok && !d.Claims(r.Feature) {
			NotClaimed(r.Feature)
		}
	}
}

// CheckSoft is Check that does not stop the scenario: a violation is recorded and the
// scenario fails when it ends, so independent checks after it still give their verdicts.
func (e *Env) CheckSoft(req string, ok bool, expected string, actualFormat string, args ...any) {
	GinkgoHelper()
	mustName(req)
	f := Finding{Req: req, Outcome: OutcomePass}
	if !ok {
		f = Finding{Req: req, Outcome: OutcomeFail, Expected: expected, Actual: fmt.Sprintf(actualFormat, args...)}
		e.mu.Lock()
		e.softFails = append(e.softFails, f.String())
		e.mu.Unlock()
	}
	AddReportEntry(EntryFinding, f, ReportEntryVisibilityNever, Offset(1))
}

// Queues returns the call-queue endpoint IDs this scenario can call (feature queues).
func (e *Env) Queues() []string {
	if e.Target.HarnessRunsConnector() {
		return []string{"queue-" + e.Tag}
	}
	return e.Decl.Queues
}

// OpContext bounds one harness operation; during teardown the scenario's context is already
// cancelled, so teardown runs on a fresh one.
func (e *Env) OpContext() (context.Context, context.CancelFunc) {
	e.mu.Lock()
	base := e.Ctx
	if e.tearing {
		base = context.Background()
	}
	e.mu.Unlock()
	return context.WithTimeout(base, e.Reply())
}

// Reply is the declared reply timeout.
func (e *Env) Reply() time.Duration { return e.Decl.ReplyTimeout() }

// Quiet is the declared quiet window.
func (e *Env) Quiet() time.Duration { return e.Decl.QuietWindow() }

// Trace returns the scenario's message trace.
func (e *Env) Trace() *Trace { return e.trace }

// ID returns a unique endpoint ID for a role, e.g. "alice-x3k9qa". On the secured listener it
// hands out the declared identities in order.
func (e *Env) ID(role string) string {
	GinkgoHelper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var id string
	if e.Secure {
		if e.identities >= len(e.Target.Identities) {
			Fail(fmt.Sprintf("harness: the scenario needs more than the %d declared secure identities", len(e.Target.Identities)))
		}
		id = e.Target.Identities[e.identities].ID
		e.identities++
	} else {
		id = role + "-" + e.Tag
	}
	e.ids = append(e.ids, id)
	return id
}

// IdentityOf returns the credentials of a secure ID.
func (e *Env) IdentityOf(id string) (Identity, bool) {
	for _, c := range e.Target.Identities {
		if c.ID == id {
			return c, true
		}
	}
	return Identity{}, false
}

// ConnOptions configure a harness MQTT connection.
type ConnOptions struct {
	// WebSocket connects over the WebSocket listener instead of TCP.
	WebSocket bool
	// MQTT31 speaks MQTT 3.1 (MQIsdp), as rtcomm.js does; default 3.1.1.
	MQTT31 bool
	// Will is the last will (nil: none).
	Will *mqttc.Will
	// AsID authenticates as the secure identity of this endpoint ID (secured listener).
	AsID string
	// Username/Password override the credentials.
	Username, Password string
	// ClientID is the MQTT client ID (default: a random one).
	ClientID string
	// Persistent asks for a persistent session (clean session off); messages the broker
	// queued for it go to the inbox like any other.
	Persistent bool
	// Validate checks every received message with the spec validator (messages from the target).
	Validate bool
	// Quiet: do not trace (bulk traffic).
	Quiet bool
}

// mqttcMessage is what a subscription handler receives.
type mqttcMessage = mqttc.Message

// Conn is a harness MQTT connection whose traffic is traced.
type Conn struct {
	Name  string
	env   *Env
	c     *mqttc.Client
	in    *Inbox
	opts  ConnOptions
	dead  bool
	mu    sync.Mutex
	gone  bool
	subFn func(mqttc.Message)
}

// Connect opens a harness MQTT connection named for its role (the name appears in traces).
func (e *Env) Connect(name string, o ConnOptions) (*Conn, error) {
	url := e.Target.URL(o.WebSocket, e.Secure)
	if url == "" {
		return nil, fmt.Errorf("no broker URL for %s (websocket=%v secure=%v)", name, o.WebSocket, e.Secure)
	}
	mo := mqttc.Options{
		BrokerURL: url, ClientID: mqttc.RandomClientID("h" + e.Tag), Will: o.Will, TLSConfig: e.Target.TLSConfig,
		ConnectTimeout: e.Reply(), Logger: e.Target.Logger,
	}
	if o.MQTT31 {
		mo.ProtocolVersion = 3
	}
	if o.ClientID != "" {
		mo.ClientID = o.ClientID
	}
	mo.Persistent = o.Persistent
	switch {
	case o.Username != "":
		mo.Username, mo.Password = o.Username, o.Password
	case o.AsID != "" && e.Secure:
		if id, ok := e.IdentityOf(o.AsID); ok {
			mo.Username, mo.Password = id.Username, id.Password
		}
	case !e.Secure && e.Decl.Broker.Username != "":
		mo.Username, mo.Password = e.Decl.Broker.Username, e.Decl.Broker.Password
	}
	ctx, cancel := e.OpContext()
	defer cancel()
	conn := &Conn{Name: name, env: e, in: newInbox(), opts: o}
	mo.OnUnrouted = func(m mqttc.Message) { conn.subFn(m) }
	conn.subFn = func(m mqttc.Message) {
		if !o.Quiet {
			e.trace.Add(DirRecv, name, m.Topic, m.Retained, m.QoS, m.Payload)
		}
		if o.Validate {
			e.check(m.Topic, m.Payload)
		}
		conn.in.add(Msg{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, QoS: m.QoS, At: time.Now()})
	}
	c, err := mqttc.Dial(ctx, mo)
	if err != nil {
		return nil, err
	}
	conn.c = c
	e.mu.Lock()
	e.conns = append(e.conns, conn)
	e.mu.Unlock()
	return conn, nil
}

// MustConnect is Connect that fails the scenario, naming req, when the broker refuses.
func (e *Env) MustConnect(req, name string, o ConnOptions) *Conn {
	GinkgoHelper()
	c, err := e.Connect(name, o)
	if err != nil {
		Precondition(req, "the broker accepts the MQTT connection", "%v", err)
	}
	return c
}

// Inbox is every message this connection received.
func (c *Conn) Inbox() *Inbox { return c.in }

// Options returns the connection's options: a scenario may set Quiet once connected.
func (c *Conn) Options() *ConnOptions { return &c.opts }

// ClientID is the MQTT client ID.
func (c *Conn) ClientID() string { return c.c.ID() }

// Subscribe subscribes; received messages go to the inbox.
func (c *Conn) Subscribe(filter string, qos byte) error {
	ctx, cancel := c.env.OpContext()
	defer cancel()
	return c.c.Subscribe(ctx, filter, qos, c.subFn)
}

// Unsubscribe removes subscriptions.
func (c *Conn) Unsubscribe(filters ...string) error {
	ctx, cancel := c.env.OpContext()
	defer cancel()
	return c.c.Unsubscribe(ctx, filters...)
}

// Publish sends one message (QoS 1 waits for PUBACK) and traces it.
func (c *Conn) Publish(topic string, qos byte, retained bool, payload []byte) error {
	if !c.opts.Quiet {
		c.env.trace.Add(DirSent, c.Name, topic, retained, qos, payload)
	}
	ctx, cancel := c.env.OpContext()
	defer cancel()
	return c.c.Publish(ctx, topic, qos, retained, payload)
}

// PublishAsync sends without waiting (bulk traffic); the channel closes when written.
func (c *Conn) PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{} {
	if !c.opts.Quiet {
		c.env.trace.Add(DirSent, c.Name, topic, retained, qos, payload)
	}
	return c.c.PublishAsync(topic, qos, retained, payload)
}

// Send encodes an rtcomm message and publishes it at QoS 0, as rtcomm.js does.
func (c *Conn) Send(topic string, m *spec.Message) error {
	b, err := spec.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Method, err)
	}
	return c.Publish(topic, 0, false, b)
}

// Connected reports whether the connection is up.
func (c *Conn) Connected() bool { return c.c.Connected() }

// Kill drops the TCP connection without DISCONNECT: the broker must publish the will.
func (c *Conn) Kill() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	c.env.trace.Add("note", c.Name, "", false, 0, []byte("connection killed (no DISCONNECT)"))
	c.c.Kill()
}

// Close disconnects cleanly.
func (c *Conn) Close() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	c.c.Close()
}

// check validates one message the target delivered to a harness endpoint.
func (e *Env) check(topic string, payload []byte) {
	if e.validate == nil {
		return
	}
	fs := e.validate(topic, payload)
	if len(fs) == 0 {
		return
	}
	e.mu.Lock()
	e.violations = append(e.violations, fs...)
	e.mu.Unlock()
}

// teardown runs after the scenario: report format violations, close connections, check that
// no retained state is left behind (a leak fails this scenario), stop the connector, and
// attach the trace when the scenario failed.
func (e *Env) teardown() {
	e.mu.Lock()
	e.tearing = true
	parties := slices.Clone(e.parties)
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Clean: STOP_SESSION for live sessions, empty retained unregister, DISCONNECT.
			if err := p.Close(); err != nil {
				e.trace.Add("note", p.Role, "", false, 0, []byte("close: "+err.Error()))
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	conns := slices.Clone(e.conns)
	viol := slices.Clone(e.violations)
	e.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		gone := c.gone
		c.gone = true
		c.mu.Unlock()
		if !gone {
			wg.Add(1)
			go func() { defer wg.Done(); c.c.Close() }()
		}
	}
	wg.Wait()
	leaks, checked := e.retainedLeftovers()
	if e.stop != nil {
		// The connector serves this scenario's private path only: let it wind down in the
		// background (the target waits for it when it closes).
		e.Target.background(e.stop)
	}
	var msgs []string
	seen := map[string]bool{}
	for _, f := range viol {
		key := f.Req + f.Actual
		if seen[key] {
			continue
		}
		seen[key] = true
		softViolation(f)
		msgs = append(msgs, f.String())
	}
	if len(leaks) == 0 && checked && e.usesConnector {
		frameworkPass(ReqNoRetainedLeak)
	}
	if len(leaks) > 0 {
		for req, ls := range e.leakRequirements(leaks) {
			f := Finding{Req: req, Outcome: OutcomeFail,
				Expected: "no retained message left under the scenario's topics once its endpoints are gone",
				Actual:   "retained state left behind: " + strings.Join(ls, "; ")}
			softViolation(f)
			msgs = append(msgs, f.String())
		}
	}
	e.mu.Lock()
	msgs = append(msgs, e.softFails...)
	e.mu.Unlock()
	already := CurrentSpecReport().Failed()
	if already || len(msgs) > 0 {
		AddReportEntry(EntryTrace, TraceLog(e.trace.Events()), ReportEntryVisibilityFailureOrVerbose)
	}
	if len(msgs) > 0 && !already {
		Fail(strings.Join(msgs, "\n\n"))
	}
}

// retainedLeftovers lists retained messages left on this scenario's topics and clears them.
// A scenario with a private topic path owns everything below it; on a shared path (mode
// connector, secured listener) only topics naming one of its endpoint IDs are its own.
func (e *Env) retainedLeftovers() (leaks []string, checked bool) {
	settle := min(e.Quiet()/2, 150*time.Millisecond)
	time.Sleep(settle) // let wills, unregisters and the connector's reactions land
	ctx, cancel := context.WithTimeout(context.Background(), e.Reply())
	defer cancel()
	lo := ConnOptions{Quiet: true}
	if e.Secure {
		switch {
		case e.Target.ConnectorIdentity != nil:
			lo.Username, lo.Password = e.Target.ConnectorIdentity.Username, e.Target.ConnectorIdentity.Password
		case len(e.Target.Identities) > 0:
			lo.AsID = e.Target.Identities[0].ID
		}
	}
	sub, err := e.Connect("leakcheck", lo)
	if err != nil {
		return []string{"could not connect to check retained state: " + err.Error()}, false
	}
	defer sub.Close()
	private := e.Path != e.Decl.TopicPath && !e.Secure
	filters := append([]string{e.Path + "#"}, e.leakScope...)
	if e.Secure && e.Target.ConnectorIdentity == nil {
		filters = []string{e.Topics.SphereRoot() + "/#"} // all an endpoint identity may read beyond its inbox
	}
	for _, f := range filters {
		if err := sub.Subscribe(f, 0); err != nil {
			if errors.Is(err, mqttc.ErrSubscriptionRefused) && e.Secure {
				return nil, false // a secured broker may not let a plain client look; nothing to check
			}
			return []string{"could not subscribe to check retained state: " + err.Error()}, false
		}
	}
	got := sub.Inbox().Collect(ctx, settle, 0, func(m Msg) bool { return m.Retained && len(m.Payload) > 0 })
	e.mu.Lock()
	ids := slices.Clone(e.ids)
	e.mu.Unlock()
	for _, m := range got {
		if !private && !mentionsAny(m.Topic, ids) {
			continue
		}
		leaks = append(leaks, fmt.Sprintf("%s = %s", m.Topic, Brief(m.Payload)))
		_ = sub.Publish(m.Topic, 1, true, nil) // clear it so it cannot disturb anyone else
	}
	sort.Strings(leaks)
	return leaks, true
}

// leakRequirements says which requirements retained leftovers fail. Presence (sphere) is
// the one place retained state belongs, so a DOCUMENT left there was not cleared by whoever
// should have (broker, endpoint, or a check the scenario provoked): it fails the scenario's
// own requirements. Anything retained elsewhere, with a connector in play, breaks ROB-003
// (the connector retains only presence). Without a connector, the scenario caused it.
func (e *Env) leakRequirements(leaks []string) map[string][]string {
	out := map[string][]string{}
	labels := requirementLabels(CurrentSpecReport().Labels())
	_, haveROB := spec.Lookup(ReqNoRetainedLeak)
	for _, l := range leaks {
		if e.usesConnector && haveROB && !strings.HasPrefix(l, e.Topics.SphereRoot()+"/") {
			out[ReqNoRetainedLeak] = append(out[ReqNoRetainedLeak], l)
			continue
		}
		for _, req := range labels {
			out[req] = append(out[req], l)
		}
	}
	return out
}

// mentionsAny reports whether a topic has a level equal to one of ids.
func mentionsAny(topic string, ids []string) bool {
	for _, level := range strings.Split(topic, "/") {
		if slices.Contains(ids, level) {
			return true
		}
	}
	return false
}

// RandomTag returns n random lower-case letters and digits.
func RandomTag(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
