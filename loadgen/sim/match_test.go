package sim

import (
	"context"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// bareStep is a pool without endpoints and a step with the default call model, for the
// receive path alone.
func bareStep(tb testing.TB) (*Pool, *stepRun, *metrics.Recorder) {
	tb.Helper()
	p := &Pool{}
	p.calls.init()
	p.sessIDs.init()
	rec := metrics.NewRecorder()
	st, err := p.newStep(Step{Calls: DefaultCallModel()}, rec, context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return p, st, rec
}

// TestUnknownSessionIsUnexpected: during a step, a delivery for a session this pool never
// created is a message the target made up (unexpected); one for a session it created whose
// call was retired is a late copy and is ignored; outside a step nothing is counted.
func TestUnknownSessionIsUnexpected(t *testing.T) {
	t.Parallel()
	p, st, rec := bareStep(t)
	se := &simEP{id: "lg-1"}
	retired := p.sessIDs.next() // issued, no longer in the call table
	deliver := func(sess string) {
		m := &spec.Message{Method: spec.MethodStopSession, SigSessID: sess, Reason: "hangup"}
		p.onMessage(se, "/rtcomm/lg-1/lg-2", m, []byte("{}"), time.Now())
	}
	deliver("0b5a4f7e-3c1d-4e2a-9f00-123456789abc")
	if n := rec.Tally().Unexpected; n != 0 {
		t.Errorf("outside a step: expected nothing counted, actual unexpected %d", n)
	}
	p.cur.Store(st)
	deliver("0b5a4f7e-3c1d-4e2a-9f00-123456789abc")
	deliver(retired)
	if n := rec.Tally().Unexpected; n != 1 {
		t.Errorf("a made-up session and a retired one: expected unexpected 1, actual %d", n)
	}
}
