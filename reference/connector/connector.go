// Package connector is the reference rtcomm connector: it keeps the registry of
// endpoints from the retained presence documents, answers SERVICE_QUERY, routes
// START_SESSION to the callee and stays in the signaling path (session table,
// reaper, events), serves third-party call control, call queues and scheme
// routes, and runs as several replicas behind MQTT shared subscriptions.
// DESIGN.md in this folder explains the choices.
package connector

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Defaults used by DefaultConfig and by New for zero values.
const (
	DefaultICEURL          = "stun:stun.l.google.com:19302"
	DefaultAnswerTimeout   = 30 * time.Second
	DefaultThreePCCTimeout = 45 * time.Second // lib.rtcomm.node's own 3PCC timeout
	DefaultReplaceGrace    = 10 * time.Second
	NoReplaceGrace         = time.Duration(-1) // Config.ReplaceGrace: no grace window
	DefaultQueueGroup      = "rtcomm-queue"
	DefaultQueueShare      = "$share/{group}/"
	QueueShareNone         = "none"
	DefaultMaxSessions     = 100000
	DefaultAppContext      = "rtcomm" // rtcomm.js's default; events of sessions without one carry it
	// DefaultMaxPayload matches the embedded broker's default limit.
	DefaultMaxPayload = 1 << 20
	// MaxHoldTimeout caps a PRANSWER's holdTimeout so one message cannot pin a session for days.
	MaxHoldTimeout = time.Hour
)

// SchemeRoute sends calls to IDs "<Scheme>:..." to Topic (a gateway), as
// advertised by a service carrying {schemes, topic}.
type SchemeRoute struct {
	Scheme string // e.g. "sip" (matched case-insensitively, without the colon)
	Topic  string // absolute topic the gateway subscribes to (with "/#")
}

// Config configures a Connector. DefaultConfig gives sensible values.
type Config struct {
	BrokerURL          string
	ClientID           string // MQTT client ID, also the connector's sender level; default random "rtcconn-..."
	Username, Password string
	TLSConfig          *tls.Config
	TopicPath          string   // default spec.DefaultTopicPath
	ICEURLs            []string // advertised in iceURL (comma-separated); default DefaultICEURL
	// RouteOnly forwards START_SESSION untouched (fromTopic kept) and tracks nothing further
	// (sessions created by 3PCC are still kept in the path, or 3PCC could not complete).
	RouteOnly       bool
	AnswerTimeout   time.Duration // unanswered sessions reaped after this, default 30s
	ThreePCCTimeout time.Duration // 3PCC_PLACE_CALL answered FAILURE after this, default 45s
	// ReplaceGrace is how long after a replacement the replaced client's empty
	// retained message is expected (and ignored); 0 means the default 10s and
	// NoReplaceGrace switches it off (strict-profile clients send no goodbye). See DESIGN.md.
	ReplaceGrace time.Duration
	Events       bool     // publish RTCOMM_EVENT_FIRED
	CallControl  bool     // serve 3PCC_PLACE_CALL on Topics.CallControl()
	Queues       []string // call-queue endpoint IDs served via shared subscription
	QueueGroup   string   // shared-subscription group name for queue agents, default "rtcomm-queue"
	// QueueShare is the broker's shared-subscription syntax, "{group}" standing for
	// QueueGroup: a queue is advertised as <QueueShare><path><queue>/#, the filter an agent
	// subscribes to as given (rtcomm.js EndpointProvider.js joinQueue). Default
	// "$share/{group}/" (MQTT 5; mosquitto, mochi); MessageSight spells it
	// "$SharedSubscription/{group}/". QueueShareNone advertises the plain filter, for a
	// broker without shared subscriptions: every agent then gets every call (QUE-002 fails
	// with more than one agent). QUE-001
	QueueShare string
	Schemes    []SchemeRoute
	// Secure: the broker authenticates every client as its endpoint ID and enforces the
	// identity rule (serve --secure; docs/SECURITY.md). The connector then adds the rules
	// only it can judge: a DOCUMENT's address must be the registrant's own inbox
	// (<path><id> or below), a reply goes only to a topic of the requester's own inbox
	// with the connector's ID as sender level, and 3PCC is served only to CallControllers.
	Secure bool
	// CallControllers are the endpoint IDs allowed to place 3PCC calls (as the sender
	// level of <path>callControl/<id>). Empty: anyone in open mode, no one when Secure.
	// Non-empty: only they; the bare <path>callControl topic, which names no sender, is
	// then refused.
	CallControllers []string
	// SharedGroup makes this connector one replica of a group: routing topics are
	// subscribed as $share/<group>/..., so each message is handled by one replica.
	SharedGroup string
	// MaxSessions bounds the session table (and the pending 3PCC table); a
	// START_SESSION beyond it is answered FAILURE. Default DefaultMaxSessions.
	MaxSessions int
	// MaxSessionsPerEndpoint bounds the sessions one endpoint ID takes part in;
	// default DefaultMaxSessionsPerEndpoint, negative = no limit.
	MaxSessionsPerEndpoint int
	// MaxRegistrationsPerEndpoint bounds the registrations (appContexts) of one
	// endpoint ID; default DefaultMaxRegistrationsPerEndpoint, negative = no limit.
	MaxRegistrationsPerEndpoint int
	// MaxRegistrations bounds the registry; default DefaultMaxRegistrations, negative = no limit.
	MaxRegistrations int
	// RatePerClient is the sustained inbound messages per second one client
	// (sender ID) may send, RateBurst how many at once; over it, messages are
	// refused. Defaults DefaultRatePerClient and DefaultRateBurst; negative = off.
	RatePerClient float64
	RateBurst     int
	// Limits bound every inbound message before it is decoded (size, nesting,
	// string lengths); zero fields take spec.DefaultLimits (MaxPayload: the
	// MaxPayload below), negative ones are off. See DESIGN.md, "Limits".
	Limits spec.Limits
	// MaxPayload is the largest payload the connector publishes; a message that
	// would grow past it when fromTopic is rewritten is refused instead, because a
	// broker disconnects a client that publishes over its limit. Default
	// DefaultMaxPayload; set it to the broker's limit.
	MaxPayload int
	// Dial opens the connection to the broker; nil is mqttc.Dial (paho over BrokerURL). An
	// embedded broker passes its in-process link (broker.Broker.DialLocal): the same MQTT
	// client to the broker's hooks, without a socket (docs/PERFORMANCE.md, "In-process
	// connector link"). BrokerURL is then only named in logs.
	Dial       func(ctx context.Context, o mqttc.Options) (Link, error)
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil = no metrics
}

// Link is the connector's MQTT connection, as *mqttc.Client offers it: handlers run one at a
// time in arrival order (per-publisher ordering); Publish returns once the message is handed
// over (QoS 0) or acknowledged (QoS 1); Close sends DISCONNECT (no will).
type Link interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
	PublishAsync(topic string, qos byte, retained bool, payload []byte) <-chan struct{}
	Subscribe(ctx context.Context, filter string, qos byte, h mqttc.Handler) error
	Unsubscribe(ctx context.Context, filters ...string) error
	Connected() bool
	Close()
}

// DefaultConfig returns a configuration with events and call control on and
// every timeout at its default. BrokerURL still has to be set.
func DefaultConfig() Config {
	return Config{
		TopicPath:       spec.DefaultTopicPath,
		ICEURLs:         []string{DefaultICEURL},
		AnswerTimeout:   DefaultAnswerTimeout,
		ThreePCCTimeout: DefaultThreePCCTimeout,
		ReplaceGrace:    DefaultReplaceGrace,
		Events:          true,
		CallControl:     true,
		QueueGroup:      DefaultQueueGroup,
		MaxSessions:     DefaultMaxSessions,
		MaxPayload:      DefaultMaxPayload,
	}
}

// Stats is a snapshot of the connector's state and counters.
type Stats struct {
	Connected       bool
	Registrations   int // registry entries (endpoint ID + appContext)
	ActiveSessions  int // tracked sessions in any state
	PendingSessions int // tracked sessions not yet answered
	Pending3PCC     int // 3PCC requests waiting for their session's outcome
	// RoutedTotal counts messages forwarded between endpoints (START_SESSION and relays).
	RoutedTotal uint64
	Routed      map[string]uint64 // by method
	Failures    map[string]uint64 // RESPONSE FAILUREs and failed sessions, by reason code
	// Session outcomes.
	SessionsStarted, SessionsEstablished, SessionsStopped, SessionsFailed uint64
	Replacements, Unregistrations, IgnoredUnregistrations                 uint64
	Dropped                                                               uint64 // inbound messages dropped without any reply
	Panics                                                                uint64 // handler panics recovered (bugs; each message dropped)
	Received                                                              uint64 // inbound messages handled (any topic, any outcome)
	RateClients                                                           int    // senders tracked by the rate limiter
	// Forwarded counts in-session messages handed on from the general connector
	// topic: to the replica that holds the session, or (route-only) to the callee.
	Forwarded uint64
	// ReplicaSessionsEnded counts sessions of a vanished replica this one ended.
	ReplicaSessionsEnded uint64
}

// Connector is one running reference connector (or one replica of a group).
type Connector struct {
	cfg    Config
	topics spec.Topics
	id     string // sender level of messages the connector originates; replica level
	log    *slog.Logger
	debug  bool
	met    *metrics
	limits spec.Limits
	rate   *rateLimiter
	// sink, when set, receives every publish instead of the broker (fuzzing and unit tests).
	sink func(topic string, qos byte, retained bool, payload []byte)

	// Topics, precomputed.
	inPath       string // <path>connector/<id>: fromTopic of everything the connector forwards
	inPathPrefix string // inPath + "/"
	inPathJSON   []byte // inPath as a JSON string literal, spliced into relayed messages
	connPrefix   string // <path>connector/
	mgmtPrefix   string // <path>management/
	spherePrefix string // <path>sphere/
	ccTopic      string // <path>callControl
	syncTopic    string // inPathPrefix + "~sync": the end-of-retained marker
	services     map[string]spec.Service
	queues       map[string]string // queue ID -> topic agents share (behind the advertised filter)
	queueFilters map[string]string // queue ID -> advertised filter: <share prefix><topic>/#
	controllers  map[string]bool   // Config.CallControllers
	schemes      map[string]string // lower-case scheme -> gateway topic

	client Link

	mu       sync.Mutex // guards everything below
	reg      registry
	sess     sessionTable
	pcc      pccTable
	tombs    tombstones
	claims   map[string]claim      // other replicas' 3PCC requests, by sessionID
	owners   map[string]ownRecord  // other replicas' sessions, by ownKey(sigSessID) (owners.go)
	live     map[string]bool       // other replicas that are up
	gone     map[string]bool       // replicas seen going (replicalive.go)
	referOwn map[string]referOwner // other replicas' REFER transIDs: where a REFER answer goes
	roCalls  map[string]roCall     // RouteOnly: calls forwarded, by sigSessID (routeonly.go)
	held     map[string][]heldFwd  // replicas: messages waiting for their session's record
	nHeld    int
	failures map[string]uint64
	gen      uint64 // registry generation, bumped on every (re)subscription
	syncWait string // nonce of the pending sphere sync marker
	syncCh   chan struct{}

	routed                                     [numMethods]atomic.Uint64
	started, established, stopped, failed      atomic.Uint64
	replacements, unregistrations, ignoredUnrg atomic.Uint64
	dropped                                    atomic.Uint64
	panics, received                           atomic.Uint64
	forwarded, replicaEnded                    atomic.Uint64

	serving   atomic.Bool // subscriptions done: reconnects must resubscribe
	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

// New validates cfg, fills defaults and registers metrics; Start connects.
func New(cfg Config) (*Connector, error) {
	if cfg.BrokerURL == "" && cfg.Dial == nil {
		return nil, errors.New("connector: BrokerURL is required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = mqttc.RandomClientID("rtcconn-")
	}
	if err := spec.ValidateEndpointID(cfg.ClientID); err != nil {
		return nil, fmt.Errorf("connector: ClientID is the connector's topic level: %w", err)
	}
	if strings.HasPrefix(cfg.ClientID, "~") {
		return nil, fmt.Errorf("connector: ClientID %q: a leading '~' is reserved", cfg.ClientID)
	}
	topics := spec.NewTopics(cfg.TopicPath)
	if err := checkTopicName(topics.Path); err != nil {
		return nil, fmt.Errorf("connector: TopicPath: %w", err)
	}
	if len(cfg.ICEURLs) == 0 {
		cfg.ICEURLs = []string{DefaultICEURL}
	}
	if vs := spec.CheckIceURL(strings.Join(cfg.ICEURLs, ","), spec.ProfileStrict); len(vs) > 0 {
		return nil, fmt.Errorf("connector: ICE URL %s: want stun:host[:port], turn:host[:port][?transport=udp|tcp] "+
			"or turn:<user>@<host>:<port>:credential:<password> (SQ-007)", vs[0].Actual)
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.ThreePCCTimeout <= 0 {
		cfg.ThreePCCTimeout = DefaultThreePCCTimeout
	}
	if cfg.ReplaceGrace == 0 {
		cfg.ReplaceGrace = DefaultReplaceGrace
	}
	if cfg.QueueGroup == "" {
		cfg.QueueGroup = DefaultQueueGroup
	}
	if cfg.QueueShare == "" {
		cfg.QueueShare = DefaultQueueShare
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	applyLimitDefaults(&cfg)
	for _, g := range []string{cfg.QueueGroup, cfg.SharedGroup} {
		if strings.ContainsAny(g, "/+#") {
			return nil, fmt.Errorf("connector: shared-subscription group %q must not contain '/', '+' or '#'", g)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("connector", cfg.ClientID)
	for _, v := range spec.CheckIceURL(strings.Join(cfg.ICEURLs, ","), spec.ProfileClient) {
		// rtcomm.js's WebRTCConnection.js buildTURNobject throws on any other TURN URL. SQ-009
		log.Warn("ICE URL rtcomm.js cannot parse: write TURN servers as turn:<user>@<host>:<port>:credential:<password>", "url", v.Actual)
	}

	c := &Connector{
		cfg:          cfg,
		topics:       topics,
		id:           cfg.ClientID,
		log:          log,
		debug:        log.Enabled(context.Background(), slog.LevelDebug),
		connPrefix:   topics.Connector() + "/",
		mgmtPrefix:   topics.Management() + "/",
		spherePrefix: topics.SphereRoot() + "/",
		ccTopic:      topics.CallControl(),
		queues:       map[string]string{},
		queueFilters: map[string]string{},
		schemes:      map[string]string{},
		reg:          newRegistry(),
		sess:         newSessionTable(),
		pcc:          newPCCTable(),
		failures:     map[string]uint64{},
		claims:       map[string]claim{},
		owners:       map[string]ownRecord{},
		live:         map[string]bool{},
		gone:         map[string]bool{},
		referOwn:     map[string]referOwner{},
		roCalls:      map[string]roCall{},
		held:         map[string][]heldFwd{},
		stop:         make(chan struct{}),
		limits:       cfg.Limits,
		rate:         newRateLimiter(cfg.RatePerClient, cfg.RateBurst),
	}
	c.inPath = topics.Connector() + "/" + c.id
	c.inPathPrefix = c.inPath + "/"
	c.inPathJSON, _ = json.Marshal(c.inPath) // a string cannot fail
	c.syncTopic = c.inPathPrefix + "~sync"

	if len(cfg.CallControllers) > 0 {
		c.controllers = map[string]bool{}
		for _, id := range cfg.CallControllers {
			if err := spec.ValidateEndpointID(id); err != nil {
				return nil, fmt.Errorf("connector: call controller: %w", err)
			}
			c.controllers[id] = true
		}
	}
	for _, q := range cfg.Queues {
		if err := spec.ValidateEndpointID(q); err != nil {
			return nil, fmt.Errorf("connector: queue: %w", err)
		}
		if c.reservedLevel(q) {
			return nil, fmt.Errorf("connector: queue %q collides with a service topic", q)
		}
		c.queues[q] = topics.Inbox(q)
		// The advertised topic is a filter agents use as given; the connector publishes each
		// queued START_SESSION behind it, so the broker hands it to exactly one agent. QUE-001 QUE-002
		prefix := strings.ReplaceAll(cfg.QueueShare, "{group}", cfg.QueueGroup)
		if cfg.QueueShare == QueueShareNone {
			prefix = ""
		}
		f := prefix + c.queues[q] + "/#"
		if err := spec.ValidateFilter(f); err != nil || spec.QueueTopic(f) != c.queues[q] {
			return nil, fmt.Errorf("connector: queue %q: share syntax %q gives filter %q, not one behind which %s lies (%v)",
				q, cfg.QueueShare, f, c.queues[q], err)
		}
		c.queueFilters[q] = f
	}
	for _, s := range cfg.Schemes {
		scheme := strings.ToLower(strings.TrimSuffix(s.Scheme, ":"))
		if scheme == "" || strings.ContainsAny(scheme, ":/+#") {
			return nil, fmt.Errorf("connector: scheme %q: want a name like \"sip\"", s.Scheme)
		}
		if err := checkTopicName(s.Topic); err != nil {
			return nil, fmt.Errorf("connector: scheme %s topic: %w", scheme, err)
		}
		if _, dup := c.schemes[scheme]; dup {
			return nil, fmt.Errorf("connector: scheme %s routed twice", scheme)
		}
		c.schemes[scheme] = s.Topic
	}
	c.services = c.buildServices()
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer, c)
		if err != nil {
			return nil, fmt.Errorf("connector: metrics: %w", err)
		}
		c.met = m
	}
	return c, nil
}

// Topics returns the topic layout the connector serves.
func (c *Connector) Topics() spec.Topics { return c.topics }

// ID returns the connector's sender level (its MQTT client ID).
func (c *Connector) ID() string { return c.id }

// SessionTopic is the fromTopic the connector puts on everything it forwards;
// replies arrive at SessionTopic()+"/<sender>" and reach this replica only.
func (c *Connector) SessionTopic() string { return c.inPath }

// Start connects, subscribes, loads the retained presence documents and
// returns once the connector is serving.
func (c *Connector) Start(ctx context.Context) error {
	if c.closed.Load() {
		return errors.New("connector: start after close")
	}
	if c.client != nil {
		return errors.New("connector: already started")
	}
	dial := c.cfg.Dial
	if dial == nil {
		dial = func(ctx context.Context, o mqttc.Options) (Link, error) { return mqttc.Dial(ctx, o) }
	}
	cl, err := dial(ctx, mqttc.Options{
		BrokerURL:     c.cfg.BrokerURL,
		ClientID:      c.id,
		Username:      c.cfg.Username,
		Password:      c.cfg.Password,
		TLSConfig:     c.cfg.TLSConfig,
		AutoReconnect: true,
		Will:          c.liveWill(), // a replica that dies has its sessions ended by the others
		Logger:        c.log,
		OnConnect:     c.onReconnect,
		OnConnectionLost: func(err error) {
			c.log.Warn("broker connection lost; reconnecting", "err", err)
		},
	})
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	c.client = cl
	if err := c.subscribe(ctx, false); err != nil {
		cl.Close()
		return fmt.Errorf("connector: %w", err)
	}
	c.serving.Store(true)
	c.wg.Add(1)
	go c.reaper()
	c.log.Info("connector serving", "broker", c.cfg.BrokerURL, "topicPath", c.topics.Path,
		"sessionTopic", c.inPath, "sharedGroup", c.cfg.SharedGroup, "routeOnly", c.cfg.RouteOnly,
		"registrations", c.registrations())
	return nil
}

// onReconnect runs (in its own goroutine) after every connect; after the first
// it restores the subscriptions a clean session lost and resynchronizes the registry.
func (c *Connector) onReconnect(*mqttc.Client) {
	if !c.serving.Load() || c.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.subscribe(ctx, true); err != nil {
		c.log.Error("resubscribe after reconnect failed", "err", err)
		return
	}
	n := c.endAllSessions("connector lost its broker connection")
	c.log.Info("reconnected and resubscribed", "registrations", c.registrations(), "sessionsEnded", n)
}

// filter prefixes a routing filter with the replicas' shared group.
func (c *Connector) filter(f string) string {
	if c.cfg.SharedGroup == "" {
		return f
	}
	return "$share/" + c.cfg.SharedGroup + "/" + f
}

// subscribe sets up every subscription. The registry is loaded first (sphere
// subscription, then a marker on a private topic that comes back after the
// last retained document), so no call is routed against a half-loaded
// registry. Filters never overlap (paho would call every matching handler),
// and there are few of them: paho matches each message against every filter.
func (c *Connector) subscribe(ctx context.Context, resync bool) error {
	cl := c.client
	nonce := mqttc.RandomClientID("")
	ch := make(chan struct{})
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.syncWait, c.syncCh = nonce, ch
	c.mu.Unlock()
	if err := cl.Subscribe(ctx, c.syncTopic, 1, func(m mqttc.Message) { c.syncDone(m.Payload) }); err != nil {
		return err
	}
	// Every replica builds the whole registry: plain subscription.
	if err := cl.Subscribe(ctx, c.spherePrefix+"#", 1, c.guard(c.onSphere)); err != nil { // REG-005
		return err
	}
	if c.replicated() {
		// Learn who else is up and which sessions they hold: they answer our hello
		// by publishing both again (nothing of it is retained, ROB-003).
		for _, s := range []struct {
			f string
			h func(mqttc.Message)
		}{{c.livePrefix() + "+", c.onLive}, {c.ownPrefix() + "+", c.onOwnRecord}, {c.helloPrefix() + "+", c.onHello}} {
			if err := cl.Subscribe(ctx, s.f, 1, c.guard(s.h)); err != nil {
				return err
			}
		}
		if err := cl.Publish(ctx, c.helloPrefix()+c.id, 1, false, c.liveDoc()); err != nil {
			return fmt.Errorf("replica hello: %w", err)
		}
	}
	// The broker sends retained messages right after SUBACK, before it reads our
	// next packet: a marker published now arrives after the last of them.
	if err := cl.Publish(ctx, c.syncTopic, 1, false, []byte(nonce)); err != nil {
		return fmt.Errorf("registry sync marker: %w", err)
	}
	timer := time.NewTimer(10 * time.Second)
	select {
	case <-ch:
		timer.Stop()
	case <-timer.C:
		c.log.Warn("registry sync marker did not come back within 10s; serving with what arrived")
	case <-ctx.Done():
		timer.Stop()
		return fmt.Errorf("loading registry: %w", ctx.Err())
	}
	if err := cl.Unsubscribe(ctx, c.syncTopic); err != nil {
		return err
	}
	if resync {
		c.pruneRegistry(gen)
	}
	type sub struct {
		f string
		h mqttc.Handler
	}
	subs := []sub{{c.filter(c.mgmtPrefix + "#"), c.guard(c.onManagement)}}
	if c.cfg.SharedGroup == "" {
		// One filter for calls and replies: <path>connector/<sender> and <session topic>/<sender>.
		subs = append(subs, sub{c.connPrefix + "#", c.guard(c.onConnectorAll)})
	} else {
		// '+', not '#': replies at <session topic>/<sender> must reach this replica
		// (plain subscription), not whichever replica the shared one picks.
		subs = append(subs, sub{c.filter(c.connPrefix + "+"), c.guard(c.onConnectorTopic)},
			sub{c.inPathPrefix + "+", c.guard(c.onSessionTopic)})
		if rt := c.replicaTopic(); rt != "" {
			subs = append(subs, sub{rt + "/+", c.guard(c.onReplica)})
		}
	}
	if c.cfg.CallControl {
		// "<cc>/#" also matches "<cc>" itself: lib.rtcomm.node publishes there exactly.
		subs = append(subs, sub{c.filter(c.ccTopic + "/#"), c.guard(c.onCallControl)}) // REF-002
	}
	for _, s := range subs {
		if err := cl.Subscribe(ctx, s.f, 1, s.h); err != nil {
			return err
		}
	}
	return nil
}

// guard wraps a handler: nothing is handled after Close, and a bug can never
// take the connector down (the message is logged and dropped).
func (c *Connector) guard(h func(mqttc.Message)) mqttc.Handler {
	return func(m mqttc.Message) {
		if c.closed.Load() {
			return
		}
		c.received.Add(1)
		defer func() {
			if r := recover(); r != nil {
				c.panics.Add(1)
				c.dropped.Add(1)
				c.log.Error("BUG: handler panicked; message dropped", "topic", short(m.Topic), "panic", r,
					"payload", short(string(m.Payload)), "stack", string(debug.Stack()))
				c.countFailure("internal_error")
			}
		}()
		h(m) // ROB-001
	}
}

// Close stops the connector: pending 3PCC requests and unanswered sessions are
// answered FAILURE, established sessions are left alone (their media does not
// need the connector), then it disconnects. Idempotent.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		if c.client != nil {
			c.shutdownSessions()
		}
		c.closed.Store(true) // from here on no handler runs (our own liveness clear included)
		if c.client != nil && c.replicated() && c.serving.Load() {
			// A clean DISCONNECT sends no will: clear our liveness ourselves, so the
			// surviving replicas end the established sessions we leave behind.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := c.client.Publish(ctx, c.livePrefix()+c.id, 1, false, nil); err != nil {
				c.log.Warn("clearing the replica liveness record failed", "err", err)
			}
			cancel()
		}
		close(c.stop)
		c.wg.Wait()
		if c.client != nil {
			c.client.Close()
		}
		c.log.Info("connector closed")
	})
	return nil
}

// Healthy returns nil when the connector is serving and connected to the broker.
func (c *Connector) Healthy() error {
	switch {
	case c.closed.Load():
		return errors.New("connector closed")
	case c.client == nil || !c.serving.Load():
		return errors.New("connector not started")
	case !c.client.Connected():
		return errors.New("connector not connected to the broker")
	}
	return nil
}

// Stats returns a snapshot of the connector's state and counters.
func (c *Connector) Stats() Stats {
	st := Stats{
		Connected:              c.Healthy() == nil,
		Routed:                 map[string]uint64{},
		Failures:               map[string]uint64{},
		SessionsStarted:        c.started.Load(),
		SessionsEstablished:    c.established.Load(),
		SessionsStopped:        c.stopped.Load(),
		SessionsFailed:         c.failed.Load(),
		Replacements:           c.replacements.Load(),
		Unregistrations:        c.unregistrations.Load(),
		IgnoredUnregistrations: c.ignoredUnrg.Load(),
	}
	for i := range min(numMethods, len(spec.Methods)) {
		if n := c.routed[i].Load(); n > 0 {
			st.Routed[string(spec.Methods[i])] = n
			st.RoutedTotal += n
		}
	}
	c.mu.Lock()
	st.Registrations = c.reg.n
	st.ActiveSessions = len(c.sess.byID)
	st.PendingSessions = len(c.sess.pending)
	st.Pending3PCC = len(c.pcc.byRefer)
	for k, v := range c.failures {
		st.Failures[k] = v
	}
	c.mu.Unlock()
	st.Dropped = c.dropped.Load()
	st.Panics = c.panics.Load()
	st.Received = c.received.Load()
	st.Forwarded = c.forwarded.Load()
	st.ReplicaSessionsEnded = c.replicaEnded.Load()
	st.RateClients = c.rate.clients()
	return st
}

func (c *Connector) registrations() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reg.n
}

// buildServices is the SERVICE_QUERY answer, built once (it never changes).
func (c *Connector) buildServices() map[string]spec.Service {
	s := map[string]spec.Service{
		spec.ServiceConnector: { // SQ-005 SQ-006
			Topic:                c.topics.Connector(),
			SphereTopic:          c.topics.SphereRoot(),
			IceURL:               strings.Join(c.cfg.ICEURLs, ","), // SQ-007
			EventMonitoringTopic: c.topics.Events(),
		},
	}
	if c.cfg.CallControl {
		s[spec.ServiceCallControl] = spec.Service{Topic: c.ccTopic} // REF-007
	}
	if len(c.cfg.Queues) > 0 {
		qs := make([]spec.Queue, 0, len(c.cfg.Queues))
		for _, q := range c.cfg.Queues {
			qs = append(qs, spec.Queue{EndpointID: q, Topic: c.queueFilters[q]}) // QUE-001
		}
		s[spec.ServiceCallQueue] = spec.Service{Queues: qs}
	}
	for _, r := range c.cfg.Schemes {
		scheme := strings.ToLower(strings.TrimSuffix(r.Scheme, ":"))
		s[SchemeServiceName(scheme)] = spec.Service{Schemes: []string{scheme}, Topic: r.Topic} // SQ-008
	}
	return s
}

// SchemeServiceName is the name of the service advertising one scheme route
// in the SERVICE_QUERY answer, e.g. RTCOMM_SCHEME_SIP_SERVICE.
func SchemeServiceName(scheme string) string {
	return "RTCOMM_SCHEME_" + strings.ToUpper(scheme) + "_SERVICE"
}

// --- topics ---------------------------------------------------------------

// checkTopicName reports whether the connector may publish to (or below) t.
// A wildcard in a published topic is a protocol error the broker answers by
// disconnecting us, so every topic taken from a message is checked.
func checkTopicName(t string) error {
	switch {
	case t == "":
		return errors.New("empty topic")
	case len(t) > 32767:
		return errors.New("topic too long")
	case !utf8.ValidString(t):
		return errors.New("topic is not valid UTF-8")
	case strings.ContainsAny(t, "+#\x00"): // FMT-006
		return fmt.Errorf("topic %q contains a wildcard or NUL", t)
	case t[0] == '$':
		return fmt.Errorf("topic %q starts with '$' (broker-reserved)", t)
	}
	return nil
}

// reservedLevel reports whether level names one of the service topics under the path.
func (c *Connector) reservedLevel(level string) bool {
	switch level {
	case "management", "connector", "sphere", "event", "callControl":
		return true
	}
	return false
}

// checkPartyTopic checks a topic an endpoint gave as its address or fromTopic.
// Service topics are refused too: relaying into them would loop back to a connector.
func (c *Connector) checkPartyTopic(t string) error {
	if err := checkTopicName(t); err != nil {
		return err
	}
	if rest, ok := c.topics.Under(t); ok {
		first := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			first = rest[:i]
		}
		if c.reservedLevel(first) {
			return fmt.Errorf("topic %q is a service topic, not an endpoint's", t)
		}
	}
	return nil
}

// ownInbox reports whether topic is id's own inbox, <path><id>, or a topic below it:
// under the identity ACLs only id may read it (ID-013, ID-014).
func (c *Connector) ownInbox(id, topic string) bool {
	rest, ok := c.topics.Under(topic)
	if !ok || id == "" {
		return false
	}
	return rest == id || strings.HasPrefix(rest, id+"/")
}

// partyTopic checks a topic sender gave as its address or fromTopic: checkPartyTopic,
// and in secure mode it must be sender's own inbox, or a connector that publishes
// there would be a confused deputy (writing into someone else's inbox for sender).
func (c *Connector) partyTopic(sender, t string) error {
	if err := c.checkPartyTopic(t); err != nil {
		return err
	}
	if c.cfg.Secure && !c.ownInbox(sender, t) { // ID-013 ID-014
		return fmt.Errorf("topic %q is not %s's own inbox %s", t, quote(short(sender)), c.topics.Inbox(short(sender)))
	}
	return nil
}

// to is where a message for a party (or a requester) whose topic is t goes:
// under the topic path the sender's level is appended (identity rule); a topic
// outside the path (a bare client ID, as lib.rtcomm.node uses) is used exactly.
func (c *Connector) to(t, sender string) string {
	if strings.HasPrefix(t, c.topics.Path) {
		return spec.Join(t, sender)
	}
	return t
}

// --- publishing and counting ------------------------------------------------

// publish sends without waiting (QoS 0 is fire and forget; QoS 1 is completed by paho).
func (c *Connector) publish(topic string, qos byte, retained bool, payload []byte) {
	if qos > 1 {
		qos = 1
	}
	if c.sink != nil {
		c.sink(topic, qos, retained, payload)
		return
	}
	c.client.PublishAsync(topic, qos, retained, payload)
}

// send encodes and publishes a message the connector originates.
func (c *Connector) send(topic string, qos byte, m *spec.Message) {
	b, err := spec.Encode(m)
	if err != nil {
		c.log.Error("encode outbound message", "method", m.Method, "err", err)
		return
	}
	c.publish(topic, qos, false, b)
}

func (c *Connector) countRouted(m spec.Method, t0 time.Time) {
	if i := methodIndex(m); i >= 0 && i < numMethods {
		c.routed[i].Add(1)
		if c.met != nil {
			c.met.routed[i].Inc()
		}
	}
	if c.met != nil && !t0.IsZero() {
		c.met.routing.Observe(time.Since(t0).Seconds())
	}
}

func (c *Connector) countFailure(code string) {
	c.mu.Lock()
	c.countFailureLocked(code)
	c.mu.Unlock()
}

// countFailureLocked counts one failure by reason code (a small fixed set: it is a metric label).
func (c *Connector) countFailureLocked(code string) {
	c.failures[code]++
	if c.met != nil {
		c.met.failures.WithLabelValues(code).Inc()
	}
}

// now is the start time of a routed message, read only when metrics want it.
func (c *Connector) now() time.Time {
	if c.met == nil {
		return time.Time{}
	}
	return time.Now()
}

const numMethods = 11

func methodIndex(m spec.Method) int {
	for i, k := range spec.Methods {
		if k == m {
			return i
		}
	}
	return -1
}
