// Package servicequery holds the conformance specs of the service query (area service-query).
package servicequery

import (
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	"github.com/onsi/gomega"

	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// sqTransaction is how long rtcomm.js keeps a SERVICE_QUERY transaction open: any answer to
// it within this window counts (SQ-002).
const sqTransaction = 5 * time.Second

// Service query (PROTOCOL.md, "Service query answer").
var _ = Describe("Service query", Area("service-query"), func() {

	It("answers a SERVICE_QUERY exactly once, within 5 s, with orig, the transID, under fromTopic", Req("SQ-001", "SQ-002", "SQ-003"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		t0 := time.Now()
		tid := alice.Query()
		// Any RESPONSE: whether it names the query (orig, transID) is SQ-003's to judge.
		m, ok := alice.Inbox().Await(e.Ctx, e.Reply(), IsMethod(spec.MethodResponse))
		Check("SQ-002", ok && time.Since(t0) <= 5*time.Second, "an answer within 5 s", "after %s: %s", time.Since(t0).Round(time.Millisecond), alice.Inbox().Summary())
		resp := m.Decode()
		Check("SQ-003", UnderTopic(m.Topic, alice.Addr), "the answer published under fromTopic "+alice.Addr, "at %s", m.Topic)
		Check("SQ-003", resp.Orig == spec.MethodServiceQuery && resp.TransID == tid, "orig SERVICE_QUERY, transID "+tid,
			"orig %q, transID %q", resp.Orig, resp.TransID)
		// rtcomm.js keeps the query's transaction open for its full 5 s and resets itself on any
		// further answer within it ("multiple servers"): watch the whole window.
		window := max(sqTransaction-time.Since(t0), e.Quiet()*2)
		more := alice.Inbox().Collect(e.Ctx, window, 0, IsResponse(spec.MethodServiceQuery, ""))
		Check("SQ-002", len(more) == 0, "exactly one answer within the client's 5 s transaction (a second one resets rtcomm.js: \"multiple servers\")",
			"%d further answer(s) within %s of the query: %v", len(more), sqTransaction, more)
	}, SpecTimeout(time.Minute))

	It("answers two queries in a row separately, each with its own transID", Req("SQ-002", "SQ-003"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		t1, t2 := alice.Query(), alice.Query()
		got := alice.Inbox().Collect(e.Ctx, e.Reply(), 2, IsMethod(spec.MethodResponse))
		var tids []string
		for _, m := range got {
			if d := m.Decode(); d != nil {
				tids = append(tids, d.TransID)
			}
		}
		That("SQ-003", tids, gomega.ConsistOf(t1, t2), "two answers, carrying "+t1+" and "+t2)
		more := alice.Inbox().Collect(e.Ctx, e.Quiet(), 0, IsResponse(spec.MethodServiceQuery, ""))
		Check("SQ-002", len(more) == 0, "one answer per query", "%d extra: %v", len(more), more)
	}, SpecTimeout(time.Minute))

	It("advertises RTCOMM_CONNECTOR_SERVICE with its topic (strict: and sphereTopic, iceURL, eventMonitoringTopic)", Req("SQ-004", "SQ-005", "SQ-006"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		_, resp := alice.Answer("SQ-002", alice.Query())
		if e.Decl.Profile == ProfileClient {
			Check("SQ-004", resp.Result == spec.ResultSuccess, "result SUCCESS", "result %q reason %q", resp.Result, resp.Reason)
		}
		svc, ok := resp.Services[spec.ServiceConnector]
		Check("SQ-005", ok && svc.Topic != "", "services."+spec.ServiceConnector+".topic", "services: %s", BriefJSON(resp.Services))
		if e.Decl.Profile == ProfileStrict {
			var missing []string
			for name, v := range map[string]string{"sphereTopic": svc.SphereTopic, "iceURL": svc.IceURL, "eventMonitoringTopic": svc.EventMonitoringTopic} {
				if v == "" {
					missing = append(missing, name)
				}
			}
			slices.Sort(missing)
			Check("SQ-006", len(missing) == 0, "sphereTopic, iceURL and eventMonitoringTopic", "missing %v in %s", missing, BriefJSON(svc))
		}
		// The advertised topic is where calls go: a call published there reaches the connector.
		Check("SQ-005", strings.HasPrefix(e.Topics.Resolve(svc.Topic), e.Path), "the connector topic lies under (or relative to) the topic path "+e.Path,
			"%q", svc.Topic)
	}, SpecTimeout(time.Minute))

	It("advertises well-formed ICE server URLs, TURN ones in the form rtcomm.js parses", Req("SQ-007", "SQ-009"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		_, resp := alice.Answer("SQ-002", alice.Query())
		svc := resp.Services[spec.ServiceConnector]
		byReq := map[string][]string{}
		for _, v := range spec.CheckIceURL(svc.IceURL, spec.Profile(e.Decl.Profile)) {
			byReq[v.Requirement] = append(byReq[v.Requirement], v.Actual)
		}
		Check("SQ-007", len(byReq["SQ-007"]) == 0, "iceURL a comma-separated list of stun:, stuns:, turn: or turns: URLs",
			"%q: %s", svc.IceURL, strings.Join(byReq["SQ-007"], "; "))
		if e.Decl.Profile == ProfileClient {
			Check("SQ-009", len(byReq["SQ-009"]) == 0, "every turn: URL written turn:<user>@<host>:<port>:credential:<password>",
				"%q: %s", svc.IceURL, strings.Join(byReq["SQ-009"], "; "))
		}
	}, SpecTimeout(time.Minute))

	It("advertises RTCOMM_CALL_CONTROL_SERVICE with a topic", Req("REF-007"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		_, resp := alice.Answer("SQ-002", alice.Query())
		svc, ok := resp.Services[spec.ServiceCallControl]
		Check("REF-007", ok && svc.Topic != "", spec.ServiceCallControl+" with a topic", "services: %s", BriefJSON(resp.Services))
	}, SpecTimeout(time.Minute))

	It("advertises RTCOMM_CALL_QUEUE_SERVICE with each queue's endpointID and topic", Req("QUE-001"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		_, resp := alice.Answer("SQ-002", alice.Query())
		svc, ok := resp.Services[spec.ServiceCallQueue]
		var bad []string
		listed := map[string]bool{}
		for _, q := range svc.Queues {
			listed[q.EndpointID] = true
			if q.EndpointID == "" || q.Topic == "" {
				bad = append(bad, fmt.Sprintf("%+v", q))
			}
		}
		for _, q := range e.Queues() {
			if !listed[q] {
				bad = append(bad, "queue "+q+" not listed")
			}
		}
		Check("QUE-001", ok && len(svc.Queues) > 0 && len(bad) == 0, "queues listed with endpointID and topic, including "+QuoteList(e.Queues()),
			"%s; services: %s", strings.Join(bad, "; "), BriefJSON(resp.Services))
	}, SpecTimeout(time.Minute))

	It("advertises scheme routes with schemes and a topic", Req("SQ-008"), func(ctx SpecContext) {
		e := NewEnv(ctx, WithConnector())
		alice := e.Prober("alice")
		_, resp := alice.Answer("SQ-002", alice.Query())
		found := map[string]bool{}
		var bad []string
		for name, s := range resp.Services {
			if len(s.Schemes) == 0 {
				continue
			}
			if s.Topic == "" {
				bad = append(bad, name+" has schemes but no topic")
			}
			for _, sc := range s.Schemes {
				if sc == "" || strings.Contains(sc, ":") {
					bad = append(bad, fmt.Sprintf("%s: scheme %q", name, sc))
				}
				found[strings.ToLower(sc)] = true
			}
		}
		for _, r := range e.Decl.Schemes {
			if !found[strings.ToLower(r.Scheme)] {
				bad = append(bad, "declared scheme "+r.Scheme+" not advertised")
			}
		}
		Check("SQ-008", len(bad) == 0, "every service with schemes carries a topic; declared schemes advertised",
			"%s; services: %s", strings.Join(bad, "; "), BriefJSON(resp.Services))
	}, SpecTimeout(time.Minute))
})
