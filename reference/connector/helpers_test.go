package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// waitTime bounds every wait for an expected message; quiet is how long a test
// listens to assert that nothing (more) arrives.
const (
	waitTime = 5 * time.Second
	quiet    = 300 * time.Millisecond
)

// env is one test's broker and topic path.
type env struct {
	t      testing.TB
	ctx    context.Context
	url    string
	topics spec.Topics
	b      *broker.Broker // the embedded broker (nil: an external one at url)
}

// socketLink makes the connectors of embedded-broker tests connect over TCP as with an
// external broker (RTCOMM_CONNECTOR_LINK=socket); by default they use the in-process link,
// as serve does. The suite is run both ways (docs/PERFORMANCE.md, "In-process connector link").
var socketLink = os.Getenv("RTCOMM_CONNECTOR_LINK") == "socket"

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := broker.Start(ctx, broker.Config{})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return &env{t: t, ctx: ctx, url: b.TCPURL(), topics: spec.NewTopics("/t-" + uuid.NewString()[:8] + "/"), b: b}
}

// connector starts a connector on the env's path; mod adjusts the default config.
func (e *env) connector(mod func(*Config)) *Connector {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.BrokerURL, cfg.TopicPath = e.url, e.topics.Path
	if e.b != nil && !socketLink {
		cfg.Dial = InProcess(e.b)
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		e.t.Fatalf("connector.New: %v", err)
	}
	if err := c.Start(e.ctx); err != nil {
		e.t.Fatalf("connector start: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// got is one message an endpoint received.
type got struct {
	topic string
	raw   []byte
	m     *spec.Message
}

// ep is a raw MQTT endpoint: it sees exactly what the broker delivers.
type ep struct {
	e       *env
	id      string
	address string
	c       *mqttc.Client
	inbox   chan got
}

// endpoint connects id and subscribes its inbox <path><id>/#.
func (e *env) endpoint(id string) *ep {
	e.t.Helper()
	p := e.client(id)
	p.address = e.topics.Inbox(id)
	p.subscribe(p.address + "/#")
	return p
}

// client connects without subscribing anything.
func (e *env) client(id string) *ep {
	e.t.Helper()
	c, err := mqttc.Dial(e.ctx, mqttc.Options{BrokerURL: e.url, ClientID: mqttc.RandomClientID("ep-")})
	if err != nil {
		e.t.Fatalf("dial %s: %v", id, err)
	}
	e.t.Cleanup(c.Close)
	return &ep{e: e, id: id, c: c, inbox: make(chan got, 1024)}
}

func (p *ep) subscribe(filter string) {
	p.e.t.Helper()
	err := p.c.Subscribe(p.e.ctx, filter, 1, func(m mqttc.Message) {
		g := got{topic: m.Topic, raw: append([]byte(nil), m.Payload...)}
		g.m, _ = spec.Decode(g.raw)
		select {
		case p.inbox <- g:
		default:
		}
	})
	if err != nil {
		p.e.t.Fatalf("%s subscribe %s: %v", p.id, filter, err)
	}
}

// doc is a DOCUMENT as rtcomm.js sends it (fromTopic null); addrField is
// "addressTopic" (rtcomm.js) or "topic" (written spec).
func doc(addrField, address, appContext string) []byte {
	b, _ := json.Marshal(map[string]any{
		"method": "DOCUMENT", "rtcommVer": spec.Version, "type": "ENDPOINT", addrField: address,
		"appContext": appContext, "state": "available", "alias": "x", "userDefines": []string{},
		"fromTopic": nil,
	})
	return b
}

// register publishes p's DOCUMENT retained at <path>sphere/<id>.
func (p *ep) register(appContext string) { p.registerAt(p.address, "addressTopic", appContext) }

func (p *ep) registerAt(address, field, appContext string) {
	p.e.t.Helper()
	if err := p.c.Publish(p.e.ctx, p.e.topics.Sphere(p.id), 1, true, doc(field, address, appContext)); err != nil {
		p.e.t.Fatalf("register %s: %v", p.id, err)
	}
}

// unregister publishes the empty retained message (what the will or a clean disconnect does).
func (p *ep) unregister() {
	p.e.t.Helper()
	if err := p.c.Publish(p.e.ctx, p.e.topics.Sphere(p.id), 1, true, nil); err != nil {
		p.e.t.Fatalf("unregister %s: %v", p.id, err)
	}
}

func (p *ep) pub(topic string, payload []byte) {
	p.e.t.Helper()
	if err := p.c.Publish(p.e.ctx, topic, 1, false, payload); err != nil {
		p.e.t.Fatalf("%s publish %s: %v", p.id, topic, err)
	}
}

func (p *ep) pubJSON(topic string, v any) {
	p.e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		p.e.t.Fatal(err)
	}
	p.pub(topic, b)
}

// expect waits for the next message; desc names what was expected.
func (p *ep) expect(desc string) got {
	p.e.t.Helper()
	select {
	case g := <-p.inbox:
		return g
	case <-time.After(waitTime):
		p.e.t.Fatalf("%s: expected %s within %v, received nothing", p.id, desc, waitTime)
	}
	return got{}
}

// expectMethod waits for the next message and checks its method and topic.
func (p *ep) expectMethod(method spec.Method, topic string) got {
	p.e.t.Helper()
	g := p.expect(string(method) + " at " + topic)
	if g.m == nil || g.m.Method != method || g.topic != topic {
		p.e.t.Fatalf("%s: expected %s at %s, actual %s at %s: %s", p.id, method, topic, methodOf(g), g.topic, g.raw)
	}
	return g
}

// expectNone asserts that nothing arrives for a short while.
func (p *ep) expectNone(why string) {
	p.e.t.Helper()
	select {
	case g := <-p.inbox:
		p.e.t.Fatalf("%s: expected no message (%s), actual %s at %s: %s", p.id, why, methodOf(g), g.topic, g.raw)
	case <-time.After(quiet):
	}
}

func methodOf(g got) string {
	if g.m == nil {
		return "non-JSON"
	}
	return string(g.m.Method)
}

// waitFor polls cond (state the connector reaches asynchronously) until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("expected %s within %v; it did not happen", what, waitTime)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitRegistrations(t testing.TB, c *Connector, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d registrations", n), func() bool { return c.Stats().Registrations == n })
}

// startMsg is a START_SESSION as rtcomm.js sends it.
func startMsg(p *ep, to, sigSessID, transID string) map[string]any {
	return map[string]any{
		"method": "START_SESSION", "rtcommVer": spec.Version, "fromTopic": p.address,
		"toEndpointID": to, "sigSessID": sigSessID, "transID": transID, "appContext": "rtcomm",
		"protocols": []string{"webrtc"},
		"payload":   map[string]any{"webrtc": map[string]any{"type": "offer", "sdp": "v=0\r\n"}},
	}
}

// call runs START_SESSION from caller to callee through c and returns the
// message the callee received plus the sigSessID.
func call(t testing.TB, c *Connector, caller, callee *ep) (got, string) {
	t.Helper()
	sid := uuid.NewString()
	caller.pubJSON(spec.Join(c.Topics().Connector(), caller.id), startMsg(caller, callee.id, sid, uuid.NewString()))
	g := callee.expectMethod(spec.MethodStartSession, spec.Join(callee.address, caller.id))
	if g.m.SigSessID != sid {
		t.Fatalf("START_SESSION sigSessID: expected %s, actual %s", sid, g.m.SigSessID)
	}
	return g, sid
}

// answer makes callee answer RESPONSE SUCCESS to the START_SESSION it got and
// checks the caller receives it.
func answer(t testing.TB, c *Connector, caller, callee *ep, start got) {
	t.Helper()
	callee.pubJSON(spec.Join(start.m.FromTopic, callee.id), map[string]any{
		"method": "RESPONSE", "rtcommVer": spec.Version, "orig": "START_SESSION", "result": "SUCCESS",
		"transID": start.m.TransID, "sigSessID": start.m.SigSessID, "fromTopic": callee.address,
		"protocols": []string{"webrtc"},
		"payload":   map[string]any{"webrtc": map[string]any{"type": "answer", "sdp": "v=0\r\n"}},
	})
	g := caller.expectMethod(spec.MethodResponse, spec.Join(caller.address, callee.id))
	if g.m.Result != spec.ResultSuccess || g.m.SigSessID != start.m.SigSessID {
		t.Fatalf("answer at caller: expected SUCCESS for %s, actual %s for %s", start.m.SigSessID, g.m.Result, g.m.SigSessID)
	}
}

func stopMsg(sid, fromTopic string) map[string]any {
	return map[string]any{"method": "STOP_SESSION", "rtcommVer": spec.Version, "sigSessID": sid,
		"fromTopic": fromTopic, "reason": "bye"}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
