package sim

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
)

// TestLedgerLossFromSend: a message is lost once the loss timeout has passed since its own
// send (not since its call ended), a delivery and the sweep settle it exactly once, a failed
// publish withdraws it, and in flight is counted from the states.
func TestLedgerLossFromSend(t *testing.T) {
	t.Parallel()
	rec := metrics.NewRecorder()
	l := &ledger{timeout: time.Second, rec: rec}
	rec.TrackInFlight(l, l.inFlight)
	var a, b, c, d check
	l.open(&a)
	l.closeSend(&a, nil)
	l.open(&b)
	l.closeSend(&b, nil)
	l.open(&c)
	l.closeSend(&c, errors.New("not connected")) // never went out: withdrawn
	l.open(&d)
	l.closeSend(&d, endpoint.ErrSessionEnded)
	if !b.state.CompareAndSwap(inFlight, delivered) {
		t.Fatal("delivery of b: expected it in flight")
	}
	rec.Add(metrics.Delivered, 1)
	if n := l.inFlight(); n != 1 {
		t.Errorf("in flight before the timeout: expected 1 (a), actual %d", n)
	}
	l.sweep(a.sent.Add(999 * time.Millisecond))
	if a.state.Load() != inFlight {
		t.Errorf("just before its loss timeout: expected a in flight, actual state %d", a.state.Load())
	}
	l.sweep(a.sent.Add(time.Second))
	if a.state.Load() != lost || b.state.Load() != delivered || c.state.Load() != unsent || d.state.Load() != unsent {
		t.Errorf("after the timeout: expected a lost, b delivered, c and d withdrawn; actual %d %d %d %d",
			a.state.Load(), b.state.Load(), c.state.Load(), d.state.Load())
	}
	if a.state.CompareAndSwap(inFlight, delivered) {
		t.Error("a delivery after the loss: expected it to stay lost")
	}
	rec.Close()
	tl := rec.Tally()
	if tl.Sent != 2 || tl.Delivered != 1 || tl.Lost != 1 || tl.InFlight != 0 || tl.Check() != nil {
		t.Errorf("tally: expected sent 2 = delivered 1 + lost 1 + in flight 0, actual %+v (%v)", tl, tl.Check())
	}
}

// TestDigestCanonical: a payload re-encoded without change (key order, spaces) digests the
// same; a changed value does not.
func TestDigestCanonical(t *testing.T) {
	t.Parallel()
	d := newDigester()
	a := json.RawMessage(`{"webrtc":{"type":"icecandidate","candidate":{"candidate":"c1","sdpMid":"0"}}}`)
	b := json.RawMessage(`{ "webrtc": { "candidate": { "sdpMid": "0", "candidate": "c1" }, "type": "icecandidate" } }`)
	c := json.RawMessage(`{"webrtc":{"type":"icecandidate","candidate":{"candidate":"c2","sdpMid":"0"}}}`)
	if d.parts("", "", a) != d.parts("", "", b) {
		t.Error("re-encoded payload: expected the same digest")
	}
	if d.parts("", "", a) == d.parts("", "", c) || d.parts("", "x", nil) == d.parts("", "y", nil) ||
		d.parts("SUCCESS", "", nil) == d.parts("FAILURE", "", nil) {
		t.Error("changed content: expected another digest")
	}
	if d.parts("", "", nil) != d.parts("", "", json.RawMessage("null")) {
		t.Error("absent and null payload: expected the same digest")
	}
}

// TestSessionIDsIssued: the pool recognizes the session IDs it issued, and no other.
func TestSessionIDsIssued(t *testing.T) {
	t.Parallel()
	var s, other sessionIDs
	s.init()
	other.init()
	id := s.next()
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("session ID %q: expected a version-4 RFC 4122 UUID, actual %v %v %v", id, err, u.Version(), u.Variant())
	}
	if !s.issued(id) {
		t.Errorf("%s: expected issued", id)
	}
	for _, bad := range []string{other.next(), uuid.NewString(), "not-a-uuid", ""} {
		if s.issued(bad) {
			t.Errorf("%q: expected not issued by this pool", bad)
		}
	}
	// The next ID of this pool, not yet issued.
	future, _ := uuid.Parse(id)
	future[15]++
	if s.issued(future.String()) {
		t.Errorf("%s: an ID not yet issued: expected not issued", future)
	}
}
