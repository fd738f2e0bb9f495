package sim

import (
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// onMessage sees every publish an endpoint receives (on its receive goroutine) and
// measures the ones that belong to a call of this pool.
func (p *Pool) onMessage(se *simEP, topic string, m *spec.Message, raw []byte, at time.Time) {
	if m == nil {
		if st := p.cur.Load(); st != nil && len(raw) > 0 {
			st.rec.Add(metrics.Malformed, 1)
		}
		return
	}
	if m.SigSessID == "" {
		return // not in a session: registration and service traffic
	}
	c := p.calls.get(m.SigSessID)
	if c == nil {
		// A session this pool never created: the target made it up. (A retired call's
		// late copy carries an ID the pool issued and is ignored.)
		if st := p.cur.Load(); st != nil && !p.sessIDs.issued(m.SigSessID) {
			st.rec.Add(metrics.Unexpected, 1)
		}
		return
	}
	st := c.st
	st.rxMsgs.Add(1)
	st.rxBytes.Add(uint64(len(raw)))
	st.sampleSize(len(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quiet || st.frozen.Load() {
		return
	}
	st.match(c, se, topic, m, at)
}

// match finds the message of c that caused delivery m at endpoint se (topic is the
// publish's topic, whose last level is the sender) and counts what it was: the delivery of
// a message in flight, or a duplicate, a misrouted, an altered or an unexpected message.
// The cause is identified by method (and orig), transID, sigSessID (c), sender level,
// receiving inbox and content digest. Runs under c.mu.
func (st *stepRun) match(c *call, se *simEP, topic string, m *spec.Message, at time.Time) {
	rec := st.rec
	var (
		ck       *check
		from, to *simEP
		transID  string // expected
		digest   uint64 // expected; for candidates the digest found them
		ice      = iceRef{dir: -1}
	)
	caller, callee := c.caller, c.callee
	switch {
	case m.Method == spec.MethodStartSession:
		ck, from, to, transID, digest = &c.msgs[kStart], caller, callee, c.transID, st.digOffer
	case m.Method == spec.MethodPranswer:
		ck, from, to, transID, digest = &c.msgs[kPranswer], callee, caller, c.transID, st.digPranswer
	case m.Method == spec.MethodResponse && m.Orig == spec.MethodStartSession:
		ck, from, to, transID, digest = &c.msgs[kResponse], callee, caller, c.transID, st.digAccept
		if c.mode == modeReject {
			digest = st.digReject
		}
	case m.Method == spec.MethodStopSession:
		ck, from, to, digest = &c.msgs[kStop], caller, callee, c.stopDigest
		if c.stopSide == 1 {
			from, to = callee, caller
		}
	case m.Method == spec.MethodMessage:
		d := st.dig.message(m)
		ref, ok := st.digICE[d]
		if !ok {
			if isCandidate(m) {
				rec.Add(metrics.Altered, 1) // a candidate, but none of ours: changed on the way
			} else {
				rec.Add(metrics.Unexpected, 1)
			}
			return
		}
		ice, ck, digest = ref, &c.ice[ref.dir][ref.k], d
		from, to = caller, callee
		if ref.dir == 1 {
			from, to = callee, caller
		}
	default:
		rec.Add(metrics.Unexpected, 1)
		return
	}
	sender := spec.Sender(topic)
	switch ck.state.Load() {
	case unchecked:
		return // sent, deliberately not checked (see sendICE)
	case unsent:
		switch {
		case m.Method == spec.MethodStopSession && c.timedOut && se == callee && sender == caller.id:
			return // the caller endpoint's own cancel after its timeout (not checked)
		case (m.Method == spec.MethodStopSession || m.Method == spec.MethodResponse && m.Result != spec.ResultSuccess) &&
			sender != caller.id && sender != callee.id:
			return // the target itself ends the call (sender level its own): the outcome counts it
		}
		rec.Add(metrics.Unexpected, 1) // nothing of ours was sent that it could be
		return
	}
	if se != to || sender != from.id {
		rec.Add(metrics.Misrouted, 1)
		return
	}
	if m.TransID != transID || (ice.dir < 0 && st.dig.message(m) != digest) {
		rec.Add(metrics.Altered, 1)
		return
	}
	if !ck.state.CompareAndSwap(inFlight, delivered) {
		if ck.state.Load() == delivered {
			rec.Add(metrics.Duplicated, 1)
		}
		return // declared lost before it came: it stays lost
	}
	rec.Add(metrics.Delivered, 1)
	sent := ck.sent
	switch m.Method {
	case spec.MethodPranswer:
		c.pranswered = true
		rec.Record(metrics.PostDialDelay, c.intended, c.startSent, at)
	case spec.MethodResponse:
		c.responseAt = at
	case spec.MethodStopSession:
		if c.measureStop {
			rec.Record(metrics.Teardown, sent, sent, at)
		}
	case spec.MethodMessage:
		rec.Record(metrics.ICE, sent, sent, at)
		if ice.k < c.iceMax[ice.dir] {
			rec.Add(metrics.OutOfOrder, 1)
		}
		c.iceMax[ice.dir] = max(c.iceMax[ice.dir], ice.k)
	}
}

// isCandidate reports whether m is a MESSAGE trickling an ICE candidate.
func isCandidate(m *spec.Message) bool {
	w, ok, _ := m.WebRTC()
	return ok && w.Type == spec.ICECandType
}
