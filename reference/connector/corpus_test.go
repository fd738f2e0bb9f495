package connector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// checkValid fails the test if a message the connector originated breaks a
// format rule of the catalog (strict profile).
func checkValid(t *testing.T, e *env, g got) {
	t.Helper()
	v := spec.Validator{Topics: e.topics}
	if vs := v.Validate(g.topic, g.raw); len(vs) > 0 {
		t.Errorf("connector message at %s breaks the catalog: %v\n%s", g.topic, vs, g.raw)
	}
}

// TestBadInputCorpus publishes every input of the shared bad-input corpus to
// the connector topic: each with expect failure-response is answered FAILURE
// with its transID, nothing is ever forwarded to the callee, and the
// connector keeps serving.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	// Room for the 2 MiB inputs: a broker limit would disconnect the publisher instead.
	b, err := broker.Start(ctx, broker.Config{MaxPayload: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e := &env{t: t, ctx: ctx, url: b.TCPURL(), topics: spec.NewTopics("/t-" + uuid.NewString()[:8] + "/")}
	c := e.connector(func(cfg *Config) { cfg.MaxPayload = 4 << 20 })
	caller, callee := e.endpoint("caller"), e.endpoint(fixtures.BadCalleeID)
	caller.register("rtcomm")
	callee.register("rtcomm")
	waitRegistrations(t, c, 2)

	inputs := fixtures.BadInputs()
	if len(inputs) < 30 {
		t.Fatalf("bad-input corpus: expected at least 30 inputs, actual %d", len(inputs))
	}
	for i, in := range inputs {
		caller.pub(spec.Join(c.Topics().Connector(), caller.id), in.Retarget(caller.address, callee.id))
		// A SERVICE_QUERY marks the end of whatever the bad input caused: the
		// connector handles one client's messages in order.
		marker := fmt.Sprint("marker-", i)
		caller.pubJSON(spec.Join(c.Topics().Management(), caller.id), map[string]any{
			"method": "SERVICE_QUERY", "rtcommVer": spec.Version, "transID": marker, "fromTopic": caller.address})
		var answers []got
		for {
			g := caller.expect("answers to bad input " + in.Name)
			if g.m != nil && g.m.TransID == marker {
				break
			}
			answers = append(answers, g)
		}
		for _, a := range answers {
			checkValid(t, e, a)
			if a.m == nil || a.m.Method != spec.MethodResponse || a.m.Result != spec.ResultFailure {
				t.Errorf("%s: expected only RESPONSE FAILURE back, actual %s", in.Name, a.raw)
			}
		}
		switch in.Expect {
		case fixtures.ExpectFailure:
			if len(answers) != 1 || answers[0].m == nil || answers[0].m.TransID != in.TransID || answers[0].m.Reason == "" {
				t.Errorf("%s (%s): expected one FAILURE with transID %s and a reason, actual %d answers %v",
					in.Name, in.Defect, in.TransID, len(answers), rawOf(answers))
			}
		case fixtures.ExpectIgnore:
			if len(answers) > 1 {
				t.Errorf("%s: expected at most one FAILURE, actual %d", in.Name, len(answers))
			}
		}
	}
	callee.expectNone("no bad input is forwarded")
	if err := c.Healthy(); err != nil {
		t.Fatalf("after the corpus: expected healthy, actual %v", err)
	}
	start, _ := call(t, c, caller, callee)
	answer(t, c, caller, callee, start)
}

func rawOf(gs []got) []string {
	var out []string
	for _, g := range gs {
		out = append(out, short(string(g.raw)))
	}
	return out
}

// TestConnectorMessagesValid runs the catalog validator over every kind of
// message the connector originates.
func TestConnectorMessagesValid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connector(func(cfg *Config) {
		cfg.AnswerTimeout = 300 * time.Millisecond
		cfg.Queues = []string{"support"}
		cfg.Schemes = []SchemeRoute{{Scheme: "sip", Topic: e.topics.Path + "gw"}}
	})
	mon := e.client("monitor")
	mon.subscribe(c.Topics().Events() + "/#")
	alice, bob := e.endpoint("alice"), e.endpoint("bob")
	alice.register("rtcomm")
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)

	alice.pubJSON(spec.Join(c.Topics().Management(), "alice"), map[string]any{
		"method": "SERVICE_QUERY", "rtcommVer": spec.Version, "transID": "q", "fromTopic": alice.address})
	checkValid(t, e, alice.expect("SERVICE_QUERY answer"))
	alice.pubJSON(spec.Join(c.Topics().Connector(), "alice"), startMsg(alice, "nobody", "s-x", "t-x"))
	checkValid(t, e, alice.expect("FAILURE"))
	checkValid(t, e, mon.expect("failed event"))
	// Timeout: FAILURE to the caller, STOP_SESSION to the callee, events.
	call(t, c, alice, bob) // never answered: failed, no started
	checkValid(t, e, alice.expect("timeout FAILURE"))
	checkValid(t, e, bob.expect("timeout STOP_SESSION"))
	checkValid(t, e, mon.expect("failed event"))
	// Unregister mid-call: STOP_SESSION from the connector, stopped event.
	start, _ := call(t, c, alice, bob)
	answer(t, c, alice, bob, start)
	mon.expect("started event")
	bob.unregister()
	checkValid(t, e, alice.expect("STOP_SESSION"))
	checkValid(t, e, mon.expect("stopped event"))
	// REFER and the 3PCC answer.
	bob.register("rtcomm")
	waitRegistrations(t, c, 2)
	ctl := e.client("ctl")
	ctl.subscribe("ctl-topic")
	ctl.pubJSON(c.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "rtcommVer": spec.Version,
		"transID": "p", "callerEndpoint": "alice", "calleeEndpoint": "nobody", "fromTopic": "ctl-topic"})
	checkValid(t, e, ctl.expect("3PCC FAILURE"))
	ctl.pubJSON(c.Topics().CallControl(), map[string]any{"method": "3PCC_PLACE_CALL", "rtcommVer": spec.Version,
		"transID": "p2", "callerEndpoint": "alice", "calleeEndpoint": "bob", "fromTopic": "ctl-topic"})
	checkValid(t, e, alice.expect("REFER"))
	// DOCUMENT_REPLACED.
	other := e.endpoint("bob")
	other.address = e.topics.Inbox("bob-2")
	other.register("rtcomm")
	checkValid(t, e, bob.expect("DOCUMENT_REPLACED"))
}
