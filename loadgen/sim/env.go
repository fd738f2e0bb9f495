package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// EmbeddedMaxPendingWrites is the embedded broker's per-client write queue limit (deliveries
// waiting for the socket): broker.DefaultMaxPendingWrites, 4096. The patched mochi queue
// (reference/broker/mochipatch/outbound.go) starts at 8 slots and grows only while a backlog
// lasts, so the limit costs nothing for idle clients; upstream allocated all of it at connect.
// A queue that overflows drops deliveries (2048 dropped 13,151 in one 60 s run at 500 calls/s
// when the connector fell seconds behind on an overloaded VM). Drops are counted
// (Env.BrokerDropped) and CallStep reports them in the summary's warnings, so a run that
// overflows says so.
const EmbeddedMaxPendingWrites = broker.DefaultMaxPendingWrites

// Env is a started target. Close stops what StartTarget started.
type Env struct {
	t      Target
	url    string
	broker *broker.Broker
	conn   *connector.Connector
	via    func() // stops the connector's relay (Target.ConnectorVia)
}

// StartTarget starts the target t describes: the embedded reference broker and connector
// (zero Target), the reference connector attached to an external broker, or nothing at all
// (external broker with NoConnector, where a connector must already serve the topic path).
func StartTarget(ctx context.Context, t Target) (*Env, error) {
	if t.TopicPath == "" {
		t.TopicPath = spec.DefaultTopicPath
	}
	if !strings.HasSuffix(t.TopicPath, "/") {
		t.TopicPath += "/"
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.NoConnector && t.BrokerURL == "" {
		return nil, errors.New("target: --no-connector needs an external broker (--broker)")
	}
	e := &Env{t: t, url: t.BrokerURL}
	if t.BrokerURL == "" {
		b, err := broker.Start(ctx, broker.Config{TopicPath: t.TopicPath, WSAddr: "off",
			MaxPendingWrites: EmbeddedMaxPendingWrites, Logger: t.Logger.With("component", "broker"), Hooks: t.BrokerHooks})
		if err != nil {
			return nil, fmt.Errorf("target: embedded broker: %w", err)
		}
		e.broker, e.url = b, b.TCPURL()
	}
	if !t.NoConnector {
		cfg := connector.DefaultConfig()
		cfg.BrokerURL, cfg.TopicPath = e.url, t.TopicPath
		if t.BrokerURL != "" {
			cfg.Username, cfg.Password = t.Username, t.Password
		}
		cfg.Logger = t.Logger.With("component", "connector")
		if e.broker != nil && t.ConnectorVia == nil {
			cfg.Dial = connector.InProcess(e.broker) // no socket between the embedded broker and its connector
		}
		if t.ConnectorVia != nil {
			url, stop, err := t.ConnectorVia(e.url)
			if err != nil {
				e.Close()
				return nil, fmt.Errorf("target: connector relay: %w", err)
			}
			cfg.BrokerURL, e.via = url, stop
		}
		c, err := connector.New(cfg)
		if err == nil {
			err = c.Start(ctx)
		}
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("target: connector on %s: %w", e.url, err)
		}
		e.conn = c
	}
	return e, nil
}

// BrokerURL is the URL the endpoints connect to.
func (e *Env) BrokerURL() string { return e.url }

// ConnectorID is the MQTT client ID of the connector the harness started ("" when it started none).
func (e *Env) ConnectorID() string {
	if e.conn == nil {
		return ""
	}
	return e.conn.ID()
}

// TopicPath is the rtcomm topic root.
func (e *Env) TopicPath() string { return e.t.TopicPath }

// Describe says what is being loaded, for params.json and the console.
func (e *Env) Describe() string {
	d := e.describe()
	if e.via != nil {
		d += ", the connector behind a relay (Target.ConnectorVia)"
	}
	return d
}

func (e *Env) describe() string {
	switch {
	case e.broker != nil:
		return "embedded reference (broker " + e.url + " + reference connector)"
	case e.conn != nil:
		return "broker " + e.url + " + reference connector attached by the harness"
	default:
		return "broker " + e.url + " + external connector"
	}
}

// Embedded reports whether the broker runs in this process.
func (e *Env) Embedded() bool { return e.broker != nil }

// Healthy is nil while the connector the harness attached (if any) is connected.
func (e *Env) Healthy() error {
	if e.conn != nil {
		return e.conn.Healthy()
	}
	return nil
}

// RoutedTotal is the number of messages the harness's connector routed so far (0 and false
// when the connector is external).
func (e *Env) RoutedTotal() (uint64, bool) {
	if e.conn == nil {
		return 0, false
	}
	return e.conn.Stats().RoutedTotal, true
}

// BrokerDropped is the number of deliveries the embedded broker dropped so far because a
// subscriber's write queue was full (0 and false for an external broker).
func (e *Env) BrokerDropped() (int64, bool) {
	if e.broker == nil {
		return 0, false
	}
	return e.broker.Stats().MessagesDropped, true
}

// Close stops the connector and broker StartTarget started.
func (e *Env) Close() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
	}
	if e.via != nil {
		e.via()
	}
	if e.broker != nil {
		errs = append(errs, e.broker.Close())
	}
	return errors.Join(errs...)
}
