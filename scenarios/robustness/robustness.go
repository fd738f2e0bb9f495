// Package robustness holds the conformance specs of robustness against the bad-input corpus (area robustness).
package robustness

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// badInputs selects fixtures from the bad-input corpus.
func badInputs(keep func(fixtures.BadInput) bool) []fixtures.BadInput {
	var out []fixtures.BadInput
	for _, b := range fixtures.BadInputs() {
		if keep(b) {
			out = append(out, b)
		}
	}
	return out
}

// robustnessRun publishes bad inputs to the connector topic as alice (a raw client), checks
// the FAILURE answers the corpus expects (req), that nothing reached bob, and that a healthy
// call right after succeeds (ROB-001).
func robustnessRun(e *Env, req string, inputs []fixtures.BadInput) {
	GinkgoHelper()
	Harness(ErrIf(len(inputs) == 0, "no bad inputs selected"), "fixtures")
	bob := e.Party("bob", PartyOptions{NoValidate: true})
	alice := e.Prober("alice")
	alice.Options().Quiet = true // the corpus is large; the wiretap keeps the trace
	connTopic := e.Topics.Connector()
	_, resp := alice.Answer("SQ-002", alice.Query())
	if s, ok := resp.Services[spec.ServiceConnector]; ok && s.Topic != "" {
		connTopic = e.Topics.Resolve(s.Topic)
	}
	limit := e.Decl.MaxPayload() - len(connTopic) - 256
	mark := bob.Inbox().Mark()
	want := map[string]fixtures.BadInput{}
	var oversized []string
	for _, b := range inputs {
		payload := b.Retarget(alice.Addr, bob.ID())
		topic := spec.Join(connTopic, alice.ID)
		if len(payload) > limit {
			// Beyond the declared limit the broker may refuse it (mochi disconnects the
			// publisher): send it on a connection of its own, expect no answer.
			oversized = append(oversized, b.Name)
			if c, err := e.Connect("oversize", ConnOptions{Quiet: true}); err == nil {
				_ = c.Publish(topic, 0, false, payload)
				c.Close()
			}
			continue
		}
		Harness(alice.Publish(topic, 1, false, payload), "publish "+b.Name)
		if b.Expect == fixtures.ExpectFailure && b.HasTransID {
			want[b.TransID] = b
		}
	}
	// Every FAILURE the corpus expects, with the input's transID, at alice's fromTopic.
	var got []Msg
	if len(want) > 0 {
		got = alice.Inbox().Collect(e.Ctx, e.Reply(), len(want), func(m Msg) bool {
			d := m.Decode()
			return d != nil && d.Method == spec.MethodResponse && want[d.TransID].Name != ""
		})
	}
	answered := map[string]*spec.Message{}
	for _, m := range got {
		d := m.Decode()
		answered[d.TransID] = d
	}
	var bad []string
	for tid, b := range want {
		d, ok := answered[tid]
		switch {
		case !ok:
			bad = append(bad, b.Name+": no answer")
		case d.Result != spec.ResultFailure || strings.TrimSpace(d.Reason) == "":
			bad = append(bad, fmt.Sprintf("%s: %s", b.Name, MessageString(d)))
		}
	}
	if len(want) > 0 {
		Check(req, len(bad) == 0, fmt.Sprintf("RESPONSE FAILURE with a reason and the input's transID for each of %d inputs", len(want)),
			"%s", strings.Join(First(bad, 6), "; "))
	}
	leaked := bob.Inbox().Collect(e.Ctx, e.Quiet(), 0, After(mark))
	Check("ROB-001", len(leaked) == 0, "no bad input forwarded to the callee "+bob.ID(), "%d message(s): %v", len(leaked), First(MsgStrings(leaked), 3))
	// The connector itself still serves: a fresh client's SERVICE_QUERY is answered (a call
	// alone would not show it: without a connector, endpoints fall back to peer-to-peer).
	dave := e.Prober("dave")
	tid := dave.Query()
	_, serving := dave.Inbox().Await(e.Ctx, e.Reply(), IsResponse(spec.MethodServiceQuery, tid))
	Check("ROB-001", serving, "the connector still answers a SERVICE_QUERY after the bad inputs", "%s", dave.Inbox().Summary())
	// A healthy call right after must succeed, from a fresh client.
	carol := e.Party("carol", PartyOptions{})
	out := carol.Call(bob.ID(), MustOffer("chrome-audio-offer"))
	inv := bob.Invite("ROB-001")
	c, cancel := e.OpContext()
	defer cancel()
	_, err := inv.Accept(c, MustAnswer("chrome-audio-offer"))
	Harness(err, "accept")
	_, err = carol.Await(out)
	Check("ROB-001", err == nil, "a healthy call right after the bad inputs succeeds", "%v", err)
	if len(oversized) > 0 {
		AddReportEntry("oversized inputs sent on their own connection (beyond the declared limit)", strings.Join(oversized, ", "))
	}
}

// Robustness (fixtures bad-input corpus, MANIFEST.yaml "bad").
var _ = Describe("Robustness", Area("robustness"), func() {

	It("ignores malformed, non-object, empty, non-UTF-8 and deeply nested payloads and keeps serving", Req("ROB-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		robustnessRun(e, "ROB-001", badInputs(func(b fixtures.BadInput) bool {
			return b.Expect == fixtures.ExpectIgnore && !b.Generated
		}))
	}, SpecTimeout(time.Minute))

	It("answers RESPONSE FAILURE with a reason to requests whose fields are missing or wrongly typed", Req("ROB-002", "ROB-001", "SESS-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		robustnessRun(e, "ROB-002", badInputs(func(b fixtures.BadInput) bool {
			return b.Expect == fixtures.ExpectFailure && (b.Defect == fixtures.DefectWrongType || b.Defect == fixtures.DefectMissingField)
		}))
	}, SpecTimeout(time.Minute))

	It("answers FAILURE to a wrong rtcommVer and invalid UTF-8 in a request with a transID, and forwards no unknown method", Req("ROB-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		// An unknown method may be answered FAILURE or ignored (no source fixes which); it must
		// not be forwarded, and the connector must keep serving.
		robustnessRun(e, "ROB-001", badInputs(func(b fixtures.BadInput) bool {
			return !b.Generated && (b.Defect == fixtures.DefectUnknownMethod ||
				b.Expect == fixtures.ExpectFailure && (b.Defect == fixtures.DefectWrongVersion || b.Defect == fixtures.DefectNotUTF8))
		}))
	}, SpecTimeout(time.Minute))

	It("answers FAILURE to calls for endpoint IDs that are empty or contain / + #", Req("ROB-001", "ID-001", "ID-002", "ID-003"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		robustnessRun(e, "ROB-001", badInputs(func(b fixtures.BadInput) bool {
			return b.Defect == fixtures.DefectBadEndpointID && !b.Generated
		}))
	}, SpecTimeout(time.Minute))

	It("survives oversized and huge inputs (multi-megabyte garbage, 1 MiB strings, 100k nesting) and keeps serving", Req("ROB-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		robustnessRun(e, "ROB-001", badInputs(func(b fixtures.BadInput) bool { return b.Generated }))
	}, SpecTimeout(2*time.Minute))
})
