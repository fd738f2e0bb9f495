package watch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// The official clients' traffic (fixtures/clients/official.jsonl) gets no finding in the
// client profile, seen as a subscription sees it (no client IDs, joined mid-way).
func TestOfficialClientCorpusHasNoFindings(t *testing.T) {
	msgs, err := fixtures.OfficialClientTraffic()
	if err != nil {
		t.Fatal(err)
	}
	c := watch.New(watch.Config{Profile: spec.ProfileClient})
	at := time.Unix(1_700_000_000, 0)
	n := 0
	for _, m := range msgs {
		if m.Subscribe {
			continue
		}
		n++
		at = at.Add(10 * time.Millisecond)
		for _, f := range c.Observe(watch.Observation{Topic: m.Topic, Payload: m.Bytes(), Retained: m.Retained, Time: at}) {
			t.Errorf("line %d (%s, %s): %s", m.Line, m.Client, m.Step, f)
		}
	}
	if n < 50 || c.Observed() != n {
		t.Fatalf("expected the corpus's publishes judged (>= 50), actual %d of %d", c.Observed(), n)
	}
}

// A planted bug in a client message is found and blamed on that client.
func TestClientBugBlamedOnClient(t *testing.T) {
	c := watch.New(watch.Config{Profile: spec.ProfileClient})
	// STOP_SESSION without sigSessID (SESS-011) from endpoint "alice".
	fs := c.Observe(watch.Observation{Topic: "/rtcomm/connector/alice",
		Payload: []byte(`{"rtcommVer":"v1.0.0","method":"STOP_SESSION","fromTopic":"/rtcomm/alice","reason":"done"}`)})
	if !hasFinding(fs, "SESS-011", "alice") {
		t.Fatalf("expected SESS-011 blamed on alice, actual %v", fs)
	}
	// --participant bob judges only bob.
	c = watch.New(watch.Config{Profile: spec.ProfileClient, Participant: "bob"})
	if fs := c.Observe(watch.Observation{Topic: "/rtcomm/connector/alice",
		Payload: []byte(`{"rtcommVer":"v1.0.0","method":"STOP_SESSION","fromTopic":"/rtcomm/alice","reason":"done"}`)}); len(fs) != 0 {
		t.Fatalf("expected alice not judged under --participant bob, actual %v", fs)
	}
}

// SQ-002: an unanswered SERVICE_QUERY is found once its timeout has passed.
func TestUnansweredServiceQuery(t *testing.T) {
	c := watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, AnswerTimeout: time.Second})
	t0 := time.Unix(1_700_000_000, 0)
	c.Observe(watch.Observation{Topic: "/rtcomm/management/alice", Time: t0,
		Payload: []byte(`{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","transID":"q1","fromTopic":"/rtcomm/alice"}`)})
	if fs := c.Finish(t0.Add(500 * time.Millisecond)); len(fs) != 0 {
		t.Fatalf("expected no finding before the timeout, actual %v", fs)
	}
	if fs := c.Finish(t0.Add(2 * time.Second)); !hasFinding(fs, "SQ-002", watch.ConnectorParticipant) {
		t.Fatalf("expected SQ-002 blamed on the connector, actual %v", fs)
	}
}

func hasFinding(fs []watch.Finding, req, who string) bool {
	for _, f := range fs {
		if f.Requirement == req && strings.HasPrefix(f.Participant, who) {
			return true
		}
	}
	return false
}

// stack is a broker with the checker hook and a reference connector, optionally faulty.
func stack(t *testing.T, fault string) (*watch.Checker, string, string) {
	t.Helper()
	var c *watch.Checker
	url, path := stackWith(t, fault, func(path string) []mqtt.Hook {
		c = watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, TopicPath: path})
		// The broker judge (with its publish ledger) rides along as in serve --check: the
		// reference broker's handling of the calls gives no finding either.
		return []mqtt.Hook{&watch.Hook{Checker: c, Broker: ledgerJudge(path)}}
	})
	return c, url, path
}

// stackWith is stack with the broker's hooks made for the topic path by hooks; it returns
// the broker's URL and the path.
func stackWith(t *testing.T, fault string, hooks func(path string) []mqtt.Hook) (string, string) {
	t.Helper()
	path := "/w-" + uuid.NewString()[:8] + "/"
	b, err := broker.Start(context.Background(), broker.Config{Hooks: hooks(path)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tg := &scenarios.Target{Decl: scenarios.Declaration{Name: "watch", Mode: scenarios.ModeEmbedded, Profile: scenarios.ProfileClient, TopicPath: path},
		TCP: b.TCPURL(), StartConnector: scenarios.ReferenceConnector}
	t.Cleanup(tg.Close)
	if fault != "" {
		f, err := faulty.ByName(fault)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Apply(tg); err != nil {
			t.Fatal(err)
		}
	}
	stop, err := tg.StartConnector(context.Background(), scenarios.ConnectorParams{BrokerURL: tg.TCP, TopicPath: path, Profile: scenarios.ProfileClient})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return tg.TCP, path
}

// call runs a whole call between two reference endpoints: registration, SERVICE_QUERY,
// offer, PRANSWER, candidates both ways, answer, chat, stop. With a faulty connector steps
// may fail: strict says whether a failed step fails the test.
func call(t *testing.T, url, path string, strict bool) {
	t.Helper()
	step := func(what string, err error) bool {
		if err != nil {
			if strict {
				t.Fatalf("%s: %v", what, err)
			}
			t.Logf("%s: %v (the fault at work)", what, err)
			return false
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	dial := func(id string) *endpoint.Endpoint {
		e, err := endpoint.Dial(ctx, endpoint.Config{BrokerURL: url, TopicPath: path, ID: id})
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		t.Cleanup(func() { e.Close() })
		step("register "+id, e.Register(ctx))
		sq, sqCancel := context.WithTimeout(ctx, time.Second)
		_, err = e.ServiceQuery(sq)
		sqCancel()
		step("service query "+id, err)
		return e
	}
	alice, bob := dial("alice"), dial("bob")
	time.Sleep(100 * time.Millisecond) // the connector takes the registrations
	offer := spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.SDPOffer, SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"})
	s, err := alice.Call(ctx, "bob", offer)
	if !step("call", err) {
		return
	}
	var inv *endpoint.Invite
	select {
	case inv = <-bob.Incoming():
	case <-ctx.Done():
		step("invite", ctx.Err())
		return
	}
	hold := 20
	step("pranswer", inv.Pranswer(ctx, endpoint.PranswerOptions{HoldTimeout: &hold}))
	idx := 0
	cand := func(i int) spec.ICECandidate {
		return spec.ICECandidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.%d 5%04d typ host generation 0 ufrag Kx9Q network-id 1", i, i+1, i), SDPMid: "0", SDPMLineIndex: &idx}
	}
	step("candidate", s.SendCandidate(ctx, cand(1)))
	answer := spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.SDPAnswer, SDP: "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"})
	callee, err := inv.Accept(ctx, answer)
	if !step("accept", err) {
		return
	}
	aw, awCancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = s.Await(aw)
	awCancel()
	step("await answer", err)
	step("candidate back", callee.SendCandidate(ctx, cand(2)))
	chat, _ := spec.NewPayload(map[string]any{spec.ProtoChat: spec.ChatPayload{Message: "hello", From: "bob"}})
	step("chat", callee.Send(ctx, chat))
	time.Sleep(200 * time.Millisecond) // let the relays land before the stop
	step("stop", s.Stop(ctx, "done"))
	select {
	case <-callee.Done():
	case <-time.After(2 * time.Second):
		step("callee done", fmt.Errorf("the callee's session did not end"))
	}
	time.Sleep(100 * time.Millisecond)
}

// The reference's own traffic, seen from inside the broker, gets no finding, and the
// cross-message rules did run on it.
func TestReferenceCallHasNoFindings(t *testing.T) {
	t.Parallel()
	c, url, path := stack(t, "")
	// The same traffic seen from a subscription (no client IDs, blame from topics).
	sub := watch.New(watch.Config{Profile: spec.ProfileClient, TopicPath: path})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Subscribe(ctx, path+"#", 0, func(m mqttc.Message) {
		sub.Observe(watch.Observation{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained})
	}); err != nil {
		t.Fatal(err)
	}
	call(t, url, path, true)
	for _, f := range sub.Findings() {
		t.Errorf("finding on the reference's traffic seen by a subscription: %s", f)
	}
	if sub.Observed() < 20 || len(sub.Passes()[watch.ConnectorParticipant]) == 0 {
		t.Errorf("expected the subscription to judge the call (>= 20 publishes, relay checks held), actual %d publishes, passes %v", sub.Observed(), sub.Passes())
	}
	for _, f := range c.Findings() {
		t.Errorf("finding on the reference's traffic: %s (evidence %q %q retained=%v)", f, f.Evidence[0].Topic, f.Evidence[0].Payload, f.Evidence[0].Retained)
	}
	held := map[string]int{}
	for _, m := range c.Passes() {
		for r, n := range m {
			held[r] += n
		}
	}
	for _, req := range []string{"SQ-002", "SQ-003", "SESS-002", "SESS-004", "SESS-005", "SESS-007", "ICE-004", "MSG-002", "MSG-003"} {
		if held[req] == 0 {
			t.Errorf("expected the %s check to have run on the call, it never did (passes %v)", req, held)
		}
	}
	v := c.Verdicts(verdict.Target{Name: "reference", Mode: "check", Profile: spec.ProfileClient}, time.Now().Add(-time.Minute), time.Now(), false)
	if r, _ := v.Get("SESS-002"); r.Verdict != verdict.Pass {
		t.Errorf("expected SESS-002 pass in the verdicts, actual %s (%s)", r.Verdict, r.Reason)
	}
	if r, _ := v.Get("SESS-001"); r.Verdict == verdict.Pass {
		t.Errorf("expected SESS-001 (single-message rule: silence is no pass) not to pass, actual %s", r.Verdict)
	}
	if v.Certified {
		t.Error("a passive check must never claim certified")
	}
}

// Faults of the catalogue (scenarios/faulty), planted in the reference connector, produce a
// finding against the requirement each breaks, blamed on the connector.
func TestCatalogueFaultsAreFound(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"service-query-wrong-transid", // SQ-003
		"answers-service-query-twice", // SQ-002
		"new-transid-on-forward",      // SESS-002
		"alters-answer-sdp",           // SESS-004
		"drops-hold-timeout",          // SESS-005
		"adds-transid",                // SESS-007
		"alters-candidates",           // ICE-004
		"alters-message-payloads",     // MSG-002
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := faulty.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			c, url, path := stack(t, name)
			call(t, url, path, false)
			fs := c.Findings()
			if !hasFinding(fs, f.Breaks[0], watch.ConnectorParticipant) {
				t.Fatalf("expected a finding against %s blamed on the connector, actual %v", f.Breaks[0], fs)
			}
			for _, x := range fs {
				if !strings.HasPrefix(x.Participant, watch.ConnectorParticipant) {
					t.Errorf("finding blamed on an endpoint, which did nothing wrong: %s", x)
				}
			}
		})
	}
}
