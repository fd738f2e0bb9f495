package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Party is a harness endpoint: the reference endpoint, driven by a scenario, with every
// message it receives recorded in an inbox (for checks) and validated against the catalog
// (messages a party receives come from the target).
type Party struct {
	*endpoint.Endpoint
	Role string
	env  *Env
	in   *Inbox
}

// PartyOptions adjust a Party.
type PartyOptions struct {
	// ID: a fixed endpoint ID (default: a unique one for the role).
	ID string
	// AppContext (default "rtcomm").
	AppContext string
	// NoRegister/NoQuery skip registration / the service query.
	NoRegister, NoQuery bool
	// WebSocket connects over the WebSocket listener.
	WebSocket bool
	// Register adds options to the DOCUMENT.
	Register []endpoint.RegisterOption
	// Configure edits the endpoint configuration last.
	Configure func(*endpoint.Config)
	// NoValidate: do not validate what this party receives (robustness scenarios).
	NoValidate bool
	// Shape endpoint.ShapeRtcommJS makes the party behave like the official web client on
	// the wire (see endpoint.ShapeRtcommJS): its inbox is <path><random client ID> (the ID's
	// own in secure mode), protocols [webrtc, chat], MESSAGEs held back until the first
	// reply. What it sends is judged in the client profile wherever a party receives it
	// (Env.checkFrom).
	Shape endpoint.Shape
	// PresenceGroup registers at <path>sphere/<group>/<id>, as rtcomm.js with presence.topic.
	PresenceGroup string
}

// JS is the PartyOptions of an rtcomm.js-shaped party.
func JS() PartyOptions { return PartyOptions{Shape: endpoint.ShapeRtcommJS} }

// PartyShape is how a scenario's parties behave on the wire. The session, ICE, referral,
// queue and registration scenarios run once per shape (issue 11): a target must work with
// the harness's own endpoints and with what the official web client sends.
type PartyShape struct {
	// Name appears in the spec text: "[native parties]", "[rtcomm.js parties]".
	Name  string
	shape endpoint.Shape
}

// Shapes are the party shapes area scenarios are generated for.
var Shapes = []PartyShape{{"native", endpoint.ShapeNative}, {"rtcomm.js", endpoint.ShapeRtcommJS}}

// In names the shape in a spec's text.
func (s PartyShape) In(text string) string { return text + " [" + s.Name + " parties]" }

// O returns o (none: the defaults) with the shape's wire behaviour.
func (s PartyShape) O(o ...PartyOptions) PartyOptions {
	var r PartyOptions
	if len(o) > 0 {
		r = o[0]
	}
	r.Shape = s.shape
	return r
}

// JS reports whether the shape is rtcomm.js's.
func (s PartyShape) JS() bool { return s.shape == endpoint.ShapeRtcommJS }

// Party connects, registers and queries services for a harness endpoint. The DOCUMENT
// uses the field of the target's profile: `topic` (strict) or `addressTopic` (client).
func (e *Env) Party(role string, o PartyOptions) *Party {
	GinkgoHelper()
	id := o.ID
	if id == "" {
		id = e.ID(role)
	}
	p := &Party{Role: role, env: e, in: newInbox()}
	cfg := endpoint.Config{
		BrokerURL: e.Target.URL(o.WebSocket, e.Secure), TopicPath: e.Path, ID: id, AppContext: o.AppContext,
		TLSConfig:       e.Target.TLSConfig,
		ProtocolVersion: 3, // MQTT 3.1, as rtcomm.js
		SendEarly:       true,
		QueryTimeout:    e.Reply(), PranswerTimeout: e.Reply(),
		Logger: e.Target.Logger.With("endpoint", id),
	}
	if e.Secure {
		if c, ok := e.IdentityOf(id); ok {
			cfg.Username, cfg.Password = c.Username, c.Password
		}
	} else if e.Decl.Broker.Username != "" {
		cfg.Username, cfg.Password = e.Decl.Broker.Username, e.Decl.Broker.Password
	}
	validate := !o.NoValidate
	cfg.PresenceGroup = o.PresenceGroup
	if o.Shape == endpoint.ShapeRtcommJS {
		cfg.Shape, cfg.Protocols, cfg.SendEarly = endpoint.ShapeRtcommJS, []string{spec.ProtoWebRTC, spec.ProtoChat}, false
		cfg.AddressFromClientID = !e.Secure // rtcomm.js's inbox is <path><clientID>; secure mode needs the ID's own
		e.mu.Lock()
		if e.jsIDs == nil {
			e.jsIDs = map[string]bool{}
		}
		e.jsIDs[id] = true
		e.mu.Unlock()
	}
	check := e.checkFrom
	cfg.OnMessage = func(topic string, _ *spec.Message, raw []byte, at time.Time) {
		if !e.tapped() {
			e.trace.Add(DirRecv, role, topic, false, 0, raw)
		}
		if validate {
			check(topic, raw)
		}
		p.in.add(Msg{Topic: topic, Payload: append([]byte(nil), raw...), At: at})
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	ctx, cancel := e.OpContext()
	defer cancel()
	ep, err := endpoint.Dial(ctx, cfg)
	Harness(err, "harness: connect endpoint "+id)
	p.Endpoint = ep
	e.mu.Lock()
	e.parties = append(e.parties, p)
	e.mu.Unlock()
	if !o.NoRegister {
		opts := append([]endpoint.RegisterOption{}, o.Register...)
		if len(o.Register) == 0 && e.Decl.Profile == ProfileStrict && o.Shape != endpoint.ShapeRtcommJS {
			opts = append(opts, endpoint.WithStrictDocument())
		}
		Harness(ep.Register(ctx, opts...), "harness: register "+id)
	}
	if !o.NoQuery {
		// The DOCUMENT and the SERVICE_QUERY go from one client at one QoS, so the
		// connector sees the registration first: the answer means "registered".
		// Set-up, not the check of SQ-002 (the service-query scenarios do that): a failure
		// here fails the requirements this scenario names.
		_, err := ep.ServiceQuery(ctx)
		Harness(err, fmt.Sprintf("set-up: service query of %s (inbox: %s)", id, p.in.Summary()))
		e.Settle()
	}
	return p
}

// checkFrom validates what a party received. A message sent by an rtcomm.js-shaped party
// (the topic's last level names it, relayed or not) is the official client's traffic and
// is judged in the client profile: the strict profile would blame the target for the
// client's own shapes, such as a STOP_SESSION without a reason.
func (e *Env) checkFrom(topic string, raw []byte) {
	e.mu.Lock()
	js := e.jsIDs[spec.Sender(topic)] && e.Decl.Profile != ProfileClient
	if js && e.jsValidate == nil {
		d := *e.Decl
		d.Profile = ProfileClient
		e.jsValidate = messageValidator(&d, e.Topics)
	}
	v := e.jsValidate
	e.mu.Unlock()
	if !js {
		e.check(topic, raw)
		return
	}
	if fs := v(topic, raw); len(fs) > 0 {
		e.mu.Lock()
		e.violations = append(e.violations, fs...)
		e.mu.Unlock()
	}
}

// Inbox is every publish this party received.
func (p *Party) Inbox() *Inbox { return p.in }

// Expect waits for the first unconsumed message that matches: a pass of req when it comes,
// a violation when none comes within the reply timeout.
func (p *Party) Expect(req, expected string, match Match) Msg {
	GinkgoHelper()
	mustName(req)
	m, ok := p.in.Await(p.env.Ctx, p.env.Reply(), match)
	if !ok {
		Violate(req, expected, "nothing within %s at %s; it received %s", p.env.Reply(), p.ID(), p.in.Summary())
	}
	Pass(req)
	return m
}

// Need waits for a message the scenario needs before it can judge what it names (a call's
// PRANSWER, a relayed MESSAGE): when none comes, the target broke req (a precondition:
// Need records no pass, so req need not be among the scenario's labels).
func (p *Party) Need(req, expected string, match Match) Msg {
	GinkgoHelper()
	m, ok := p.in.Await(p.env.Ctx, p.env.Reply(), match)
	if !ok {
		Precondition(req, expected, "nothing within %s at %s; it received %s", p.env.Reply(), p.ID(), p.in.Summary())
	}
	return m
}

// ExpectNone fails req when a matching message arrives within the quiet window.
func (p *Party) ExpectNone(req, expected string, match Match) {
	GinkgoHelper()
	got := p.in.Collect(p.env.Ctx, p.env.Quiet(), 1, match)
	Check(req, len(got) == 0, expected, "%s received %v", p.ID(), got)
}

// Invite waits for an inbound call; when none arrives the target broke req (a precondition:
// Invite records no pass).
func (p *Party) Invite(req string) *endpoint.Invite {
	GinkgoHelper()
	select {
	case inv := <-p.Incoming():
		return inv
	case <-time.After(p.env.Reply()):
		Precondition(req, "START_SESSION delivered to "+p.ID(), "nothing within %s; it received %s", p.env.Reply(), p.in.Summary())
	case <-p.env.Ctx.Done():
		Fail("scenario timed out waiting for a call")
	}
	return nil
}

// ctx bounds one party operation.
func (p *Party) ctx() (context.Context, context.CancelFunc) { return p.env.OpContext() }

// Call is Endpoint.Call bounded by the reply timeout; it fails the scenario on a harness error.
func (p *Party) Call(callee string, payload json.RawMessage, opts ...endpoint.CallOption) *endpoint.Session {
	GinkgoHelper()
	ctx, cancel := p.ctx()
	defer cancel()
	s, err := p.Endpoint.Call(ctx, callee, payload, opts...)
	Harness(err, "harness: call "+callee)
	return s
}

// Await waits for the final answer of an outbound call.
func (p *Party) Await(s *endpoint.Session) (*spec.Message, error) {
	ctx, cancel := context.WithTimeout(p.env.Ctx, p.env.Reply()+time.Second)
	defer cancel()
	return s.Await(ctx)
}

// Connected sets up a call from caller to callee through the target and returns both
// sessions: START_SESSION (offer), RESPONSE SUCCESS (answer).
func (e *Env) Connected(caller, callee *Party, offer, answer json.RawMessage, opts ...endpoint.CallOption) (out, in *endpoint.Session) {
	GinkgoHelper()
	out = caller.Call(callee.ID(), offer, opts...)
	inv := callee.Invite("SESS-002")
	ctx, cancel := e.OpContext()
	defer cancel()
	in, err := inv.Accept(ctx, answer)
	Harness(err, "harness: accept")
	if _, err := caller.Await(out); err != nil {
		Precondition("SESS-004", "RESPONSE SUCCESS reaches the caller", "%v; caller received %s", err, caller.in.Summary())
	}
	return out, in
}

// SendRaw publishes an encoded message with the party's own MQTT client (no endpoint logic).
func (p *Party) SendRaw(topic string, m *spec.Message) error {
	b, err := spec.Encode(m)
	if err != nil {
		return err
	}
	p.env.trace.Add(DirSent, p.Role, topic, false, 0, b)
	ctx, cancel := p.ctx()
	defer cancel()
	return p.Client().Publish(ctx, topic, 0, false, b)
}

// PublishRaw publishes a payload as is (QoS 1) with the party's own MQTT client, e.g. the
// empty retained presence clear rtcomm.js sends when it is replaced.
func (p *Party) PublishRaw(topic string, retained bool, payload []byte) error {
	p.env.trace.Add(DirSent, p.Role, topic, retained, 1, payload)
	ctx, cancel := p.ctx()
	defer cancel()
	return p.Client().Publish(ctx, topic, 1, retained, payload)
}

// Settle gives an external connector time to take in what was just published: the
// reference connector handles messages in arrival order, an unknown one may not.
func (e *Env) Settle() {
	if e.Target.HarnessRunsConnector() {
		return
	}
	time.Sleep(min(e.Quiet()/2, 200*time.Millisecond))
}

// tapped reports whether a wiretap records this scenario's traffic.
func (e *Env) tapped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tap != nil
}

// startTap records every message under the scenario's topic path (shared paths: only
// topics naming the scenario's endpoints) plus extra filters.
func (e *Env) startTap(extra ...string) {
	c, err := e.Connect("tap", ConnOptions{Quiet: true})
	if err != nil {
		return // no wiretap: parties trace what they receive
	}
	private := e.Path != e.Decl.TopicPath
	c.subFn = func(m mqttcMessage) {
		if !private && strings.HasPrefix(m.Topic, e.Path) {
			e.mu.Lock()
			ids := e.ids
			e.mu.Unlock()
			if !mentionsAny(m.Topic, ids) {
				return
			}
		}
		e.trace.Add("wire", "", m.Topic, m.Retained, m.QoS, m.Payload)
		c.in.add(Msg{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, QoS: m.QoS, At: time.Now()})
	}
	for _, f := range append([]string{e.Path + "#"}, extra...) {
		if err := c.Subscribe(f, 0); err != nil {
			c.Close()
			return
		}
	}
	e.mu.Lock()
	e.tap = c
	e.mu.Unlock()
}

// Tap returns the wiretap connection (nil when there is none).
func (e *Env) Tap() *Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tap
}

// ErrNoAnswer is the harness's error for a missing reply.
var ErrNoAnswer = errors.New("no answer")

// PayloadEqual compares two JSON payloads semantically (whitespace and key order aside).
func PayloadEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// MessageString renders a decoded message for "Actual:" lines.
func MessageString(m *spec.Message) string {
	if m == nil {
		return "(not an rtcomm message)"
	}
	b, _ := spec.Encode(m)
	return Brief(b)
}

// Watch adds a topic filter outside the topic path to the wiretap and to the retained-state
// check (e.g. a 3PCC requester's bare fromTopic).
func (e *Env) Watch(filter string) {
	GinkgoHelper()
	e.mu.Lock()
	e.leakScope = append(e.leakScope, filter)
	tap := e.tap
	e.mu.Unlock()
	if tap != nil {
		Harness(tap.Subscribe(filter, 0), "harness: wiretap "+filter)
	}
}
