package endpoint_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// testTimeout bounds every test's context.
const testTimeout = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startBroker starts the broker the tests run on: the embedded one on a random
// loopback port, or mosquitto when RTCOMM_ENDPOINT_BROKER=mosquitto.
func startBroker(t testing.TB) string {
	t.Helper()
	if os.Getenv("RTCOMM_ENDPOINT_BROKER") == "mosquitto" {
		return startMosquitto(t)
	}
	return startEmbedded(t)
}

// startMosquitto starts mosquitto (skips when it is not installed).
func startMosquitto(t testing.TB) string {
	t.Helper()
	return extbroker.MosquittoForTest(t).TCP
}

// newPath is a unique topic path per test.
func newPath() string { return "/t-" + uuid.NewString()[:8] + "/" }

// env is one test's broker and topic path.
type env struct {
	t    testing.TB
	url  string
	path string
	// noWill dials endpoints without their Last Will (only while a broker refuses an
	// empty will payload).
	noWill bool
}

func newEnv(t testing.TB) *env {
	return &env{t: t, url: startBroker(t), path: newPath(), noWill: os.Getenv("RTCOMM_ENDPOINT_NOWILL") == "1"}
}

func (v *env) config(id string) endpoint.Config {
	return endpoint.Config{BrokerURL: v.url, TopicPath: v.path, ID: id, NoWill: v.noWill}
}

// dial connects an endpoint that is closed at cleanup.
func (v *env) dial(cfg endpoint.Config) *endpoint.Endpoint {
	v.t.Helper()
	e, err := endpoint.Dial(testCtx(v.t), cfg)
	if err != nil {
		v.t.Fatalf("dial %s: %v", cfg.ID, err)
	}
	v.t.Cleanup(func() { e.Close() })
	return e
}

// raw connects a plain MQTT client (a fake connector, a monitor) closed at cleanup.
func (v *env) raw(id string) *mqttc.Client {
	v.t.Helper()
	c, err := mqttc.Dial(testCtx(v.t), mqttc.Options{BrokerURL: v.url, ClientID: mqttc.RandomClientID(id)})
	if err != nil {
		v.t.Fatalf("raw client %s: %v", id, err)
	}
	v.t.Cleanup(c.Close)
	return c
}

// sub subscribes c to filter and returns the messages received.
func (v *env) sub(c *mqttc.Client, filter string) <-chan mqttc.Message {
	v.t.Helper()
	ch := make(chan mqttc.Message, 256)
	if err := c.Subscribe(testCtx(v.t), filter, 1, func(m mqttc.Message) { ch <- m }); err != nil {
		v.t.Fatalf("subscribe %s: %v", filter, err)
	}
	return ch
}

// next waits for one message on ch.
func next(t testing.TB, ctx context.Context, ch <-chan mqttc.Message, what string) mqttc.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-ctx.Done():
		t.Fatalf("expected %s, none arrived", what)
		return mqttc.Message{}
	}
}

// decode parses a message a test received, failing on errors.
func decode(t testing.TB, m mqttc.Message) *spec.Message {
	t.Helper()
	d, err := spec.Decode(m.Payload)
	if err != nil {
		t.Fatalf("decode %s: %v (payload %q)", m.Topic, err, m.Payload)
	}
	return d
}

// publish encodes and publishes m from a raw client.
func publish(t testing.TB, c *mqttc.Client, topic string, m *spec.Message) {
	t.Helper()
	b, err := spec.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(testCtx(t), topic, 1, false, b); err != nil {
		t.Fatal(err)
	}
}

func expectEqual[T comparable](t testing.TB, what string, want, got T) {
	t.Helper()
	if want != got {
		t.Errorf("%s: expected %v, actual %v", what, want, got)
	}
}

// nextEvent waits for the session's next in-session message.
func nextEvent(t testing.TB, ctx context.Context, s *endpoint.Session, what string) *spec.Message {
	t.Helper()
	select {
	case m := <-s.Events():
		return m
	case <-ctx.Done():
		t.Fatalf("expected %s on session %s, none arrived", what, s.ID())
		return nil
	}
}

// waitDone waits for the session to end.
func waitDone(t testing.TB, ctx context.Context, s *endpoint.Session, who string) {
	t.Helper()
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatalf("expected %s's session to end, it is still %s", who, s.State())
	}
}

// invite waits for the endpoint's next inbound call.
func invite(t testing.TB, ctx context.Context, e *endpoint.Endpoint) *endpoint.Invite {
	t.Helper()
	select {
	case inv := <-e.Incoming():
		return inv
	case <-ctx.Done():
		t.Fatalf("expected %s to receive START_SESSION, none arrived", e.ID())
		return nil
	}
}

func cand(i int) spec.ICECandidate {
	idx := 0
	return spec.ICECandidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.%d 5%04d typ host", i, i+1, i),
		SDPMid: "0", SDPMLineIndex: &idx}
}

func sdp(kind string) json.RawMessage {
	return spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: kind, SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=" + kind + "\r\nt=0 0\r\n"})
}

// candidateOf returns the candidate string of an icecandidate MESSAGE, or "".
func candidateOf(m *spec.Message) string {
	if m.Method != spec.MethodMessage {
		return ""
	}
	w, ok, _ := m.WebRTC()
	if !ok || w.Type != spec.ICECandType || w.Candidate == nil {
		return ""
	}
	return w.Candidate.Candidate
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("expected %s, it did not happen in time", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
