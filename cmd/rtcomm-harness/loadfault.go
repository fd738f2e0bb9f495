package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// loadFaultHelp is the --fault usage: a harness self-test, not a measurement.
const loadFaultHelp = `harness self-test: plant a fault in the reference connector the harness starts (its
publishes go through an MQTT proxy that breaks relayed ICE candidate MESSAGEs) and check that
the run reports it. KIND:N breaks the first N candidates, KIND:0.05 one in 20 (any share
in (0,1)). KIND is drop-ice (lost), dup-ice (duplicated), swap-ice (out_of_order: a
session's first candidate is held back until its second has gone), misroute-ice (misrouted
and lost: delivered to the sender's own inbox), wrong-sender-ice (misrouted and lost:
sender level replaced), alter-ice (altered and lost: candidate text changed), invent-ice
(unexpected: a made-up MESSAGE next to the candidate); drop-start drops relayed START_SESSIONs
instead (lost, and the call times out: its setup goes to setup_failed). Counts are exact with
--reject-share 0: a rejected call's caller candidates are not checked`

// loadFault is one fault planted by --fault. Its rewrite runs on the proxy's goroutine for
// the connector's connection; the mutex makes Applied safe to read at the end.
type loadFault struct {
	spec      string
	kind      string
	n         int64   // the first n candidates, or
	share     float64 // this share of them
	topicPath string

	mu      sync.Mutex
	seen    int64 // relayed candidates seen
	applied int64 // faults planted
	held    *faulty.Publish
	heldKey string
	paths   map[string]bool // swap-ice: session paths whose first candidate was seen
}

var loadFaultKinds = []string{"drop-ice", "dup-ice", "swap-ice", "misroute-ice", "wrong-sender-ice", "alter-ice", "invent-ice", "drop-start"}

// parseLoadFault parses --fault KIND:N or KIND:SHARE; "" is no fault.
func parseLoadFault(s, topicPath string) (*loadFault, error) {
	if s == "" {
		return nil, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	known := false
	for _, k := range loadFaultKinds {
		known = known || k == kind
	}
	if !ok || !known {
		return nil, fmt.Errorf("--fault %q: want KIND:N or KIND:SHARE with KIND one of %s", s, strings.Join(loadFaultKinds, ", "))
	}
	f := &loadFault{spec: s, kind: kind, topicPath: topicPath, paths: map[string]bool{}}
	if n, err := strconv.ParseInt(arg, 10, 64); err == nil && n >= 1 {
		f.n = n
	} else if v, err := strconv.ParseFloat(arg, 64); err == nil && v > 0 && v < 1 {
		f.share = v
	} else {
		return nil, fmt.Errorf("--fault %q: %q is neither a count >= 1 nor a share in (0,1)", s, arg)
	}
	return f, nil
}

// due reports whether the candidate just seen (f.seen of them so far) is to be broken.
func (f *loadFault) due() bool {
	if f.share > 0 {
		// Exactly floor(seen*share) of the first `seen`: one in 20 for 0.05, evenly spread.
		return math.Floor(float64(f.seen)*f.share) > math.Floor(float64(f.seen-1)*f.share)
	}
	return f.applied < f.n
}

// rewrite is the proxy's faulty.Rewrite: what becomes of one PUBLISH of the connector.
func (f *loadFault) rewrite(p faulty.Publish) []faulty.Publish {
	m, _ := spec.Decode(p.Payload)
	if m != nil && m.Method == spec.MethodStartSession && f.kind == "drop-start" {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen++
		if !f.due() {
			return []faulty.Publish{p}
		}
		f.applied++
		return nil
	}
	if m == nil || m.Method != spec.MethodMessage || f.kind == "drop-start" {
		return []faulty.Publish{p}
	}
	if w, ok, _ := m.WebRTC(); !ok || w.Type != spec.ICECandType || w.Candidate == nil {
		return []faulty.Publish{p}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen++
	if f.kind == "swap-ice" {
		return f.swap(p, m)
	}
	if !f.due() {
		return []faulty.Publish{p}
	}
	rest, _ := strings.CutPrefix(p.Topic, f.topicPath)
	receiver, sender, _ := strings.Cut(rest, "/")
	switch f.kind {
	case "drop-ice":
		f.applied++
		return nil
	case "dup-ice":
		f.applied++
		return []faulty.Publish{p, p}
	case "misroute-ice":
		if receiver == "" || sender == "" {
			return []faulty.Publish{p}
		}
		f.applied++
		p.Topic = f.topicPath + sender + "/" + sender
		return []faulty.Publish{p}
	case "wrong-sender-ice":
		if receiver == "" {
			return []faulty.Publish{p}
		}
		f.applied++
		p.Topic = f.topicPath + receiver + "/intruder"
		return []faulty.Publish{p}
	case "alter-ice":
		b, ok := alterCandidate(p.Payload)
		if !ok {
			return []faulty.Publish{p}
		}
		f.applied++
		p.Payload = b
		return []faulty.Publish{p}
	default: // invent-ice
		made := *m
		made.Payload = json.RawMessage(`{"chat":{"message":"made up by the target","from":"?"}}`)
		b, err := spec.Encode(&made)
		if err != nil {
			return []faulty.Publish{p}
		}
		f.applied++
		q := p
		q.Payload = b
		return []faulty.Publish{p, q}
	}
}

// swap holds back the first candidate of a session path (receiver inbox and sender) and
// sends it after the path's next candidate: a reordering within the session.
func (f *loadFault) swap(p faulty.Publish, m *spec.Message) []faulty.Publish {
	key := p.Topic + " " + m.SigSessID
	if f.held != nil && f.heldKey == key {
		held := *f.held
		f.held = nil
		f.applied++
		return []faulty.Publish{p, held}
	}
	first := !f.paths[key]
	if len(f.paths) < 100_000 {
		f.paths[key] = true
	}
	if f.held == nil && first && f.due() {
		f.held, f.heldKey = &p, key
		return nil
	}
	return []faulty.Publish{p}
}

// alterCandidate changes the candidate text of an ICE candidate MESSAGE.
func alterCandidate(payload []byte) ([]byte, bool) {
	var doc map[string]any
	if json.Unmarshal(payload, &doc) != nil {
		return nil, false
	}
	pl, _ := doc["payload"].(map[string]any)
	w, _ := pl["webrtc"].(map[string]any)
	c, _ := w["candidate"].(map[string]any)
	s, ok := c["candidate"].(string)
	if !ok {
		return nil, false
	}
	c["candidate"] = s + " generation 7"
	b, err := json.Marshal(doc)
	return b, err == nil
}

// Report says what the fault did, for the console and params.json.
func (f *loadFault) Report() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	verb := map[string]string{"drop-ice": "dropped", "dup-ice": "duplicated", "swap-ice": "swapped (held back)",
		"misroute-ice": "misrouted to the sender's inbox", "wrong-sender-ice": "misrouted with a wrong sender level",
		"alter-ice": "altered", "invent-ice": "shadowed by a made-up MESSAGE", "drop-start": "dropped"}[f.kind]
	what := "relayed ICE candidate MESSAGEs"
	if f.kind == "drop-start" {
		what = "relayed START_SESSIONs"
	}
	return fmt.Sprintf("%s %d of %d %s (--fault %s, a harness self-test)", verb, f.applied, f.seen, what, f.spec)
}

// Applied returns how many candidates the fault broke.
func (f *loadFault) Applied() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// via is the sim.Target.ConnectorVia that puts the fault between connector and broker.
func (f *loadFault) via(brokerURL string) (string, func(), error) {
	px, err := faulty.NewProxy(brokerURL, f.rewrite)
	if err != nil {
		return "", nil, err
	}
	return px.URL(), px.Close, nil
}
