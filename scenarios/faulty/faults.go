package faulty

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Fault is one deliberately broken target.
type Fault struct {
	Name        string
	Description string
	// Breaks are the requirements the suite must fail on this target.
	Breaks []string
	// Collateral are requirements that may fail as a consequence (the same defect seen
	// from another angle); every other requirement must keep its baseline verdict.
	Collateral []string
	// Areas restrict the run to the scenario areas that can see the defect (keeps it short).
	Areas []string
	// apply turns an opened embedded target into the faulty one.
	apply func(t *scenarios.Target)
}

// method decodes the method (and orig) of a payload; "" when it is not an rtcomm message.
func method(p []byte) (spec.Method, spec.Method) {
	m, _ := spec.Decode(p)
	if m == nil {
		return "", ""
	}
	return m.Method, m.Orig
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

// behindProxy makes the target's connectors publish through a proxy applying rw (one proxy
// per scenario, so every scenario starts clean).
func behindProxy(newRewrite func() Rewrite) func(t *scenarios.Target) {
	return func(t *scenarios.Target) {
		start := t.StartConnector
		t.StartConnector = func(ctx context.Context, p scenarios.ConnectorParams) (func(), error) {
			px, err := NewProxy(p.BrokerURL, newRewrite())
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
	}
}

// Faults lists every faulty target.
func Faults() []Fault {
	return []Fault{
		{
			Name:        "drops-ice-candidates",
			Description: "the connector loses every third ICE candidate it relays",
			Breaks:      []string{"ICE-003"},
			Collateral:  []string{"ICE-002", "ICE-004", "FMT-001"},
			Areas:       []string{"ice", "registration"},
			apply: behindProxy(func() Rewrite {
				var n atomic.Int64
				return func(p Publish) []Publish {
					if isCandidate(p.Payload) && n.Add(1)%3 == 0 {
						return nil
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "forgets-document-replaced",
			Description: "the connector never sends DOCUMENT_REPLACED to a replaced registrant",
			Breaks:      []string{"REG-007"},
			Areas:       []string{"registration", "ice"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					if m, _ := method(p.Payload); m == spec.MethodDocumentReplaced {
						return nil
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "answers-service-query-twice",
			Description: "the connector answers every SERVICE_QUERY twice (rtcomm.js reads that as two connectors)",
			Breaks:      []string{"SQ-002"},
			Areas:       []string{"service-query", "ice"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					if m, orig := method(p.Payload); m == spec.MethodResponse && orig == spec.MethodServiceQuery {
						return []Publish{p, p}
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "leaks-retained-state",
			Description: "the connector publishes session messages retained, so they outlive the session",
			Breaks:      []string{"ROB-003"},
			Areas:       []string{"sessions", "ice"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					if m, _ := method(p.Payload); m == spec.MethodStopSession || m == spec.MethodStartSession {
						p.Retain = true
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "drops-stop-session",
			Description: "the connector does not relay STOP_SESSION",
			Breaks:      []string{"SESS-008"},
			Collateral:  []string{"REG-008", "SESS-007", "SESS-009"},
			Areas:       []string{"sessions", "ice"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					if m, _ := method(p.Payload); m == spec.MethodStopSession {
						return nil
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "alters-candidates",
			Description: "the connector rewrites candidate strings (lower-cases them and strips extensions)",
			Breaks:      []string{"ICE-004"},
			Collateral:  []string{"ICE-003", "ICE-002"},
			Areas:       []string{"ice", "sessions"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
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
				}
			}),
		},
		{
			Name:        "alters-message-payloads",
			Description: "the connector adds a field to the payload of every in-session MESSAGE it relays (chat, renegotiation; candidates untouched)",
			Breaks:      []string{"MSG-002"},
			Areas:       []string{"messages"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					m, _ := spec.Decode(p.Payload)
					if m == nil || m.Method != spec.MethodMessage || isCandidate(p.Payload) {
						return []Publish{p}
					}
					var payload map[string]json.RawMessage
					if json.Unmarshal(m.Payload, &payload) != nil {
						return []Publish{p}
					}
					payload["x-connector"] = json.RawMessage(`"was here"`)
					if b, err := json.Marshal(payload); err == nil {
						m.Payload = b
						if b, err := spec.Encode(m); err == nil {
							p.Payload = b
						}
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name:        "failure-without-reason",
			Description: "the connector's own FAILURE answers carry no reason",
			Breaks:      []string{"SESS-003"},
			Collateral:  []string{"ROB-002", "ROB-001", "FMT-005", "SESS-004", "EVT-001", "REG-008"},
			Areas:       []string{"sessions", "robustness", "registration"},
			apply: behindProxy(func() Rewrite {
				return func(p Publish) []Publish {
					var raw map[string]json.RawMessage
					if json.Unmarshal(p.Payload, &raw) != nil {
						return []Publish{p}
					}
					if string(raw["method"]) == `"RESPONSE"` && string(raw["result"]) == `"FAILURE"` && raw["fromTopic"] == nil {
						delete(raw, "reason")
						if b, err := json.Marshal(raw); err == nil {
							p.Payload = b
						}
					}
					return []Publish{p}
				}
			}),
		},
		{
			Name: "connector-as-confused-deputy",
			Description: "on the secured listener the connector registers any address, answers any fromTopic " +
				"and serves 3PCC to anyone (the reference connector without its secure-mode rules)",
			Breaks: []string{"ID-013", "ID-014", "ID-015"},
			Areas:  []string{"identity"},
			apply: func(t *scenarios.Target) {
				start := t.StartConnector
				t.StartConnector = func(ctx context.Context, p scenarios.ConnectorParams) (func(), error) {
					p.Secure, p.CallControllers = false, nil
					return start(ctx, p)
				}
			},
		},
		{
			Name:        "lets-ids-be-spoofed",
			Description: "the \"secured\" listener authenticates anyone and enforces no identity ACLs",
			// No authentication: any CONNECT with a client ID takes that session over.
			// Open-mode retention: a retained message in alice's inbox is kept.
			Breaks: []string{"ID-005", "ID-007", "ID-008", "ID-009", "ID-010", "ID-011", "ID-012", "ID-016"},
			Areas:  []string{"identity"},
			apply: func(t *scenarios.Target) {
				t.SecureTCP, t.SecureWS, t.SecurePath = t.TCP, t.WS, t.Decl.TopicPath
				t.Identities = nil
				for _, role := range []string{"alice", "bob", "mallory"} {
					id := role + "-spoofable"
					t.Identities = append(t.Identities, scenarios.Identity{ID: id, Username: id, Password: "any"})
				}
				t.ConnectorIdentity = &scenarios.Identity{ID: "connector", Username: "connector", Password: "any"}
			},
		},
	}
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
func (f Fault) Apply(t *scenarios.Target) {
	t.Decl.Name = "faulty: " + f.Name
	t.Decl.Description = f.Description
	f.apply(t)
}

// LabelFilter selects the fault's areas.
func (f Fault) LabelFilter() string {
	parts := make([]string, len(f.Areas))
	for i, a := range f.Areas {
		parts[i] = "area:" + a
	}
	return strings.Join(parts, " || ")
}
