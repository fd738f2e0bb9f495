// Package ice holds the conformance specs of the ICE candidate exchange (area ice).
package ice

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	. "github.com/rtcomm-harness/rtcomm-harness/scenarios/framework" //nolint:revive
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// candidateMsgs matches the trickled-candidate MESSAGEs of one session.
func candidateMsgs(sigSessID string) Match {
	return func(m Msg) bool {
		d := m.Decode()
		if d == nil || d.Method != spec.MethodMessage || d.SigSessID != sigSessID {
			return false
		}
		w, ok, _ := d.WebRTC()
		return ok && w.Type == spec.ICECandType
	}
}

// sendAll sends payloads as in-session MESSAGEs, in order.
func sendAll(e *Env, s *endpoint.Session, payloads []json.RawMessage) {
	GinkgoHelper()
	c, cancel := e.OpContext()
	defer cancel()
	for i, p := range payloads {
		Harness(s.Send(c, p), fmt.Sprintf("send candidate %d", i))
	}
}

// candidateKeys returns the candidate strings of sent payloads.
func candidateKeys(sent []json.RawMessage) []string {
	want := make([]string, len(sent))
	for i, p := range sent {
		var pl struct {
			WebRTC spec.WebRTCPayload `json:"webrtc"`
		}
		_ = json.Unmarshal(p, &pl)
		want[i] = CandidateKey(pl.WebRTC.Candidate)
	}
	return want
}

// receivedKeys returns the candidate strings of received MESSAGEs.
func receivedKeys(got []Msg) []string {
	have := make([]string, len(got))
	for i, m := range got {
		w, _, _ := m.Decode().WebRTC()
		have[i] = CandidateKey(w.Candidate)
	}
	return have
}

// candidateCounts compares what arrived with what was sent as multisets: each candidate
// as often as it was sent (re-sent ones included), in any order (ICE-003).
func candidateCounts(sent []json.RawMessage, got []Msg) (ok bool, why string) {
	want, have := candidateKeys(sent), receivedKeys(got)
	count := map[string]int{}
	for _, k := range want {
		count[k]++
	}
	for _, k := range have {
		count[k]--
	}
	var lost, extra []string
	for _, k := range want {
		if count[k] > 0 {
			lost = append(lost, k)
			count[k]--
		}
	}
	for _, k := range have {
		if count[k] < 0 {
			extra = append(extra, k)
			count[k]++
		}
	}
	if len(lost) == 0 && len(extra) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d sent, %d received; %d missing %s; %d extra (duplicated or never sent) %s",
		len(want), len(have), len(lost), strings.Join(First(lost, 2), ", "), len(extra), strings.Join(First(extra, 2), ", "))
}

// candidateOrder reports whether the candidates that arrived came in the order they were
// sent (ICE-005). Loss and duplication are ICE-003's: a received candidate is matched to
// its next unmatched occurrence in sent order, and one found only earlier is out of order.
func candidateOrder(sent []json.RawMessage, got []Msg) (ok bool, why string) {
	want, have := candidateKeys(sent), receivedKeys(got)
	used := make([]bool, len(want))
	next := 0 // everything before next is matched or was skipped over
	for i, k := range have {
		j := next
		for j < len(want) && (used[j] || want[j] != k) {
			j++
		}
		if j == len(want) {
			for e := 0; e < next; e++ {
				if !used[e] && want[e] == k {
					return false, fmt.Sprintf("received #%d %s after candidates sent later than it", i, k)
				}
			}
			continue // never sent or one copy too many: ICE-003 reports it
		}
		used[j] = true
		next = j
	}
	return true, ""
}

// missing counts the sent candidates that are absent from got.
func missing(sent []json.RawMessage, got []Msg) int {
	have := map[string]int{}
	for _, m := range got {
		w, _, _ := m.Decode().WebRTC()
		have[CandidateKey(w.Candidate)]++
	}
	n := 0
	for _, p := range sent {
		var pl struct {
			WebRTC spec.WebRTCPayload `json:"webrtc"`
		}
		_ = json.Unmarshal(p, &pl)
		k := CandidateKey(pl.WebRTC.Candidate)
		if have[k] > 0 {
			have[k]--
		} else {
			n++
		}
	}
	return n
}

// ICE candidate trickle (PROTOCOL.md, "Flows: Call": both sides trickle candidates in MESSAGEs).
var _ = Describe("ICE exchange", Area("ice"), func() {
	for _, sh := range Shapes {

		It(sh.In("relays realistic candidate sets both ways, before and after the answer, in order, none lost or duplicated"), Req("ICE-001", "ICE-002", "ICE-003", "ICE-005", "MSG-001", "MSG-002"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			// rtcomm.js-shaped parties hold early candidates back until the PRANSWER, then send
			// them with the START_SESSION's transID to the connector's topic.
			trickleBothWays(e, e.Party("bob", sh.O()), e.Party("alice", sh.O()))
		}, SpecTimeout(2*time.Minute))

		It(sh.In("passes IPv4, IPv6, mDNS, srflx, relay and TCP candidates and end-of-candidates byte-for-byte"), Req("ICE-004", "ICE-001"), func(ctx SpecContext) {
			e := NewEnv(ctx, WithConnector())
			bob := e.Party("bob", sh.O())
			alice := e.Party("alice", sh.O())
			out, _ := e.Connected(alice, bob, MustOffer("chrome-audio-offer"), MustAnswer("chrome-audio-offer"))
			var sent []json.RawMessage
			for _, set := range []string{"host-ipv4-udp", "host-ipv6", "mdns-host", "srflx", "relay", "tcp-host", "end-of-candidates"} {
				ps, err := fixtures.CandidatePayloads(set)
				Harness(err, "fixture "+set)
				sent = append(sent, ps...)
			}
			sendAll(e, out, sent)
			got := bob.Inbox().Collect(e.Ctx, e.Reply(), len(sent), candidateMsgs(out.ID()))
			ok, why := candidateCounts(sent, got)
			e.CheckSoft("ICE-004", ok, fmt.Sprintf("all %d candidates with identical candidate strings, sdpMid and sdpMLineIndex", len(sent)), "%s", why)
			// Payloads are compared by candidate, not by position: order is ICE-005's.
			byKey := map[string]json.RawMessage{}
			for i, k := range candidateKeys(sent) {
				byKey[k] = sent[i]
			}
			var altered []string
			for i, k := range receivedKeys(got) {
				if p, ok := byKey[k]; ok && !PayloadEqual(p, got[i].Decode().Payload) {
					altered = append(altered, fmt.Sprintf("#%d sent %s, received %s", i, p, Brief(got[i].Decode().Payload)))
				}
			}
			Check("ICE-004", len(altered) == 0, "every candidate payload unchanged", "%s", strings.Join(First(altered, 2), "; "))
		}, SpecTimeout(time.Minute))
	}
})

// trickleBothWays runs one call from alice to bob with full candidate sets trickled both
// ways, before and after the answer, and checks what arrived. ICE-002 ICE-003 ICE-005 MSG-002
func trickleBothWays(e *Env, bob, alice *Party) {
	GinkgoHelper()
	callerSet, err := fixtures.CandidatePayloads("caller-full")
	Harness(err, "fixture")
	calleeSet, err := fixtures.CandidatePayloads("callee-full")
	Harness(err, "fixture")
	Harness(ErrIf(len(callerSet) < 20 || len(calleeSet) < 20, "candidate fixtures smaller than 20"), "fixture")

	out := alice.Call(bob.ID(), MustOffer("chrome-av-offer"))
	half := len(callerSet) / 2
	sendAll(e, out, callerSet[:half]) // before the callee even answered
	inv := bob.Invite("SESS-002")
	c, cancel := e.OpContext()
	defer cancel()
	Harness(inv.Pranswer(c, endpoint.PranswerOptions{}), "pranswer")
	alice.Need("SESS-005", "PRANSWER at alice", And(IsMethod(spec.MethodPranswer), InSession(out.ID())))
	calleeHalf := len(calleeSet) / 2
	sendAll(e, inv.Session(), calleeSet[:calleeHalf]) // callee trickles before its answer
	in, err := inv.Accept(c, MustAnswer("chrome-av-offer"))
	Harness(err, "accept")
	_, err = alice.Await(out)
	Harness(err, "await answer")
	sendAll(e, out, callerSet[half:])
	sendAll(e, in, calleeSet[calleeHalf:])
	// Browsers re-send candidates (rtcomm.js does): duplicates sent are duplicates delivered.
	resent := []json.RawMessage{callerSet[0], callerSet[1]}
	sendAll(e, out, resent)
	callerSent := append(append([]json.RawMessage{}, callerSet...), resent...)

	atBob := bob.Inbox().Collect(e.Ctx, e.Reply(), len(callerSent), candidateMsgs(out.ID()))
	atBob = append(atBob, bob.Inbox().Collect(e.Ctx, e.Quiet(), 0, candidateMsgs(out.ID()))...)
	atAlice := alice.Inbox().Collect(e.Ctx, e.Reply(), len(calleeSet), candidateMsgs(out.ID()))
	atAlice = append(atAlice, alice.Inbox().Collect(e.Ctx, e.Quiet(), 0, candidateMsgs(out.ID()))...)

	e.CheckSoft("ICE-002", len(atBob) > 0 && len(atAlice) > 0, "candidates relayed in both directions",
		"%d reached bob, %d reached alice", len(atBob), len(atAlice))
	e.CheckSoft("ICE-002", missing(callerSet[:half], atBob) == 0 && missing(calleeSet[:calleeHalf], atAlice) == 0,
		"candidates trickled before the answer relayed both ways",
		"%d of alice's %d and %d of bob's %d early candidates missing", missing(callerSet[:half], atBob), half,
		missing(calleeSet[:calleeHalf], atAlice), calleeHalf)
	e.CheckSoft("ICE-002", missing(callerSet[half:], atBob) == 0 && missing(calleeSet[calleeHalf:], atAlice) == 0,
		"candidates trickled after the answer relayed both ways",
		"%d of alice's and %d of bob's later candidates missing", missing(callerSet[half:], atBob), missing(calleeSet[calleeHalf:], atAlice))
	ok, why := candidateCounts(callerSent, atBob)
	e.CheckSoft("ICE-003", ok, fmt.Sprintf("alice's %d candidates (2 re-sent) at bob, once each", len(callerSent)), "%s", why)
	ok, why = candidateCounts(calleeSet, atAlice)
	e.CheckSoft("ICE-003", ok, fmt.Sprintf("bob's %d candidates at alice, once each", len(calleeSet)), "%s", why)
	ok, why = candidateOrder(callerSent, atBob)
	e.CheckSoft("ICE-005", ok, "alice's candidates at bob in the order sent", "%s", why)
	ok, why = candidateOrder(calleeSet, atAlice)
	e.CheckSoft("ICE-005", ok, "bob's candidates at alice in the order sent", "%s", why)
	var wrongTopic []string
	for _, m := range atBob {
		if m.Sender() != alice.ID() {
			wrongTopic = append(wrongTopic, m.Topic)
		}
	}
	e.CheckSoft("MSG-002", len(wrongTopic) == 0, "candidate MESSAGEs at topics ending in /"+alice.ID(), "%s", strings.Join(First(wrongTopic, 3), "; "))
}
