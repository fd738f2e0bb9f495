package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
)

// ConnectorParams configure the connector the harness starts for one scenario.
type ConnectorParams struct {
	BrokerURL string
	TopicPath string
	Username  string
	Password  string
	TLSConfig *tls.Config   // for ssl:// and wss:// URLs
	Queues    []string      // call-queue endpoint IDs (feature queues)
	Schemes   []SchemeRoute // scheme routes (feature schemes); topics relative to TopicPath
	Events    bool
	CallCtl   bool
	// Secure: the connector serves the secured listener (connector.Config.Secure), and
	// CallControllers may place third-party calls there.
	Secure          bool
	CallControllers []string
	// Profile the target is held to (the reference connector's replacement grace depends on it).
	Profile Profile
	// Topology: how many reference connector replicas, route-only or in the path.
	Topology Topology
	// Broker is the embedded broker of mode embedded (nil otherwise): while BrokerURL is its
	// TCP listener (not a fault's proxy or replacement broker), a single reference connector
	// reaches it in-process, as serve's does (connector.InProcess).
	Broker *broker.Broker
	Logger *slog.Logger
}

// ConnectorFunc starts a connector for one scenario and returns the function that stops it.
// The reference connector is the default; faulty test doubles plug in here.
type ConnectorFunc func(ctx context.Context, p ConnectorParams) (stop func(), err error)

// Target is a target ready to be tested: the declaration plus what the harness started for it.
type Target struct {
	Decl Declaration
	// TCP and WS are the broker URLs scenarios connect to (WS empty when there is none).
	TCP string
	WS  string
	// SecureTCP/SecureWS/SecurePath describe the secured listener (feature secure).
	SecureTCP  string
	SecureWS   string
	SecurePath string
	// embedded and secureEmbedded are the in-process brokers of mode embedded (nil otherwise).
	embedded, secureEmbedded *broker.Broker
	// Identities are the endpoint credentials for secured scenarios.
	Identities []Identity
	// ConnectorIdentity is what the harness's connector uses on the secured listener.
	ConnectorIdentity *Identity
	// CallControllers are the identities allowed to place third-party calls on the
	// secured listener (not among the first three Identities, which scenarios use as
	// ordinary endpoints).
	CallControllers []string
	// TLSConfig is what every harness client (and the harness's connector) uses for ssl://
	// and wss:// URLs; nil means the system roots.
	TLSConfig *tls.Config
	// StartConnector starts a connector per scenario (modes embedded and broker); nil in mode
	// connector, where the target's own connector serves Decl.TopicPath.
	StartConnector ConnectorFunc
	// Logger receives the harness's diagnostics (nil: discard).
	Logger *slog.Logger

	mu     sync.Mutex
	closes []func()
	bg     sync.WaitGroup
}

// background runs f (a connector's stop) without holding up the scenario; Close waits for it.
func (t *Target) background(f func()) {
	t.bg.Add(1)
	go func() { defer t.bg.Done(); f() }()
}

// OnClose registers f to run (in reverse order) when the target is closed.
func (t *Target) OnClose(f func()) {
	t.mu.Lock()
	t.closes = append(t.closes, f)
	t.mu.Unlock()
}

// Close stops whatever the harness started for the target.
func (t *Target) Close() {
	t.bg.Wait()
	t.mu.Lock()
	cs := t.closes
	t.closes = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Open prepares a target from its declaration: in mode embedded it starts the reference
// broker(s) on random loopback ports; in modes embedded and broker scenarios get the
// reference connector.
func Open(ctx context.Context, d Declaration, log *slog.Logger) (*Target, error) {
	d.Normalize()
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("target %q: %w", d.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Target{Decl: d, Logger: log}
	switch d.Mode {
	case ModeEmbedded:
		if err := openEmbedded(ctx, t); err != nil {
			t.Close()
			return nil, err
		}
		t.StartConnector = ReferenceConnector
	case ModeBroker:
		t.TCP, t.WS = d.Broker.TCP, d.Broker.WS
		t.StartConnector = ReferenceConnector
		if err := t.fillSecure(); err != nil {
			t.Close()
			return nil, err
		}
	case ModeConnector:
		t.TCP, t.WS = d.Broker.TCP, d.Broker.WS
		if err := t.fillSecure(); err != nil {
			t.Close()
			return nil, err
		}
	}
	if t.TCP == "" && t.WS == "" {
		t.Close()
		return nil, errors.New("target has no broker URL")
	}
	return t, nil
}

// fillSecure copies the secured listener from the declaration (modes broker and connector).
func (t *Target) fillSecure() error {
	s := t.Decl.Secure
	if s == nil {
		return nil
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return fmt.Errorf("secure.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("secure.caFile %s: no PEM certificate", s.CAFile)
		}
		t.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.SecureTCP, t.SecureWS = s.TCP, s.WS
	if t.SecureTCP == "" && t.SecureWS == "" {
		t.SecureTCP, t.SecureWS = t.TCP, t.WS
	}
	t.SecurePath = s.TopicPath
	if t.SecurePath == "" {
		t.SecurePath = t.Decl.TopicPath
	}
	for _, id := range s.Identities {
		if id.Username == "" {
			id.Username = id.ID
		}
		t.Identities = append(t.Identities, id)
	}
	t.CallControllers = s.CallControllers
	if s.Connector != nil {
		c := *s.Connector
		if c.Username == "" {
			c.Username = c.ID
		}
		t.ConnectorIdentity = &c
	}
	return nil
}

// URL returns the broker URL for a transport ("tcp" or "ws"), secured or not.
func (t *Target) URL(ws, secure bool) string {
	switch {
	case secure && ws:
		return t.SecureWS
	case secure:
		return t.SecureTCP
	case ws:
		return t.WS
	}
	if t.TCP != "" {
		return t.TCP
	}
	return t.WS
}

// HarnessRunsConnector reports whether scenarios get their own connector (and topic path).
func (t *Target) HarnessRunsConnector() bool { return t.StartConnector != nil }
