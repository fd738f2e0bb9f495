package faulty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Fault is one deliberately broken target: a bug a real broker or connector could have.
type Fault struct {
	Name        string
	Description string
	// Breaks are the requirements the fault breaks: each must fail, by a check of its own
	// that records Expected and Actual, where the unmodified reference passes it.
	Breaks []string
	// Check is a piece of the Expected text of the check that catches the fault: the
	// faulty test requires a violation whose Expected contains it (so the catalogue in
	// docs/FAULTS.md names the check that really fired).
	Check string
	// Profile is the profile the target is judged under ("" = strict).
	Profile scenarios.Profile
	// Labels widen the run beyond the scenarios labelled with Breaks (e.g. an area whose
	// scenarios exercise a framework check such as ROB-003's retained-state check).
	Labels []string
	// apply turns an opened embedded target into the faulty one (nil: only hooks).
	apply func(t *scenarios.Target) error
	// hooks break the broker: the target's open broker is replaced by an embedded one
	// carrying them (broker faults).
	hooks []func() mqtt.Hook
}

// ByName returns one fault.
func ByName(name string) (Fault, error) {
	for _, f := range Faults() {
		if f.Name == name {
			return f, nil
		}
	}
	return Fault{}, fmt.Errorf("no faulty target %q", name)
}

// Apply turns an opened embedded target into the faulty one.
func (f Fault) Apply(t *scenarios.Target) error { return f.ApplyObserved(t) }

// ApplyObserved turns an opened embedded target into the faulty one whose open broker
// carries the observers (e.g. the passive checker's hook) ahead of any broker fault's
// hooks, so they see each publish as its client sent it.
func (f Fault) ApplyObserved(t *scenarios.Target, observers ...mqtt.Hook) error {
	t.Decl.Name = "faulty: " + f.Name
	t.Decl.Description = f.Description
	return Observe(t, observers, f.hooks, f.apply)
}

// Observe replaces the target's open broker by an embedded one carrying the observers
// and then the hooks (when there are any), then applies apply (when not nil). With a zero
// Fault it attaches observers to an unmodified target (a baseline).
func Observe(t *scenarios.Target, observers []mqtt.Hook, hooks []func() mqtt.Hook, apply func(*scenarios.Target) error) error {
	if len(observers) > 0 || len(hooks) > 0 {
		all := make([]func() mqtt.Hook, 0, len(observers)+len(hooks))
		for _, o := range observers {
			all = append(all, func() mqtt.Hook { return o })
		}
		if err := withBrokerHooks(append(all, hooks...)...)(t); err != nil {
			return err
		}
	}
	if apply == nil {
		return nil
	}
	return apply(t)
}

// LabelFilter selects the scenarios that name a broken requirement (Ginkgo label filter).
func (f Fault) LabelFilter() string {
	return strings.Join(append(slices.Clone(f.Breaks), f.Labels...), " || ")
}

// Faults lists every faulty target: the connector's, then the broker's.
func Faults() []Fault {
	return append(connectorFaults(), brokerFaults()...)
}

// --- building blocks -----------------------------------------------------------------

// behindProxy makes the target's connectors publish through a proxy applying the rewrite
// (one proxy per scenario, so every scenario starts clean); in, when not nil, also rewrites
// what the connector receives.
func behindProxy(out func() Rewrite, in func() Rewrite) func(t *scenarios.Target) error {
	return func(t *scenarios.Target) error {
		start := t.StartConnector
		t.StartConnector = func(ctx context.Context, p scenarios.ConnectorParams) (func(), error) {
			rw := func(p Publish) []Publish { return []Publish{p} }
			if out != nil {
				rw = out()
			}
			var opts []ProxyOption
			if in != nil {
				opts = append(opts, Inbound(in()))
			}
			px, err := NewProxy(p.BrokerURL, rw, opts...)
			if err != nil {
				return nil, err
			}
			p.BrokerURL = px.URL()
			stop, err := start(ctx, p)
			if err != nil {
				px.Close()
				return nil, err
			}
			return func() { stop(); px.Close() }, nil
		}
		return nil
	}
}

// outbound rewrites what the connector publishes.
func outbound(rw func() Rewrite) func(t *scenarios.Target) error { return behindProxy(rw, nil) }

// inbound rewrites what the connector receives.
func inbound(rw func() Rewrite) func(t *scenarios.Target) error { return behindProxy(nil, rw) }

// stateless wraps a Rewrite that keeps no state.
func stateless(rw Rewrite) func() Rewrite { return func() Rewrite { return rw } }

// withConfig starts the reference connector with a modified configuration.
func withConfig(mod func(*connector.Config)) func(t *scenarios.Target) error {
	return func(t *scenarios.Target) error {
		t.StartConnector = func(ctx context.Context, p scenarios.ConnectorParams) (func(), error) {
			cfg := scenarios.ReferenceConfig(p)
			mod(&cfg)
			c, err := connector.New(cfg)
			if err != nil {
				return nil, fmt.Errorf("faulty connector: %w", err)
			}
			if err := c.Start(ctx); err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("faulty connector: %w", err)
			}
			return func() { _ = c.Close() }, nil
		}
		return nil
	}
}

// withBrokerHooks replaces the target's open broker by an embedded broker with extra mochi
// hooks that break it (the connector and every scenario connect to the faulty one).
func withBrokerHooks(hooks ...func() mqtt.Hook) func(t *scenarios.Target) error {
	return func(t *scenarios.Target) error {
		cfg := broker.Config{MaxPayload: t.Decl.Limits.MaxPayload, TopicPath: t.Decl.TopicPath}
		for _, h := range hooks {
			cfg.Hooks = append(cfg.Hooks, h())
		}
		tcp, ws, err := startBroker(t, cfg)
		if err != nil {
			return err
		}
		t.TCP = tcp
		if t.WS != "" {
			t.WS = ws
		}
		return nil
	}
}

// startBroker starts an embedded broker that closes with the target and returns its URLs.
func startBroker(t *scenarios.Target, cfg broker.Config) (tcp, ws string, err error) {
	b, err := broker.Start(context.Background(), cfg)
	if err != nil {
		return "", "", fmt.Errorf("faulty broker: %w", err)
	}
	t.OnClose(func() { _ = b.Close() })
	return b.TCPURL(), b.WSURL(), nil
}

// secureObservers are the hooks (the passive checker's) that every secured broker this
// package starts for a target carries ahead of any fault's hooks: *scenarios.Target ->
// []mqtt.Hook (ObserveSecure).
var secureObservers sync.Map

// ObserveSecure replaces the target's secured broker by an unmodified embedded secured
// broker (the reference's, same identities) carrying the observers, which also ride on any
// secured broker a fault applied later starts. Call it before ApplyObserved.
func ObserveSecure(t *scenarios.Target, observers ...mqtt.Hook) error {
	secureObservers.Store(t, observers)
	return withSecureBroker(func(*broker.Config) {})(t)
}

// withSecureBroker replaces the target's secured broker by an embedded secured broker with
// the same identities, mod applied to its configuration (mod adds the breaking hooks).
func withSecureBroker(mod func(*broker.Config)) func(t *scenarios.Target) error {
	return func(t *scenarios.Target) error {
		if t.SecureTCP == "" || t.ConnectorIdentity == nil {
			return errors.New("faulty secure broker: the target has no secured listener")
		}
		if t.TLSConfig != nil {
			return errors.New("faulty secure broker: TLS targets are not supported")
		}
		creds := map[string]string{t.ConnectorIdentity.Username: t.ConnectorIdentity.Password}
		for _, id := range t.Identities {
			creds[id.Username] = id.Password
		}
		cfg := broker.Config{MaxPayload: t.Decl.Limits.MaxPayload, TopicPath: t.Decl.TopicPath, Secure: true,
			Credentials: creds, ConnectorUser: t.ConnectorIdentity.Username}
		if obs, ok := secureObservers.Load(t); ok {
			cfg.Hooks = append(cfg.Hooks, obs.([]mqtt.Hook)...)
		}
		mod(&cfg)
		tcp, ws, err := startBroker(t, cfg)
		if err != nil {
			return err
		}
		t.SecureTCP = tcp
		if t.SecureWS != "" {
			t.SecureWS = ws
		}
		return nil
	}
}

// inFrontOfBroker puts a proxy between every TCP client (harness and connector) and the
// broker: what the clients publish passes through rw, as if the broker did it.
func inFrontOfBroker(rw func() Rewrite) func(t *scenarios.Target) error {
	return func(t *scenarios.Target) error {
		px, err := NewProxy(t.TCP, rw())
		if err != nil {
			return err
		}
		t.OnClose(px.Close)
		t.TCP = px.URL()
		return nil
	}
}

// fields is a decoded JSON object, edited in place by faults.
type fields map[string]json.RawMessage

// decodeFields decodes a payload as a JSON object (nil if it is not one).
func decodeFields(p []byte) fields {
	var f fields
	if json.Unmarshal(p, &f) != nil {
		return nil
	}
	return f
}

// str returns a string field ("" when absent or not a string).
func (f fields) str(name string) string {
	var s string
	_ = json.Unmarshal(f[name], &s)
	return s
}

// set sets a field to v's JSON.
func (f fields) set(name string, v any) {
	b, _ := json.Marshal(v)
	f[name] = b
}

// editMessages rewrites every PUBLISH whose payload is a JSON object matching match.
func editMessages(match func(p Publish, f fields) bool, edit func(p *Publish, f fields)) Rewrite {
	return func(p Publish) []Publish {
		f := decodeFields(p.Payload)
		if f == nil || !match(p, f) {
			return []Publish{p}
		}
		edit(&p, f)
		if b, err := json.Marshal(f); err == nil {
			p.Payload = b
		}
		return []Publish{p}
	}
}

// isMethod matches a message by method (and, for RESPONSE, orig when given).
func isMethod(method spec.Method, orig ...spec.Method) func(Publish, fields) bool {
	return func(_ Publish, f fields) bool {
		if f.str("method") != string(method) {
			return false
		}
		return len(orig) == 0 || f.str("orig") == string(orig[0])
	}
}

// services edits the services object of SERVICE_QUERY answers.
func services(edit func(svcs map[string]fields)) Rewrite {
	return editMessages(isMethod(spec.MethodResponse, spec.MethodServiceQuery), func(_ *Publish, f fields) {
		var svcs map[string]fields
		if json.Unmarshal(f["services"], &svcs) != nil {
			return
		}
		edit(svcs)
		f.set("services", svcs)
	})
}

// isCandidate reports whether a payload is a MESSAGE trickling an ICE candidate.
func isCandidate(p []byte) bool {
	m, _ := spec.Decode(p)
	if m == nil || m.Method != spec.MethodMessage {
		return false
	}
	w, ok, _ := m.WebRTC()
	return ok && w.Type == spec.ICECandType
}

// method decodes the method (and orig) of a payload; "" when it is not an rtcomm message.
func method(p []byte) (spec.Method, spec.Method) {
	m, _ := spec.Decode(p)
	if m == nil {
		return "", ""
	}
	return m.Method, m.Orig
}
