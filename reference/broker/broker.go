package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Off, as TCPAddr or WSAddr, disables that listener.
const Off = "off"

// DefaultMaxPayload is the PUBLISH payload limit when Config.MaxPayload is zero.
const DefaultMaxPayload = 1 << 20

// MinMaxPayload is the smallest allowed Config.MaxPayload: rtcomm needs 64 KB SDPs.
const MinMaxPayload = 64 << 10

// DefaultMaxPendingWrites is Config.MaxPendingWrites when zero. Upstream mochi allocates the
// whole queue at connect (its default 8192: 64 KB of pointer slots per client, scanned by
// every GC cycle); our patched copy (mochipatch/outbound.go) starts each client's queue at 8
// slots and grows it only while a backlog lasts, so the limit costs memory only to clients
// that fall behind. 1024 overflowed on one subscriber's burst of 1,800 messages (the BRK-006
// scenario: 3 publishers x 600) on a loaded machine; 4096 keeps that burst with room to spare.
const DefaultMaxPendingWrites = 4096

// DefaultSessionExpiry is Config.SessionExpiry when zero.
const DefaultSessionExpiry = time.Hour

// WSPath is the only path the WebSocket listener serves: rtcomm.js cannot change it.
const WSPath = "/mqtt"

// Config configures the embedded broker. The zero value is an open broker on
// loopback with random TCP and WebSocket ports.
type Config struct {
	TCPAddr string // default "127.0.0.1:0"; "off" disables
	WSAddr  string // WebSocket listener, default "127.0.0.1:0"; "off" disables

	// TLSCertFile and TLSKeyFile (PEM), when set, make the TCP listener TLS (ssl://)
	// and the WebSocket listener wss://.
	TLSCertFile, TLSKeyFile string

	// MaxPayload is the largest PUBLISH payload accepted, in bytes: default 1 MiB,
	// at least 64 KiB. A client that publishes more is disconnected (see NOTES.md).
	MaxPayload int

	// MaxPendingWrites is the per-client queue of deliveries waiting to be written to
	// its socket (default DefaultMaxPendingWrites). When a subscriber's queue is full,
	// mochi drops the delivery and counts it in Stats.MessagesDropped. The queue grows
	// on demand (patched mochi), so a larger limit costs memory only while a client has
	// a backlog (8 bytes per slot plus the queued packets).
	MaxPendingWrites int

	// TopicPath is the rtcomm topic root the secure-mode ACLs are written for,
	// default spec.DefaultTopicPath; a missing trailing "/" is added.
	TopicPath string

	// Secure requires every client to authenticate (username = endpoint ID, password
	// from Credentials) and enforces the identity rule with per-client ACLs.
	Secure bool
	// Credentials maps user (= endpoint ID) to password or token, for Secure.
	Credentials map[string]string
	// ConnectorUser is the identity allowed to publish and subscribe anywhere (the
	// connector); it must be in Credentials. Empty: no such user.
	ConnectorUser string
	// ClientIDs binds client IDs to users in secure mode; default ClientIDsBound.
	ClientIDs ClientIDRule

	// MaxTopicLength (bytes) and MaxTopicLevels bound every topic name and filter in
	// PUBLISH, SUBSCRIBE, UNSUBSCRIBE and wills, in both modes; defaults
	// DefaultMaxTopicLength and DefaultMaxTopicLevels. A client over them is disconnected
	// (a will topic over them: CONNACK refused) before any topic-tree work.
	MaxTopicLength, MaxTopicLevels int
	// SessionExpiry is the longest a disconnected persistent session (clean session off,
	// or an MQTT 5 session expiry) is kept; default DefaultSessionExpiry, at least 1 s.
	SessionExpiry time.Duration
	// MaxSubscriptions is the number of filters one client may hold (default
	// DefaultMaxSubscriptions); a SUBSCRIBE beyond it disconnects the client.
	MaxSubscriptions int
	// RetainedQuota is the retained payload bytes one client (secure mode: one user)
	// may hold, RetainedTotal those of the whole broker; defaults DefaultRetainedQuota
	// and DefaultRetainedTotal. In secure mode retained messages are kept only on
	// presence topics (<path>sphere/<id>, <path>sphere/<group>/<id>). Elsewhere, or over
	// a quota, the message is delivered without being retained.
	RetainedQuota, RetainedTotal int

	Logger *slog.Logger // nil discards

	// Hooks are added after the broker's own: test doubles (scenarios/faulty builds
	// deliberately broken brokers with them). Production code leaves it empty.
	Hooks []mqtt.Hook
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	tls    bool
	tcp    *tcpListener
	ws     *wsListener
	log    *slog.Logger
	closed sync.Once
	err    error

	closing atomic.Bool // Close has begun: in-process clients do not reconnect (local.go)
	localMu sync.Mutex
	locals  map[*LocalClient]bool
}

// Stats is a snapshot of broker counters.
type Stats struct {
	ClientsConnected int64 // clients with an established session right now
	Retained         int   // retained messages held ($SYS topics excluded)
	MessagesReceived int64 // PUBLISH packets received from clients
	MessagesSent     int64 // PUBLISH packets written to clients
	MessagesDropped  int64 // deliveries dropped because a subscriber's queue was full
}

// Start starts the broker and returns once its listeners accept connections. The
// context bounds only the start-up (loading the TLS key pair, binding ports).
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	cfg, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tlsConf *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker: load TLS key pair %s, %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// Retained presence DOCUMENTs must live as long as their registration; mochi's
	// default (24 h) force-expires every retained message after a day.
	caps.MaximumMessageExpiryInterval = math.MaxInt32
	// rtcomm clients use clean sessions; a persistent one (clean session off) left behind
	// would otherwise hold its subscriptions and queue for 136 years (mochi's default), and
	// any client can leave any number of them.
	caps.MaximumSessionExpiryInterval = uint32(cfg.SessionExpiry / time.Second)
	// MQTT 5 topic aliases: rtcomm clients (MQTT 3.1) use none; mochi's default of 65,535
	// aliases per client lets one connection pin 64 MiB of topic names.
	caps.TopicAliasMaximum = 16
	// Coarse guard: packets far larger than any allowed PUBLISH are refused before
	// they are read into memory; the exact payload limit is enforced by compatHook.
	caps.MaximumPacketSize = uint32(cfg.MaxPayload + 2*65536)
	caps.MaximumClientWritesPending = int32(cfg.MaxPendingWrites)
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log,
		// $SYS topics are not used by rtcomm; every tick costs a ReadMemStats pause.
		SysTopicResendInterval: 10,
	})

	// Stands in for an empty will payload; 16 random bytes so no client can send it.
	const sentinelPrefix = "\x00rtcomm-empty-will:"
	sentinel := make([]byte, len(sentinelPrefix)+16)
	copy(sentinel, sentinelPrefix)
	if _, err := rand.Read(sentinel[len(sentinelPrefix):]); err != nil {
		return nil, fmt.Errorf("broker: will sentinel: %w", err)
	}
	// Order matters: mochi calls hooks in the order they were added.
	if err := srv.AddHook(&compatHook{srv: srv, sentinel: sentinel, maxPayload: cfg.MaxPayload}, nil); err != nil {
		return nil, fmt.Errorf("broker: compat hook: %w", err)
	}
	if err := srv.AddHook(&limitsHook{srv: srv, maxLen: cfg.MaxTopicLength, maxLevels: cfg.MaxTopicLevels, maxSubs: cfg.MaxSubscriptions}, nil); err != nil {
		return nil, fmt.Errorf("broker: limits hook: %w", err)
	}
	retainPath := "" // open mode: retained anywhere, within the quotas
	if cfg.Secure {
		h := &identityHook{srv: srv, rule: identityRule{path: cfg.TopicPath},
			creds: cfg.Credentials, super: cfg.ConnectorUser, clientID: cfg.ClientIDs}
		if err := srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: identity hook: %w", err)
		}
		retainPath = cfg.TopicPath
	} else if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: allow hook: %w", err)
	}
	policy := newRetainedPolicy(retainPath, cfg.RetainedQuota, cfg.RetainedTotal, cfg.ConnectorUser)
	if err := srv.AddHook(&retainHook{policy: policy}, nil); err != nil {
		return nil, fmt.Errorf("broker: retained hook: %w", err)
	}
	for _, h := range cfg.Hooks {
		if err := srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: hook %s: %w", h.ID(), err)
		}
	}

	b := &Broker{srv: srv, tls: tlsConf != nil, log: log}
	var lc net.ListenConfig
	if cfg.TCPAddr != Off {
		ln, err := lc.Listen(ctx, "tcp", cfg.TCPAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen tcp %s: %w", cfg.TCPAddr, err)
		}
		b.tcp = newTCPListener("tcp", ln, tlsConf)
		b.tcp.disconnect = b.disconnectListener
	}
	if cfg.WSAddr != Off {
		ln, err := lc.Listen(ctx, "tcp", cfg.WSAddr)
		if err != nil {
			b.closeUnserved()
			return nil, fmt.Errorf("broker: listen websocket %s: %w", cfg.WSAddr, err)
		}
		b.ws = newWSListener("ws", ln, tlsConf)
		b.ws.disconnect = b.disconnectListener
	}
	if b.tcp != nil {
		if err := srv.AddListener(b.tcp); err != nil {
			b.closeUnserved()
			return nil, fmt.Errorf("broker: add tcp listener: %w", err)
		}
	}
	if b.ws != nil {
		if err := srv.AddListener(b.ws); err != nil {
			b.closeUnserved()
			return nil, fmt.Errorf("broker: add websocket listener: %w", err)
		}
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("broker: serve: %w", err), b.Close())
	}
	log.Info("broker started", "tcp", b.TCPURL(), "ws", b.WSURL(), "secure", cfg.Secure)
	return b, nil
}

// normalize applies defaults and checks the configuration.
func normalize(cfg Config) (Config, error) {
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	if cfg.WSAddr == "" {
		cfg.WSAddr = "127.0.0.1:0"
	}
	if strings.EqualFold(cfg.TCPAddr, Off) {
		cfg.TCPAddr = Off
	}
	if strings.EqualFold(cfg.WSAddr, Off) {
		cfg.WSAddr = Off
	}
	if cfg.TCPAddr == Off && cfg.WSAddr == Off {
		return cfg, errors.New("broker: config: both TCP and WebSocket listeners are off")
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return cfg, errors.New("broker: config: TLS needs both TLSCertFile and TLSKeyFile")
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPayload < MinMaxPayload {
		return cfg, fmt.Errorf("broker: config: MaxPayload %d is below %d bytes (rtcomm needs 64 KB SDP payloads)", cfg.MaxPayload, MinMaxPayload)
	}
	if cfg.MaxPayload > math.MaxInt32/2 {
		return cfg, fmt.Errorf("broker: config: MaxPayload %d is too large", cfg.MaxPayload)
	}
	switch {
	case cfg.MaxPendingWrites == 0:
		cfg.MaxPendingWrites = DefaultMaxPendingWrites
	case cfg.MaxPendingWrites < 16 || cfg.MaxPendingWrites > 1<<20:
		return cfg, fmt.Errorf("broker: config: MaxPendingWrites %d: want 16 .. %d", cfg.MaxPendingWrites, 1<<20)
	}
	switch {
	case cfg.MaxTopicLength == 0:
		cfg.MaxTopicLength = DefaultMaxTopicLength
	case cfg.MaxTopicLength < 64 || cfg.MaxTopicLength > 65535:
		return cfg, fmt.Errorf("broker: config: MaxTopicLength %d: want 64 .. 65535 bytes", cfg.MaxTopicLength)
	}
	switch {
	case cfg.MaxTopicLevels == 0:
		cfg.MaxTopicLevels = DefaultMaxTopicLevels
	case cfg.MaxTopicLevels < 8 || cfg.MaxTopicLevels > 1024:
		return cfg, fmt.Errorf("broker: config: MaxTopicLevels %d: want 8 .. 1024 (rtcomm event topics have 7)", cfg.MaxTopicLevels)
	}
	switch {
	case cfg.SessionExpiry == 0:
		cfg.SessionExpiry = DefaultSessionExpiry
	case cfg.SessionExpiry < time.Second || cfg.SessionExpiry > 24*time.Hour:
		return cfg, fmt.Errorf("broker: config: SessionExpiry %s: want 1s .. 24h", cfg.SessionExpiry)
	}
	switch {
	case cfg.MaxSubscriptions == 0:
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	case cfg.MaxSubscriptions < 16:
		return cfg, fmt.Errorf("broker: config: MaxSubscriptions %d: want at least 16 (the connector holds about ten)", cfg.MaxSubscriptions)
	}
	if cfg.RetainedQuota == 0 {
		cfg.RetainedQuota = DefaultRetainedQuota
	}
	if cfg.RetainedTotal == 0 {
		cfg.RetainedTotal = DefaultRetainedTotal
	}
	if cfg.RetainedQuota < 0 || cfg.RetainedTotal < cfg.RetainedQuota {
		return cfg, fmt.Errorf("broker: config: RetainedQuota %d, RetainedTotal %d: want 0 < quota <= total", cfg.RetainedQuota, cfg.RetainedTotal)
	}
	cfg.TopicPath = spec.NewTopics(cfg.TopicPath).Path
	if strings.ContainsAny(cfg.TopicPath, "+#") {
		return cfg, fmt.Errorf("broker: config: TopicPath %q contains an MQTT wildcard", cfg.TopicPath)
	}
	if !cfg.Secure {
		return cfg, nil
	}
	if len(cfg.Credentials) == 0 {
		return cfg, errors.New("broker: config: Secure needs Credentials")
	}
	rule, err := ParseClientIDRule(string(cfg.ClientIDs))
	if err != nil {
		return cfg, fmt.Errorf("broker: config: %w", err)
	}
	cfg.ClientIDs = rule
	for user, pw := range cfg.Credentials {
		if err := checkCredential(user, pw); err != nil {
			return cfg, fmt.Errorf("broker: config: credentials: %w", err)
		}
		if cfg.ConnectorUser != "" && strings.HasPrefix(user, cfg.ConnectorUser+":") {
			// "<connector user>:<suffix>" is the connector's client-ID space (its replicas
			// recognise each other by it); a user named so could pass for a replica. ID-012
			return cfg, fmt.Errorf("broker: config: credentials: user %q starts with the connector user %q and ':'; such names are the connector's client IDs", user, cfg.ConnectorUser)
		}
		if user != cfg.ConnectorUser && reservedLevels[user] {
			// Such a user's "own inbox" would be a shared rtcomm topic (e.g. everything
			// sent to the connector), defeating the identity rule.
			return cfg, fmt.Errorf("broker: config: credentials: user %q is a reserved rtcomm topic level; only ConnectorUser may use it", user)
		}
	}
	if cfg.ConnectorUser != "" {
		if _, ok := cfg.Credentials[cfg.ConnectorUser]; !ok {
			return cfg, fmt.Errorf("broker: config: ConnectorUser %q is not in Credentials", cfg.ConnectorUser)
		}
	}
	return cfg, nil
}

// closeUnserved releases listeners bound before Start failed (Serve never ran).
func (b *Broker) closeUnserved() {
	if b.tcp != nil {
		b.tcp.closeSocket()
	}
	if b.ws != nil {
		b.ws.closeSocket()
	}
}

// TCPAddr is the host:port of the TCP listener ("" when it is off).
func (b *Broker) TCPAddr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// TCPURL is the tcp:// (or, with TLS, ssl://) URL of the TCP listener ("" when off).
func (b *Broker) TCPURL() string {
	if b.tcp == nil {
		return ""
	}
	if b.tls {
		return "ssl://" + b.tcp.Address()
	}
	return "tcp://" + b.tcp.Address()
}

// WSAddr is the host:port of the WebSocket listener ("" when it is off).
func (b *Broker) WSAddr() string {
	if b.ws == nil {
		return ""
	}
	return b.ws.Address()
}

// WSURL is the ws://host:port/mqtt (or wss://) URL of the WebSocket listener ("" when off).
func (b *Broker) WSURL() string {
	if b.ws == nil {
		return ""
	}
	if b.tls {
		return "wss://" + b.ws.Address() + WSPath
	}
	return "ws://" + b.ws.Address() + WSPath
}

// Stats returns current counters.
func (b *Broker) Stats() Stats {
	retained := 0
	for topic := range b.srv.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$") {
			retained++
		}
	}
	info := b.srv.Info
	return Stats{
		ClientsConnected: atomic.LoadInt64(&info.ClientsConnected),
		Retained:         retained,
		MessagesReceived: atomic.LoadInt64(&info.MessagesReceived),
		MessagesSent:     atomic.LoadInt64(&info.MessagesSent),
		MessagesDropped:  atomic.LoadInt64(&info.MessagesDropped),
	}
}

// disconnectListener ends the sessions of one listener's clients at shutdown: MQTT 5
// clients get DISCONNECT 0x8B "server shutting down", 3.1/3.1.1 clients (which have
// no server DISCONNECT) just see the connection close. It replaces mochi's
// closeListenerClients, whose Clients.GetByListener takes the clients' read lock
// twice and deadlocks against a client disconnecting at the same moment.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener != id || cl.Closed() {
			continue
		}
		if cl.Properties.ProtocolVersion == 5 {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		} else {
			cl.Stop(packets.ErrServerShuttingDown)
		}
	}
}

// Close stops the listeners, disconnects every client (sending MQTT 5 clients a
// DISCONNECT "server shutting down"), and returns once the listener and connection
// goroutines have ended. Calling it again is a no-op.
func (b *Broker) Close() error {
	b.closed.Do(func() {
		b.closeLocals() // in-process clients have no listener to close them
		// mochi's Close calls each listener's Close, which stops accepting, disconnects
		// its clients, closes any connection still waiting for CONNECT and waits for
		// every connection goroutine, before mochi waits for its clients.
		b.err = b.srv.Close()
		b.log.Info("broker stopped")
	})
	return b.err
}
