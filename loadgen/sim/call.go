package sim

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// RejectReason is the reason a simulated callee rejects with; a FAILURE with another
// reason counts as a failure, not a reject.
const RejectReason = "busy"

type mode uint8

const (
	modeAnswer mode = iota
	modeReject
	modeNoAnswer
)

// Checked messages of a call besides ICE candidates.
const (
	kStart = iota
	kPranswer
	kResponse
	kStop
	nKinds
)

// call is one simulated call, shared by its caller and callee (both in this process).
type call struct {
	st             *stepRun
	id             string
	caller, callee *simEP
	mode           mode
	hold           time.Duration
	intended       time.Time
	transID        string // of the START_SESSION, and so of its PRANSWER and RESPONSE

	mu          sync.Mutex
	msgs        [nKinds]check
	ice         [2][]check // [0] caller->callee, [1] callee->caller
	iceMax      [2]int     // highest candidate index delivered per direction, -1 none
	stopSide    int        // who sent the checked STOP_SESSION: 0 caller, 1 callee
	stopDigest  uint64     // its content digest (the reason)
	startSent   time.Time
	pranswered  bool
	responseAt  time.Time
	callerSess  *endpoint.Session
	calleeSess  *endpoint.Session
	holdTimer   *time.Timer
	measureStop bool // the STOP is a measured teardown
	established bool
	ended       bool // no more messages are sent
	finished    bool // retirement scheduled
	quiet       bool // hung up unmeasured at the end of a step: arrivals are ignored
	timedOut    bool // the caller's endpoint gave up and sent its own STOP_SESSION (unchecked)
}

// callTable maps sigSessID to live calls, sharded to keep receive goroutines apart.
type callTable struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*call
	}
}

func (t *callTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = map[string]*call{}
	}
}

func (t *callTable) shard(id string) int { return int(maphash.String(t.seed, id) % 64) }

func (t *callTable) put(c *call) {
	s := &t.shards[t.shard(c.id)]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
}

func (t *callTable) get(id string) *call {
	s := &t.shards[t.shard(id)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (t *callTable) del(id string) {
	s := &t.shards[t.shard(id)]
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (t *callTable) all() []*call {
	var out []*call
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, c := range s.m {
			out = append(out, c)
		}
		s.mu.Unlock()
	}
	return out
}

// stepRun is the state of one CallStep that calls and handlers share.
type stepRun struct {
	p      *Pool
	rec    *metrics.Recorder
	model  CallModel
	offer  json.RawMessage
	answer json.RawMessage
	cands  [2][]spec.ICECandidate
	// candJSON[side][k] is cands[side][k] as the MESSAGE payload, encoded once per step.
	candJSON [2][]json.RawMessage
	callCtx  context.Context // ends when draining is over

	led *ledger   // checked messages, the loss sweep and the in-flight count
	dig *digester // content digests of deliveries
	// Expected content digests: the fixtures every call sends.
	digOffer, digPranswer, digAccept, digReject uint64
	digICE                                      map[uint64]iceRef

	rngMu sync.Mutex
	rng   *rand.Rand

	inSetup atomic.Int64  // calls waiting for their outcome
	placed  atomic.Uint64 // calls whose goroutine has started (see place)
	frozen  atomic.Bool   // the step's accounting is final: arrivals are no longer matched

	// Messages received by endpoints for this step's calls, for the baseline.
	rxMsgs, rxBytes atomic.Uint64
	sizeMu          sync.Mutex
	sizes           []int // a sample of their sizes
}

// iceRef names one candidate a call trickles: direction (0 caller->callee) and index.
type iceRef struct{ dir, k int }

func (st *stepRun) float() float64 {
	st.rngMu.Lock()
	defer st.rngMu.Unlock()
	return st.rng.Float64()
}

// place runs one call from its intended start to its outcome; the rest (ICE, hold,
// teardown) runs on timers.
func (st *stepRun) place(intended time.Time) {
	// Counted before anything else: the drain waits until every call the schedule started
	// has begun (placed) and reached its outcome (inSetup), so the last calls of the window
	// are not cut off as aborted by a drain that looked before their goroutines ran.
	st.inSetup.Add(1)
	defer st.inSetup.Add(-1)
	st.placed.Add(1)
	rec, m := st.rec, st.model
	a := rec.Begin()
	st.rngMu.Lock()
	caller, callee, ok := st.p.pick(st.rng)
	u := st.rng.Float64()
	hold := time.Duration(st.rng.ExpFloat64() * float64(m.HoldMean))
	st.rngMu.Unlock()
	if !ok {
		a.End(metrics.Failure, "fewer than two registered endpoints")
		return
	}
	c := &call{st: st, id: st.p.sessIDs.next(), transID: uuid.NewString(), caller: caller, callee: callee,
		intended: intended, iceMax: [2]int{-1, -1}}
	switch {
	case u < m.RejectShare:
		c.mode = modeReject
	case u < m.RejectShare+m.NoAnswerShare:
		c.mode = modeNoAnswer
	}
	// A hang-up before both sides finished trickling would make the connector drop the
	// late candidates (the session is gone): hold at least until the last one.
	c.hold = max(hold, time.Duration(m.ICE)*m.ICEGap+500*time.Millisecond)
	c.ice[0] = make([]check, len(st.cands[0]))
	c.ice[1] = make([]check, len(st.cands[1]))
	caller.busy.Add(1)
	callee.busy.Add(1)
	st.p.calls.put(c)

	c.mu.Lock()
	st.led.open(&c.msgs[kStart])
	c.startSent = c.msgs[kStart].sent
	c.mu.Unlock()
	s, err := caller.ep.Call(st.callCtx, callee.id, st.offer, endpoint.WithSessionID(c.id), endpoint.WithTransID(c.transID))
	st.led.closeSend(&c.msgs[kStart], err)
	if err != nil {
		if st.callCtx.Err() == nil {
			a.End(metrics.Failure, "send START_SESSION: "+short(err))
			rec.Record(metrics.SetupFailed, intended, c.startSent, time.Now())
		}
		c.finish()
		return
	}
	c.mu.Lock()
	c.callerSess = s
	c.mu.Unlock()
	c.trickle(0, s)

	actx, cancel := context.WithTimeout(st.callCtx, m.RingTimeout)
	defer cancel()
	_, err = s.Await(actx)
	c.mu.Lock()
	respAt, startSent, pranswered := c.responseAt, c.startSent, c.pranswered
	c.mu.Unlock()
	// end records the outcome; failures and timeouts also get their setup time (until the
	// outcome was known) in setup_failed, so failing calls do not flatter the latency.
	end := func(o metrics.Outcome, reason string) {
		if a.End(o, reason) && (o == metrics.Failure || o == metrics.Timeout) {
			rec.Record(metrics.SetupFailed, intended, startSent, time.Now())
		}
	}
	var rj *endpoint.Rejected
	var stopped *endpoint.Stopped
	switch {
	case err == nil:
		if respAt.IsZero() {
			respAt = time.Now()
		}
		rec.Record(metrics.Setup, intended, startSent, respAt)
		a.End(metrics.Success, "")
		c.mu.Lock()
		c.established = true
		if !c.ended {
			c.holdTimer = time.AfterFunc(c.hold, func() { c.hangup(true) })
		}
		c.mu.Unlock()
		return
	case errors.As(err, &rj):
		c.endNoSend()
		switch {
		case c.mode == modeReject && rj.Reason == RejectReason:
			end(metrics.Rejected, RejectReason)
		case strings.Contains(strings.ToLower(rj.Reason), "timeout"):
			end(metrics.Timeout, "connector: "+rj.Reason)
		default:
			end(metrics.Failure, rj.Reason)
		}
	case errors.Is(err, endpoint.ErrTimeout):
		c.mu.Lock()
		c.ended, c.timedOut = true, true // the endpoint cancels with STOP_SESSION itself
		c.mu.Unlock()
		if pranswered {
			end(metrics.Timeout, "no final RESPONSE after PRANSWER")
		} else {
			end(metrics.Timeout, "no reply to START_SESSION within "+m.SetupTimeout.String())
		}
	case errors.As(err, &stopped):
		c.endNoSend()
		end(metrics.Failure, "STOP_SESSION before the answer: "+stopped.Reason)
	case st.callCtx.Err() != nil:
		// Draining is over: the attempt stays open and the recorder counts it aborted.
		c.endNoSend()
	case actx.Err() != nil:
		// Ring timeout: the caller gives up and cancels, as a user would.
		if pranswered {
			end(metrics.NoAnswer, "no answer within "+m.RingTimeout.String())
		} else {
			end(metrics.Timeout, "no final RESPONSE within "+m.RingTimeout.String())
		}
		c.hangupFrom(0, false, "no answer")
		return
	default:
		c.endNoSend()
		end(metrics.Failure, short(err))
	}
	c.finish()
}

// trickle sends side's K candidates: the first at once, then one every ICEGap, the way
// browsers hand them to signaling as gathering proceeds. Each send schedules the next, so
// the generator itself never reorders them.
func (c *call) trickle(side int, s *endpoint.Session) {
	if len(c.st.cands[side]) == 0 {
		return
	}
	c.trickleFrom(side, 0, time.Now(), s)
}

func (c *call) trickleFrom(side, k int, t0 time.Time, s *endpoint.Session) {
	c.sendICE(side, k, s)
	if k+1 >= len(c.st.cands[side]) {
		return
	}
	due := t0.Add(time.Duration(k+1) * c.st.model.ICEGap)
	time.AfterFunc(time.Until(due), func() { c.trickleFrom(side, k+1, t0, s) })
}

func (c *call) sendICE(side, k int, s *endpoint.Session) {
	st := c.st
	// A rejecting callee ends the session while the caller may still be trickling: the
	// connector rightly drops what crosses the FAILURE, so those candidates are not checked.
	checked := !(side == 0 && c.mode == modeReject)
	c.mu.Lock()
	// Draining is over: no new sends (a held call's remaining candidates stay unsent).
	if c.ended || st.callCtx.Err() != nil {
		c.mu.Unlock()
		return
	}
	slot := &c.ice[side][k]
	if checked {
		st.led.open(slot)
	} else {
		slot.state.Store(unchecked)
	}
	c.mu.Unlock()
	err := s.Send(st.callCtx, st.candJSON[side][k])
	if checked {
		st.led.closeSend(slot, err)
	}
}

// mayHaveGoneOut reports whether a failed publish may still reach its recipient: the
// context ended while waiting for the client (reference/mqttc hands the message to paho
// before it waits), and the session had not ended before the send. Such a message stays
// in flight and counts as sent, and its arrival is a delivery; any other error withdraws it.
func mayHaveGoneOut(err error) bool {
	return !errors.Is(err, endpoint.ErrSessionEnded) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// endNoSend marks the call over without a message of ours.
func (c *call) endNoSend() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// hangup ends an established call with STOP_SESSION from a random side (measured).
func (c *call) hangup(measured bool) {
	side := 0
	if c.st.float() < 0.5 {
		side = 1
	}
	c.hangupFrom(side, measured, "hangup")
}

func (c *call) hangupFrom(side int, measured bool, reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	if c.holdTimer != nil {
		c.holdTimer.Stop()
	}
	s := c.callerSess
	if side == 1 {
		s = c.calleeSess
	}
	if s == nil { // the callee's session is unknown until its invite arrived
		s, side = c.callerSess, 0
	}
	// A session the target already ended sends no STOP_SESSION (endpoint.Session.Stop);
	// after the step stopped (callCtx) no new message is checked: the drain is settling them.
	checked := !c.quiet && c.st.callCtx.Err() == nil && s != nil && s.Err() == nil
	if checked {
		c.stopSide, c.stopDigest = side, c.st.dig.parts("", reason, nil)
		c.st.led.open(&c.msgs[kStop])
		c.measureStop = measured
	} else if s != nil {
		c.msgs[kStop].state.Store(unchecked) // e.g. a hold ending during the drain: its arrival is expected
	}
	c.mu.Unlock()
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Stop(ctx, reason)
		cancel()
		if checked {
			c.st.led.closeSend(&c.msgs[kStop], err)
		}
	}
	c.finish()
}

// finish marks the call over (no more sends) and schedules its retirement from the call
// table: the loss sweep settles its messages within the loss timeout, and copies that
// arrive within a second timeout are still matched (counted as duplicates); later ones are
// ignored. Session IDs stay recognizable (sessionIDs), so a retired call's late messages
// are never taken for made-up ones.
func (c *call) finish() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished, c.ended = true, true
	c.mu.Unlock()
	c.caller.busy.Add(-1)
	c.callee.busy.Add(-1)
	time.AfterFunc(2*c.st.model.LossTimeout, func() { c.st.p.calls.del(c.id) })
}

// onInvite runs on the callee's receive goroutine: the callee's behaviour is scheduled
// on its own goroutine so the receive path never waits on paho.
func (p *Pool) onInvite(se *simEP, inv *endpoint.Invite) {
	c := p.calls.get(inv.Session().ID())
	if c == nil || c.callee != se {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = inv.Reject(ctx, "not a call of this load generator")
		}()
		return
	}
	c.mu.Lock()
	c.calleeSess = inv.Session()
	c.mu.Unlock()
	arrived := time.Now()
	go c.answer(inv, arrived)
}

// answer is the callee: PRANSWER after PranswerDelay, then answer, reject or let it ring.
func (c *call) answer(inv *endpoint.Invite, arrived time.Time) {
	st, m := c.st, c.st.model
	ctx := st.callCtx
	wait := func(d time.Duration) bool {
		if w := time.Until(arrived.Add(d)); w > 0 {
			t := time.NewTimer(w)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	send := func(kind int, f func() error) bool {
		c.mu.Lock()
		if c.ended || ctx.Err() != nil {
			c.mu.Unlock()
			return false
		}
		st.led.open(&c.msgs[kind])
		c.mu.Unlock()
		err := f()
		st.led.closeSend(&c.msgs[kind], err)
		return err == nil
	}
	if m.PranswerDelay >= 0 || c.mode == modeNoAnswer {
		if !wait(max(m.PranswerDelay, 0)) {
			return
		}
		if !send(kPranswer, func() error { return inv.Pranswer(ctx, endpoint.PranswerOptions{}) }) {
			return
		}
	}
	if c.mode == modeNoAnswer {
		return // rings until the caller gives up
	}
	if !wait(m.AnswerDelay) {
		return
	}
	if c.mode == modeReject {
		send(kResponse, func() error { return inv.Reject(ctx, RejectReason) })
		return
	}
	var s *endpoint.Session
	if send(kResponse, func() error {
		var err error
		s, err = inv.Accept(ctx, st.answer)
		return err
	}) {
		c.trickle(1, s)
	}
}

const maxSizeSample = 4096

func (st *stepRun) sampleSize(n int) {
	st.sizeMu.Lock()
	if len(st.sizes) < maxSizeSample {
		st.sizes = append(st.sizes, n)
	}
	st.sizeMu.Unlock()
}

// short turns an error into a failure reason without endpoint IDs or topics (the tally
// keeps at most 64 distinct reasons): the innermost message, e.g. "not Connected".
func short(err error) string {
	switch {
	case errors.Is(err, endpoint.ErrConnectionLost):
		return "connection to the broker lost"
	case errors.Is(err, endpoint.ErrClosed):
		return "endpoint closed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "run ended"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
