package sim

import (
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// BenchmarkMatchDelivery is the generator's own work to match one delivered ICE candidate to
// its cause (digest, sender level, inbox, transID, state) and count it: the cost the
// matching adds per received message (docs/PERFORMANCE.md, Load generator).
func BenchmarkMatchDelivery(b *testing.B) {
	p, st, rec := bareStep(b)
	caller, callee := &simEP{id: "lg-1"}, &simEP{id: "lg-2"}
	c := &call{st: st, id: p.sessIDs.next(), caller: caller, callee: callee, iceMax: [2]int{-1, -1}}
	c.ice[0] = make([]check, len(st.cands[0]))
	raw, err := spec.Encode(&spec.Message{Method: spec.MethodMessage, FromTopic: "/rtcomm/connector/x", SigSessID: c.id,
		Payload: spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.ICECandType, Candidate: &st.cands[0][1]})})
	if err != nil {
		b.Fatal(err)
	}
	m, err := spec.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	topic := "/rtcomm/lg-2/lg-1"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.ice[0][1].state.Store(inFlight)
		c.iceMax[0] = -1
		st.match(c, callee, topic, m, c.ice[0][1].sent)
	}
	b.StopTimer()
	if tl := rec.Tally(); tl.Delivered == 0 || tl.Altered+tl.Misrouted+tl.Unexpected != 0 {
		b.Fatalf("expected deliveries only, actual %+v", tl)
	}
}
