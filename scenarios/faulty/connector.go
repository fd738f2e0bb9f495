package faulty

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// dropWhere drops every PUBLISH matching drop.
func dropWhere(drop func(p Publish) bool) Rewrite {
	return func(p Publish) []Publish {
		if drop(p) {
			return nil
		}
		return []Publish{p}
	}
}

// methodIs matches a PUBLISH by its payload's method.
func methodIs(ms ...spec.Method) func(p Publish) bool {
	return func(p Publish) bool {
		m, _ := method(p.Payload)
		for _, x := range ms {
			if m == x {
				return true
			}
		}
		return false
	}
}

// relayed matches messages the connector relays for a party (they carry the connector's
// fromTopic), as opposed to its own answers.
func relayed(m spec.Method) func(Publish, fields) bool {
	return func(p Publish, f fields) bool { return f.str("method") == string(m) && f["fromTopic"] != nil }
}

// connectorFaults are bugs of the signaling connector, planted in front of (or inside the
// configuration of) the reference connector.
func connectorFaults() []Fault {
	return []Fault{
		// --- registration ---------------------------------------------------------
		{
			Name:        "ignores-document-topic",
			Description: "the connector reads a registrant's address only from addressTopic, never from topic",
			Breaks:      []string{"REG-005"},
			Check:       "registered with `topic`",
			apply: inbound(stateless(editMessages(isMethod(spec.MethodDocument), func(_ *Publish, f fields) {
				if f["addressTopic"] == nil {
					delete(f, "topic")
				}
			}))),
		},
		{
			Name:        "keeps-first-registration",
			Description: "the connector ignores a newer DOCUMENT for a registered (endpoint ID, appContext) from another address",
			Breaks:      []string{"REG-006"},
			Check:       "the call goes to the newer registration",
			apply: inbound(func() Rewrite {
				var mu sync.Mutex
				first := map[string]string{} // sphere topic -> first address seen
				return editMessages(isMethod(spec.MethodDocument), func(p *Publish, f fields) {
					addr := f.str("addressTopic")
					key := "addressTopic"
					if addr == "" {
						addr, key = f.str("topic"), "topic"
					}
					mu.Lock()
					defer mu.Unlock()
					if old, ok := first[p.Topic]; ok {
						f.set(key, old) // as if the newcomer had re-published the older address
						return
					}
					first[p.Topic] = addr
				})
			}),
		},
		{
			Name:        "forgets-document-replaced",
			Description: "the connector never sends DOCUMENT_REPLACED to a replaced registrant",
			Breaks:      []string{"REG-007"},
			Check:       "DOCUMENT_REPLACED at the older registrant's address",
			apply:       outbound(stateless(dropWhere(methodIs(spec.MethodDocumentReplaced)))),
		},
		{
			Name:        "document-replaced-without-sender",
			Description: "the connector publishes DOCUMENT_REPLACED at the old address itself, without its own ID as the last level",
			Breaks:      []string{"REG-007"},
			Check:       "DOCUMENT_REPLACED at <old address>/<connector ID>",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodDocumentReplaced)(p) {
					p.Topic = p.Topic[:strings.LastIndex(p.Topic, "/")]
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "document-replaced-with-transid",
			Description: "the connector's DOCUMENT_REPLACED carries a transID (rtcomm.js then drops it as an unknown transaction)",
			Breaks:      []string{"REG-007"},
			Check:       "DOCUMENT_REPLACED without transID and sigSessID",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodDocumentReplaced), func(_ *Publish, f fields) {
				f.set("transID", uuid.NewString())
			}))),
		},
		{
			Name:        "ignores-unregister",
			Description: "the connector ignores the empty retained message that unregisters an endpoint (Last Will or clean unregister)",
			Breaks:      []string{"REG-008"},
			Check:       "answered FAILURE",
			apply: inbound(stateless(func(p Publish) []Publish {
				if len(p.Payload) == 0 && strings.Contains(p.Topic, "/sphere/") {
					return nil
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "short-replace-grace",
			Description: "the connector ignores a replaced client's goodbye for only 200 ms; rtcomm.js sends it about 500 ms after DOCUMENT_REPLACED",
			Breaks:      []string{"REG-009"},
			Check:       "the newcomer is still reachable",
			Profile:     scenarios.ProfileClient,
			apply:       withConfig(func(c *connector.Config) { c.ReplaceGrace = 200 * time.Millisecond }),
		},
		{
			Name:        "ignores-appcontext",
			Description: "the connector keys registrations by endpoint ID alone, so one appContext replaces another",
			Breaks:      []string{"REG-010"},
			Check:       "no DOCUMENT_REPLACED across appContexts",
			apply: inbound(stateless(editMessages(isMethod(spec.MethodDocument), func(_ *Publish, f fields) {
				f.set("appContext", "rtcomm")
			}))),
		},

		// --- service query ----------------------------------------------------------
		{
			Name:        "answers-service-query-twice",
			Description: "the connector answers every SERVICE_QUERY twice (rtcomm.js reads that as two connectors)",
			Breaks:      []string{"SQ-002"},
			Check:       "exactly one answer",
			apply: outbound(stateless(func(p Publish) []Publish {
				if m, orig := method(p.Payload); m == spec.MethodResponse && orig == spec.MethodServiceQuery {
					return []Publish{p, p}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "answers-service-query-again-later",
			Description: "the connector answers every SERVICE_QUERY a second time 1 s later (a retry timer that is never cancelled)",
			Breaks:      []string{"SQ-002"},
			Check:       "exactly one answer within the client's 5 s transaction",
			apply: outbound(stateless(func(p Publish) []Publish {
				if m, orig := method(p.Payload); m == spec.MethodResponse && orig == spec.MethodServiceQuery {
					late := p
					late.Delay = time.Second
					return []Publish{p, late}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "answers-service-query-late",
			Description: "the connector answers SERVICE_QUERY only after 6 s (a blocking registry lookup), past rtcomm.js's 5 s",
			Breaks:      []string{"SQ-002"},
			Check:       "an answer within 5 s",
			apply: outbound(stateless(func(p Publish) []Publish {
				if m, orig := method(p.Payload); m == spec.MethodResponse && orig == spec.MethodServiceQuery {
					p.Delay = 6 * time.Second
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "service-query-wrong-transid",
			Description: "the connector answers a SERVICE_QUERY with a transID of its own",
			Breaks:      []string{"SQ-003"},
			Check:       "orig SERVICE_QUERY, transID",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodResponse, spec.MethodServiceQuery), func(_ *Publish, f fields) {
				f.set("transID", uuid.NewString())
			}))),
		},
		{
			Name:        "service-query-failure",
			Description: "the connector answers SERVICE_QUERY with result FAILURE (rtcomm.js then has no connector)",
			Breaks:      []string{"SQ-004"},
			Check:       "result SUCCESS",
			Profile:     scenarios.ProfileClient,
			apply: outbound(stateless(editMessages(isMethod(spec.MethodResponse, spec.MethodServiceQuery), func(_ *Publish, f fields) {
				f.set("result", spec.ResultFailure)
				f.set("reason", "service unavailable")
			}))),
		},
		{
			Name:        "connector-service-without-topic",
			Description: "the connector advertises RTCOMM_CONNECTOR_SERVICE without its topic",
			Breaks:      []string{"SQ-005"},
			Check:       ".topic",
			apply: outbound(stateless(services(func(s map[string]fields) {
				if c := s[spec.ServiceConnector]; c != nil {
					delete(c, "topic")
				}
			}))),
		},
		{
			Name:        "connector-service-without-sphere-topic",
			Description: "the connector advertises RTCOMM_CONNECTOR_SERVICE without sphereTopic",
			Breaks:      []string{"SQ-006"},
			Check:       "sphereTopic, iceURL and eventMonitoringTopic",
			apply: outbound(stateless(services(func(s map[string]fields) {
				if c := s[spec.ServiceConnector]; c != nil {
					delete(c, "sphereTopic")
				}
			}))),
		},
		{
			Name:        "ice-url-with-slashes",
			Description: "the connector advertises its STUN server as stun://host:port (RFC 7064 URIs have no //)",
			Breaks:      []string{"SQ-007"},
			Check:       "iceURL a comma-separated list",
			apply: outbound(stateless(services(func(s map[string]fields) {
				if c := s[spec.ServiceConnector]; c != nil {
					c.set("iceURL", "stun://stun.example.net:3478")
				}
			}))),
		},
		{
			Name:        "turn-url-without-credentials",
			Description: "the connector advertises its TURN server in the RFC 7065 form turn:host:port, which rtcomm.js cannot parse (it wants turn:<user>@<host>:<port>:credential:<password>)",
			Breaks:      []string{"SQ-009"},
			Check:       "every turn: URL written",
			Profile:     scenarios.ProfileClient,
			apply: outbound(stateless(services(func(s map[string]fields) {
				if c := s[spec.ServiceConnector]; c != nil {
					urls := c.str("iceURL")
					if urls != "" {
						urls += ","
					}
					c.set("iceURL", urls+"turn:turn.example.net:3478")
				}
			}))),
		},
		{
			Name:        "scheme-service-without-topic",
			Description: "the connector advertises a scheme route without the topic to send such calls to",
			Breaks:      []string{"SQ-008"},
			Check:       "every service with schemes carries a topic",
			apply: outbound(stateless(services(func(s map[string]fields) {
				for _, svc := range s {
					if svc["schemes"] != nil {
						delete(svc, "topic")
					}
				}
			}))),
		},

		// --- sessions -----------------------------------------------------------------
		{
			Name:        "delivers-start-session-twice",
			Description: "the connector delivers every START_SESSION to the callee twice",
			Breaks:      []string{"SESS-002"},
			Check:       "exactly once",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodStartSession)(p) {
					return []Publish{p, p}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "new-transid-on-forward",
			Description: "the connector forwards START_SESSION under a transID of its own (the callee's answer then matches nothing at the caller)",
			Breaks:      []string{"SESS-002"},
			Check:       "unchanged",
			apply: outbound(stateless(editMessages(relayed(spec.MethodStartSession), func(_ *Publish, f fields) {
				f.set("transID", uuid.NewString())
			}))),
		},
		{
			Name:        "drops-protocols",
			Description: "the connector forwards START_SESSION with protocols reduced to the first one",
			Breaks:      []string{"SESS-002"},
			Check:       "unchanged",
			apply: outbound(stateless(editMessages(relayed(spec.MethodStartSession), func(_ *Publish, f fields) {
				var ps []string
				if json.Unmarshal(f["protocols"], &ps) == nil && len(ps) > 1 {
					f.set("protocols", ps[:1])
				}
			}))),
		},
		{
			Name:        "failure-without-reason",
			Description: "the connector's own FAILURE answers carry no reason",
			Breaks:      []string{"SESS-003", "ROB-002"},
			Check:       "with a reason",
			apply: outbound(stateless(editMessages(func(_ Publish, f fields) bool {
				return f.str("method") == string(spec.MethodResponse) && f.str("result") == spec.ResultFailure && f["fromTopic"] == nil
			}, func(_ *Publish, f fields) { delete(f, "reason") }))),
		},
		{
			Name:        "drops-relayed-reason",
			Description: "the connector relays a callee's FAILURE without its reason",
			Breaks:      []string{"SESS-004"},
			Check:       "FAILURE with reason \"busy here\"",
			apply: outbound(stateless(editMessages(func(p Publish, f fields) bool {
				return relayed(spec.MethodResponse)(p, f) && f.str("result") == spec.ResultFailure && f.str("orig") == string(spec.MethodStartSession)
			}, func(_ *Publish, f fields) { delete(f, "reason") }))),
		},
		{
			Name:        "alters-answer-sdp",
			Description: "the connector normalises the answer SDP it relays (line endings rewritten from CRLF to LF)",
			Breaks:      []string{"SESS-004"},
			Check:       "the answer payload unchanged",
			apply: outbound(stateless(editMessages(func(p Publish, f fields) bool {
				return relayed(spec.MethodResponse)(p, f) && f.str("result") == spec.ResultSuccess && f.str("orig") == string(spec.MethodStartSession)
			}, func(_ *Publish, f fields) {
				f["payload"] = json.RawMessage(strings.ReplaceAll(string(f["payload"]), `\r\n`, `\n`))
			}))),
		},
		{
			Name:        "drops-hold-timeout",
			Description: "the connector relays PRANSWER without holdTimeout and queuePosition",
			Breaks:      []string{"SESS-005"},
			Check:       "holdTimeout 20 and queuePosition 2 unchanged",
			apply: outbound(stateless(editMessages(relayed(spec.MethodPranswer), func(_ *Publish, f fields) {
				delete(f, "holdTimeout")
				delete(f, "queuePosition")
			}))),
		},
		{
			Name:        "leaks-peer-from-topic",
			Description: "the connector relays in-session messages with the sender's own fromTopic (it rewrites only START_SESSION)",
			Breaks:      []string{"SESS-006"},
			Check:       "every relayed message carries the connector's fromTopic",
			apply: func() func(t *scenarios.Target) error {
				var mu sync.Mutex
				from := map[string]string{} // sigSessID -> fromTopic of the last inbound message
				in := func() Rewrite {
					return editMessages(func(_ Publish, f fields) bool { return f["sigSessID"] != nil && f["fromTopic"] != nil },
						func(_ *Publish, f fields) {
							mu.Lock()
							from[f.str("sigSessID")] = f.str("fromTopic")
							mu.Unlock()
						})
				}
				out := func() Rewrite {
					return editMessages(func(p Publish, f fields) bool { return relayed(spec.MethodMessage)(p, f) },
						func(_ *Publish, f fields) {
							mu.Lock()
							defer mu.Unlock()
							if t, ok := from[f.str("sigSessID")]; ok {
								f.set("fromTopic", t)
							}
						})
				}
				return behindProxy(out, in)
			}(),
		},
		{
			Name:        "adds-transid",
			Description: "the connector stamps a transID on every MESSAGE it relays (rtcomm.js drops them as unknown transactions)",
			Breaks:      []string{"SESS-007"},
			Check:       "the relayed MESSAGE without transID",
			Profile:     scenarios.ProfileClient,
			apply: outbound(stateless(editMessages(relayed(spec.MethodMessage), func(_ *Publish, f fields) {
				if f["transID"] == nil {
					f.set("transID", uuid.NewString())
				}
			}))),
		},
		{
			Name:        "drops-stop-session",
			Description: "the connector does not relay STOP_SESSION",
			Breaks:      []string{"SESS-008"},
			Check:       "STOP_SESSION at",
			apply:       outbound(stateless(dropWhere(methodIs(spec.MethodStopSession)))),
		},
		{
			Name:        "echoes-stop-session",
			Description: "the connector sends STOP_SESSION back to the party that hung up as well as to its peer",
			Breaks:      []string{"SESS-008"},
			Check:       "no reply to STOP_SESSION",
			apply: func() func(t *scenarios.Target) error {
				var mu sync.Mutex
				from := map[string]string{} // sigSessID -> fromTopic of the STOP_SESSION received
				in := stateless(editMessages(isMethod(spec.MethodStopSession), func(_ *Publish, f fields) {
					mu.Lock()
					from[f.str("sigSessID")] = f.str("fromTopic")
					mu.Unlock()
				}))
				out := stateless(func(p Publish) []Publish {
					f := decodeFields(p.Payload)
					if f == nil || f.str("method") != string(spec.MethodStopSession) {
						return []Publish{p}
					}
					mu.Lock()
					back := from[f.str("sigSessID")]
					mu.Unlock()
					if back == "" {
						return []Publish{p}
					}
					echo := p
					echo.Topic = back + "/" + p.Topic[strings.LastIndex(p.Topic, "/")+1:]
					return []Publish{p, echo}
				})
				return behindProxy(out, in)
			}(),
		},
		{
			Name:        "reaps-early",
			Description: "the connector reaps unanswered sessions after a tenth of the 30 s answer timeout",
			Breaks:      []string{"SESS-009"},
			Check:       "(final timeout 30 s) succeeds",
			apply:       withConfig(func(c *connector.Config) { c.AnswerTimeout = 3 * time.Second }),
		},

		// --- ICE and messages ---------------------------------------------------------
		{
			Name:        "drops-early-candidates",
			Description: "the connector drops ICE candidates of a session until it is answered",
			Breaks:      []string{"ICE-002"},
			Check:       "before the answer relayed both ways",
			apply: func() func(t *scenarios.Target) error {
				var mu sync.Mutex
				answered := map[string]bool{}
				return outbound(func() Rewrite {
					return func(p Publish) []Publish {
						m, _ := spec.Decode(p.Payload)
						if m == nil {
							return []Publish{p}
						}
						mu.Lock()
						defer mu.Unlock()
						if m.Method == spec.MethodResponse && m.Orig == spec.MethodStartSession && m.Result == spec.ResultSuccess {
							answered[m.SigSessID] = true
						}
						if isCandidate(p.Payload) && !answered[m.SigSessID] {
							return nil
						}
						return []Publish{p}
					}
				})
			}(),
		},
		{
			Name:        "drops-ice-candidates",
			Description: "the connector loses every third ICE candidate it relays",
			Breaks:      []string{"ICE-003"},
			Check:       "once each",
			apply: outbound(func() Rewrite {
				var n atomic.Int64
				return dropWhere(func(p Publish) bool { return isCandidate(p.Payload) && n.Add(1)%3 == 0 })
			}),
		},
		{
			Name:        "duplicates-candidates",
			Description: "the connector relays every fourth ICE candidate twice (a retry on a publish that had succeeded)",
			Breaks:      []string{"ICE-003"},
			Check:       "once each",
			apply: outbound(func() Rewrite {
				var n atomic.Int64
				return func(p Publish) []Publish {
					if isCandidate(p.Payload) && n.Add(1)%4 == 0 {
						return []Publish{p, p}
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "reorders-candidates",
			Description: "the connector relays candidates from a worker pool: every fifth one is overtaken by the next",
			Breaks:      []string{"ICE-005"},
			Check:       "in the order sent",
			apply: outbound(func() Rewrite {
				var n atomic.Int64
				return func(p Publish) []Publish {
					if isCandidate(p.Payload) && n.Add(1)%5 == 0 {
						p.Delay = 40 * time.Millisecond
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "message-from-connector-level",
			Description: "the connector relays MESSAGEs at <peer address>/<its own ID> instead of the sender's ID",
			Breaks:      []string{"MSG-002"},
			Check:       "at a topic ending in /",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodMessage)(p) && !isCandidate(p.Payload) {
					p.Topic = p.Topic[:strings.LastIndex(p.Topic, "/")+1] + "rtcomm-connector"
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "alters-candidates",
			Description: "the connector rewrites candidate strings (lower-cases them and strips extensions)",
			Breaks:      []string{"ICE-004"},
			Check:       "identical candidate strings",
			apply: outbound(stateless(func(p Publish) []Publish {
				if !isCandidate(p.Payload) {
					return []Publish{p}
				}
				m, _ := spec.Decode(p.Payload)
				w, _, _ := m.WebRTC()
				if w.Candidate != nil && w.Candidate.Candidate != "" {
					s := strings.ToLower(w.Candidate.Candidate)
					if i := strings.Index(s, " generation"); i > 0 {
						s = s[:i]
					}
					w.Candidate.Candidate = s
					m.Payload = spec.WebRTCPayloadJSON(w)
					if b, err := spec.Encode(m); err == nil {
						p.Payload = b
					}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "alters-message-payloads",
			Description: "the connector adds a field to the payload of every in-session MESSAGE it relays (chat, renegotiation; candidates untouched)",
			Breaks:      []string{"MSG-002"},
			Check:       "unchanged",
			apply: outbound(stateless(func(p Publish) []Publish {
				if isCandidate(p.Payload) {
					return []Publish{p}
				}
				return editMessages(relayed(spec.MethodMessage), func(_ *Publish, f fields) {
					var payload map[string]json.RawMessage
					if json.Unmarshal(f["payload"], &payload) == nil {
						payload["x-connector"] = json.RawMessage(`"was here"`)
						f.set("payload", payload)
					}
				})(p)
			})),
		},

		// --- referral, events, queues, schemes -----------------------------------------
		{
			Name:        "refer-without-details",
			Description: "the connector's REFER carries no details object",
			Breaks:      []string{"REF-003"},
			Check:       "REFER with transID, fromTopic, toEndpointID",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodRefer), func(_ *Publish, f fields) {
				delete(f, "details")
			}))),
		},
		{
			Name:        "refer-details-without-session-id",
			Description: "the connector's REFER details carry no sessionID",
			Breaks:      []string{"REF-004"},
			Check:       "details {sessionID",
			Profile:     scenarios.ProfileClient,
			apply: outbound(stateless(editMessages(isMethod(spec.MethodRefer), func(_ *Publish, f fields) {
				var d map[string]json.RawMessage
				if json.Unmarshal(f["details"], &d) == nil {
					delete(d, "sessionID")
					f.set("details", d)
				}
			}))),
		},
		{
			Name:        "3pcc-answer-wrong-transid",
			Description: "the connector answers 3PCC_PLACE_CALL with a transID of its own",
			Breaks:      []string{"REF-005"},
			Check:       "RESPONSE to 3PCC_PLACE_CALL at",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodResponse, spec.Method3PCCPlaceCall), func(_ *Publish, f fields) {
				f.set("transID", uuid.NewString())
			}))),
		},
		{
			Name:        "plain-text-on-call-control",
			Description: "the connector acknowledges a 3PCC_PLACE_CALL with a plain-text \"accepted\" on the call-control topic (lib.rtcomm.node parses everything there as JSON)",
			Breaks:      []string{"REF-002"},
			Check:       "only JSON objects on",
			Profile:     scenarios.ProfileClient,
			apply: func() func(t *scenarios.Target) error {
				var mu sync.Mutex
				cc := map[string]string{} // transID of a 3PCC_PLACE_CALL -> the topic it came on
				in := stateless(editMessages(isMethod(spec.Method3PCCPlaceCall), func(p *Publish, f fields) {
					mu.Lock()
					cc[f.str("transID")] = p.Topic
					mu.Unlock()
				}))
				out := stateless(func(p Publish) []Publish {
					f := decodeFields(p.Payload)
					if f == nil || f.str("method") != string(spec.MethodResponse) || f.str("orig") != string(spec.Method3PCCPlaceCall) {
						return []Publish{p}
					}
					mu.Lock()
					topic, ok := cc[f.str("transID")]
					mu.Unlock()
					if !ok {
						return []Publish{p}
					}
					return []Publish{p, {Topic: topic, Payload: []byte("accepted")}}
				})
				return behindProxy(out, in)
			}(),
		},
		{
			Name:        "call-control-service-without-topic",
			Description: "the connector advertises RTCOMM_CALL_CONTROL_SERVICE without its topic",
			Breaks:      []string{"REF-007"},
			Check:       "with a topic",
			apply: outbound(stateless(services(func(s map[string]fields) {
				if c := s[spec.ServiceCallControl]; c != nil {
					delete(c, "topic")
				}
			}))),
		},
		{
			Name:        "swaps-stopped-event-parties",
			Description: "the connector fires the stopped event with from and to swapped when the callee hangs up",
			Breaks:      []string{"EVT-001"},
			Check:       "stopped at",
			apply: outbound(stateless(func(p Publish) []Publish {
				if i := strings.Index(p.Topic, "/session/stopped/"); i >= 0 {
					parts := strings.Split(p.Topic, "/")
					n := len(parts)
					parts[n-1], parts[n-2] = parts[n-2], parts[n-1]
					p.Topic = strings.Join(parts, "/")
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "failed-event-without-reason",
			Description: "the connector fires the failed event without the rejection's reason",
			Breaks:      []string{"EVT-001"},
			Check:       "failed with a reason",
			apply: outbound(stateless(editMessages(func(p Publish, f fields) bool {
				return strings.Contains(p.Topic, "/session/failed/")
			}, func(_ *Publish, f fields) { delete(f, "reason") }))),
		},
		{
			Name:        "event-without-timestamp",
			Description: "the connector fires events without a timestamp",
			Breaks:      []string{"EVT-002"},
			Check:       "timestamp, appContext",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodEventFired), func(_ *Publish, f fields) {
				delete(f, "timestamp")
			}))),
		},
		{
			Name:        "queue-service-without-topic",
			Description: "the connector advertises its call queues without their topics",
			Breaks:      []string{"QUE-001"},
			Check:       "with endpointID and topic",
			apply: outbound(stateless(services(func(s map[string]fields) {
				q := s[spec.ServiceCallQueue]
				if q == nil {
					return
				}
				var queues []fields
				if json.Unmarshal(q["queues"], &queues) == nil {
					for _, x := range queues {
						delete(x, "topic")
					}
					q.set("queues", queues)
				}
			}))),
		},
		{
			Name:        "queue-call-to-every-agent",
			Description: "the connector publishes a call to a queue twice, so two agents ring",
			Breaks:      []string{"QUE-002"},
			Check:       "exactly one",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodStartSession)(p) && strings.Contains(p.Topic, "queue-") {
					return []Publish{p, p}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "wrong-gateway-topic",
			Description: "the connector forwards scheme calls to the gateway topic with a typo",
			Breaks:      []string{"SCH-001"},
			Check:       "at the gateway topic",
			apply: outbound(stateless(func(p Publish) []Publish {
				if i := strings.Index(p.Topic, "/sipgw/"); i >= 0 {
					p.Topic = p.Topic[:i] + "/sip-gw/" + p.Topic[i+len("/sipgw/"):]
				}
				return []Publish{p}
			})),
		},

		// --- identity, robustness, format -------------------------------------------------
		{
			Name:        "forwards-without-sender-level",
			Description: "the connector forwards START_SESSION at the callee's address without the caller's ID as the last level",
			Breaks:      []string{"ID-004"},
			Check:       "<receiver topic>/<senderID>",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodStartSession)(p) {
					p.Topic = p.Topic[:strings.LastIndex(p.Topic, "/")]
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "trusts-json-sender",
			Description: "the connector takes the caller's ID from a fromEndpointID field in the JSON when there is one, not from the topic",
			Breaks:      []string{"ID-006"},
			Check:       "(the topic's last level)",
			apply: inbound(stateless(func(p Publish) []Publish {
				f := decodeFields(p.Payload)
				if id := f.str("fromEndpointID"); f != nil && id != "" {
					p.Topic = p.Topic[:strings.LastIndex(p.Topic, "/")+1] + id
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "routes-unknown-session-by-sender",
			Description: "the connector routes an in-session message whose sigSessID it does not know to the sender's live session peer",
			Breaks:      []string{"MSG-003"},
			Check:       "nothing of the unknown session reaches alice",
			apply: func() func(t *scenarios.Target) error {
				const marker = "x-faulty-sigSessID"
				var mu sync.Mutex
				known := map[string]bool{}  // sigSessIDs of sessions started through the connector
				live := map[string]string{} // sender ID -> a session it is in
				in := stateless(func(p Publish) []Publish {
					f := decodeFields(p.Payload)
					if f == nil {
						return []Publish{p}
					}
					sender := p.Topic[strings.LastIndex(p.Topic, "/")+1:]
					sid := f.str("sigSessID")
					mu.Lock()
					defer mu.Unlock()
					switch {
					case f.str("method") == string(spec.MethodStartSession):
						known[sid] = true
						live[sender] = sid
					case sid != "" && known[sid]:
						live[sender] = sid
					case sid != "" && live[sender] != "":
						f.set(marker, sid)
						f.set("sigSessID", live[sender])
						if b, err := json.Marshal(f); err == nil {
							p.Payload = b
						}
					}
					return []Publish{p}
				})
				out := stateless(editMessages(func(_ Publish, f fields) bool { return f[marker] != nil }, func(_ *Publish, f fields) {
					f["sigSessID"] = f[marker]
					delete(f, marker)
				}))
				return behindProxy(out, in)
			}(),
		},
		{
			Name: "connector-as-confused-deputy",
			Description: "on the secured listener the connector registers any address, answers any fromTopic " +
				"and serves 3PCC to anyone (the reference connector without its secure-mode rules)",
			Breaks: []string{"ID-013", "ID-014", "ID-015"},
			apply: func(t *scenarios.Target) error {
				start := t.StartConnector
				t.StartConnector = func(ctx context.Context, p scenarios.ConnectorParams) (func(), error) {
					p.Secure, p.CallControllers = false, nil
					return start(ctx, p)
				}
				return nil
			},
		},
		{
			Name:        "dies-on-bad-input",
			Description: "the connector stops serving after the first payload it cannot parse",
			Breaks:      []string{"ROB-001"},
			Check:       "still answers a SERVICE_QUERY after the bad inputs",
			apply: func() func(t *scenarios.Target) error {
				return behindProxy(func() Rewrite {
					return func(p Publish) []Publish { return []Publish{p} }
				}, func() Rewrite {
					var dead atomic.Bool
					return func(p Publish) []Publish {
						if strings.Contains(p.Topic, "/connector/") && !strings.HasSuffix(p.Topic, "~sync") &&
							len(p.Payload) > 0 && decodeFields(p.Payload) == nil {
							dead.Store(true)
						}
						if dead.Load() {
							return nil
						}
						return []Publish{p}
					}
				})
			}(),
		},
		{
			Name:        "leaks-retained-state",
			Description: "the connector publishes session messages retained, so they outlive the session",
			Breaks:      []string{"ROB-003"},
			Check:       "no retained message left",
			Labels:      []string{"area:sessions"},
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodStopSession, spec.MethodStartSession)(p) {
					p.Retain = true
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "plain-text-stop",
			Description: "the connector sends the callee a plain-text notice before relaying STOP_SESSION",
			Breaks:      []string{"FMT-001"},
			Check:       "meets FMT-001",
			apply: outbound(stateless(func(p Publish) []Publish {
				if methodIs(spec.MethodStopSession)(p) {
					note := p
					note.Payload = []byte("session ended")
					return []Publish{note, p}
				}
				return []Publish{p}
			})),
		},
		{
			Name:        "lower-case-method",
			Description: "the connector relays STOP_SESSION with its method lower-cased",
			Breaks:      []string{"FMT-002"},
			Check:       "a v1.0.0 method",
			apply: outbound(stateless(editMessages(isMethod(spec.MethodStopSession), func(_ *Publish, f fields) {
				f.set("method", "stop_session")
			}))),
		},
		{
			Name:        "wrong-rtcomm-version",
			Description: "the connector stamps rtcommVer v1.0 on what it relays",
			Breaks:      []string{"FMT-003"},
			Check:       "meets FMT-003",
			apply: outbound(stateless(editMessages(relayed(spec.MethodStartSession), func(_ *Publish, f fields) {
				f.set("rtcommVer", "v1.0")
			}))),
		},
		{
			Name:        "hold-timeout-as-string",
			Description: "the connector relays PRANSWER's holdTimeout as a string",
			Breaks:      []string{"FMT-004"},
			Check:       "meets FMT-004",
			apply: outbound(stateless(editMessages(relayed(spec.MethodPranswer), func(_ *Publish, f fields) {
				if f["holdTimeout"] != nil {
					f.set("holdTimeout", strings.Trim(string(f["holdTimeout"]), `"`))
				}
			}))),
		},
		{
			Name:        "response-without-orig",
			Description: "the connector's own RESPONSEs carry no orig",
			Breaks:      []string{"FMT-005"},
			Check:       "orig",
			apply: outbound(stateless(editMessages(func(_ Publish, f fields) bool {
				return f.str("method") == string(spec.MethodResponse) && f["fromTopic"] == nil
			}, func(_ *Publish, f fields) { delete(f, "orig") }))),
		},
		{
			Name:        "wildcard-from-topic",
			Description: "the connector puts a wildcard topic filter in the fromTopic of what it relays",
			Breaks:      []string{"FMT-006"},
			Check:       "fromTopic a topic without",
			apply: outbound(stateless(editMessages(relayed(spec.MethodStartSession), func(_ *Publish, f fields) {
				f.set("fromTopic", f.str("fromTopic")+"/#")
			}))),
		},
		{
			Name:        "empty-protocol-name",
			Description: "the connector rebuilds protocols from a comma-joined string and relays START_SESSION with an empty trailing name",
			Breaks:      []string{"FMT-007"},
			Check:       "non-empty names",
			apply: outbound(stateless(editMessages(relayed(spec.MethodStartSession), func(_ *Publish, f fields) {
				var ps []string
				_ = json.Unmarshal(f["protocols"], &ps)
				f.set("protocols", append(ps, ""))
			}))),
		},
	}
}
