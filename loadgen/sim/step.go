package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func (m *CallModel) defaults() {
	d := DefaultCallModel()
	if m.Offer == "" {
		m.Offer = d.Offer
	}
	if m.ICEGap <= 0 {
		m.ICEGap = d.ICEGap
	}
	if m.RingTimeout <= 0 {
		m.RingTimeout = d.RingTimeout
	}
	if m.HoldMean <= 0 {
		m.HoldMean = d.HoldMean
	}
	if m.SetupTimeout <= 0 {
		m.SetupTimeout = d.SetupTimeout
	}
	if m.LossTimeout <= 0 {
		m.LossTimeout = d.LossTimeout
	}
	m.ICE = max(m.ICE, 0)
}

// Validate checks a call model.
func (m CallModel) Validate() error {
	switch {
	case m.RejectShare < 0 || m.NoAnswerShare < 0 || m.RejectShare+m.NoAnswerShare > 1:
		return fmt.Errorf("call model: reject share %g and no-answer share %g must be >= 0 and add up to at most 1",
			m.RejectShare, m.NoAnswerShare)
	case m.AnswerDelay < 0:
		return fmt.Errorf("call model: answer delay %s is negative", m.AnswerDelay)
	}
	return nil
}

// candidates picks k of a fixture set's candidates, spread over it (host first, then
// server-reflexive and relay, as gathering produces them).
func candidates(set string, k int) ([]spec.ICECandidate, error) {
	all, err := fixtures.Candidates(set)
	if err != nil {
		return nil, err
	}
	var cs []spec.ICECandidate
	for _, c := range all {
		if c.Candidate != "" { // end-of-candidates carries no candidate to sequence
			cs = append(cs, c)
		}
	}
	if k > len(cs) {
		return nil, fmt.Errorf("ICE: %d candidates asked, fixture %s has %d", k, set, len(cs))
	}
	out := make([]spec.ICECandidate, k)
	for i := range out {
		out[i] = cs[i*len(cs)/k]
	}
	return out, nil
}

func (p *Pool) newStep(s Step, rec *metrics.Recorder, callCtx context.Context) (*stepRun, error) {
	m := s.Calls
	if m == (CallModel{}) {
		m = DefaultCallModel()
	}
	m.defaults()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	offer, err := fixtures.OfferPayload(m.Offer)
	if err != nil {
		return nil, fmt.Errorf("call model: offer: %w", err)
	}
	ans, err := fixtures.AnswerFor(m.Offer)
	if err != nil {
		return nil, fmt.Errorf("call model: %w", err)
	}
	st := &stepRun{p: p, rec: rec, model: m, offer: offer, answer: ans.Payload(), callCtx: callCtx,
		rng: rand.New(rand.NewPCG(s.Seed, uint64(p.cfg.Shard.Index)+1)),
		led: &ledger{timeout: m.LossTimeout, rec: rec}, dig: newDigester(), digICE: map[uint64]iceRef{}}
	// The content each call sends, digested as match digests deliveries (the endpoint
	// library sends these payloads, results and reasons unchanged).
	st.digOffer = st.dig.parts("", "", offer)
	st.digPranswer = st.dig.parts("", "", nil)
	st.digAccept = st.dig.parts(string(spec.ResultSuccess), "", st.answer)
	st.digReject = st.dig.parts(string(spec.ResultFailure), RejectReason, nil)
	for side, set := range []string{"caller-full", "callee-full"} {
		if st.cands[side], err = candidates(set, m.ICE); err != nil {
			return nil, fmt.Errorf("call model: %w", err)
		}
		st.candJSON[side] = make([]json.RawMessage, len(st.cands[side]))
		for k, c := range st.cands[side] {
			// Encoded once per step, not per send: what Session.SendCandidate would send.
			st.candJSON[side][k] = spec.WebRTCPayloadJSON(spec.WebRTCPayload{Type: spec.ICECandType, Candidate: &c})
			d := st.dig.parts("", "", st.candJSON[side][k])
			if _, dup := st.digICE[d]; dup {
				return nil, fmt.Errorf("call model: ICE candidate %q is sent twice: deliveries could not be told apart", c.Candidate)
			}
			st.digICE[d] = iceRef{dir: side, k: k}
		}
	}
	return st, nil
}

// CallStep runs open-loop calls at Shard.Rate(s.Rate) for s.Duration against the pool and
// writes a results directory dir (which must not hold a finished run). After the window it
// drains (calls being set up get their outcome, bounded by s.Drain; then every checked
// message is delivered or lost, bounded by the loss timeout after the last send), optionally
// runs the baseline, finalizes, and hangs up the calls still held, unmeasured. ctx ending stops
// scheduling: the run is finalized as interrupted after a short drain. If endpoints lose
// their connections mid-run the step stops the same way and the error wraps ErrTargetLost;
// the summary is returned whenever one was written.
func (p *Pool) CallStep(ctx context.Context, dir string, s Step) (*results.Summary, error) {
	if s.Duration <= 0 {
		return nil, fmt.Errorf("call step: duration %s must be positive", s.Duration)
	}
	if s.Rate <= 0 {
		return nil, fmt.Errorf("call step: rate %g must be positive", s.Rate)
	}
	rec := s.Recorder
	if rec == nil {
		rec = metrics.NewRecorder()
	}
	if s.Seed == 0 {
		s.Seed = rand.Uint64()
	}
	callCtx, stopCalls := context.WithCancel(context.Background())
	defer stopCalls()
	st, err := p.newStep(s, rec, callCtx)
	if err != nil {
		return nil, err
	}
	m := st.model
	if s.Drain <= 0 {
		s.Drain = m.RingTimeout + m.SetupTimeout
	}
	rate := p.cfg.Shard.Rate(s.Rate)
	var pacer loadgen.Pacer
	switch s.Pacer {
	case "", "poisson":
		s.Pacer = "poisson"
		pacer = &loadgen.PoissonPacer{Rate: rate, Rand: rand.New(rand.NewPCG(s.Seed, uint64(p.cfg.Shard.Index)))}
	case "constant":
		pacer = loadgen.ConstantPacer{Rate: rate}
	default:
		return nil, fmt.Errorf("call step: pacer %q: want poisson or constant", s.Pacer)
	}
	extra := map[string]any{
		"endpoints": p.cfg.Endpoints, "endpoints_registered": p.Len(), "endpoints_failed": p.Failed(),
		"total_rate": s.Rate, "app_context": p.cfg.AppContext, "topic_path": p.env.TopicPath(),
		"offer": m.Offer, "ice_per_side": m.ICE, "ice_gap": m.ICEGap.String(),
		"pranswer_delay": m.PranswerDelay.String(), "answer_delay": m.AnswerDelay.String(),
		"reject_share": m.RejectShare, "no_answer_share": m.NoAnswerShare,
		"ring_timeout": m.RingTimeout.String(), "hold_mean": m.HoldMean.String(),
		"setup_timeout": m.SetupTimeout.String(), "loss_timeout": m.LossTimeout.String(),
		"baseline": s.Baseline,
	}
	for k, v := range s.Extra {
		extra[k] = v
	}
	shard := ""
	if p.cfg.Shard.Count > 1 {
		shard = p.cfg.Shard.String()
	}
	w, err := results.Create(dir, results.Params{HarnessVersion: s.HarnessVersion, Target: p.env.Describe(),
		Rate: rate, Duration: results.Duration(s.Duration), Pacer: s.Pacer, Seed: s.Seed, Shard: shard,
		LateThreshold: results.Duration(loadgen.DefaultLateThreshold), SLO: s.SLO, Extra: extra}, rec)
	if err != nil {
		return nil, err
	}
	for _, x := range s.Warnings {
		w.AddWarning(x)
	}
	if s.Check != nil {
		w.SetCheck(s.Check)
	}
	rec.TrackInFlight(st, st.led.inFlight)
	p.cur.Store(st)
	dropped0, _ := p.env.BrokerDropped()
	// The loss sweep: every checked message not delivered within the loss timeout of its
	// own send is lost, during the window and the drain alike.
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		tk := time.NewTicker(lossSweepEvery)
		defer tk.Stop()
		for {
			select {
			case <-sweepCtx.Done():
				return
			case now := <-tk.C:
				st.led.sweep(now)
			}
		}
	}()
	var sweepOnce sync.Once
	endSweep := func() { sweepOnce.Do(func() { stopSweep(); <-sweepDone }) }
	defer endSweep()

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	lostCh := make(chan error, 1)
	go p.watch(runCtx, stopRun, lostCh)
	if s.Progress != nil {
		pctx, stopProgress := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			pr := loadgen.NewProgress(s.Progress.W, s.Progress.TTY, rec, w.Start())
			if s.Progress.Violations != nil {
				pr.CountViolations(s.Progress.Violations)
			}
			pr.Run(pctx, time.Second)
		}()
		defer func() { stopProgress(); <-done }()
	}
	if !s.StartAt.IsZero() {
		p.waitForStart(runCtx, s, w)
	}
	rs := loadgen.Run(runCtx, pacer, s.Duration, st.place,
		loadgen.WithLateStart(func(_ time.Time, lag time.Duration) { rec.LateStart(lag) }), loadgen.WithClock(s.clock))
	if !s.StartAt.IsZero() {
		w.SetWindowStart(rs.Start)
	}
	stopRun()
	var lostErr error
	select {
	case lostErr = <-lostCh:
	default:
	}
	// Drain: let calls being set up reach their outcome. An interrupted run drains briefly.
	drain := s.Drain
	if ctx.Err() != nil || lostErr != nil {
		drain = min(drain, 2*time.Second)
	}
	deadline := time.Now().Add(drain)
	for (st.placed.Load() < rs.Hits || st.inSetup.Load() > 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopCalls() // what is still being set up ends without an outcome: aborted; no new checked sends
	interrupted := rs.Interrupted
	cut := ctx.Err() != nil || lostErr != nil
	if open := st.drainMessages(cut); open > 0 && !cut {
		w.AddWarning(fmt.Sprintf("%d checked messages were still in flight after the drain (the loss sweep did not settle them): a harness fault", open))
	}
	if s.Baseline && ctx.Err() == nil && lostErr == nil {
		// Read once: a message handed to the client just before the drain ended may still
		// arrive during the baseline, and the baseline relays exactly this many.
		rxMsgs, rxBytes := st.rxMsgs.Load(), st.rxBytes.Load()
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		b, err := runBaseline(bctx, p.env, rxMsgs, st.sizesCopy())
		cancel()
		if err != nil {
			b = &results.Baseline{Kind: "raw_mqtt_relay", Note: "baseline failed: " + err.Error()}
		}
		b.RtcommMessages, b.RtcommBytes = rxMsgs, rxBytes
		if win := rs.End.Sub(rs.Start).Seconds(); win > 0 {
			b.RtcommRate = float64(b.RtcommMessages) / win
		}
		if b.Rate > 0 {
			b.Ratio = b.RtcommRate / b.Rate
		}
		w.SetBaseline(b)
	}
	if d, ok := p.env.BrokerDropped(); ok && d > dropped0 {
		// mochi drops a delivery silently when a subscriber's write queue is full; the
		// checked messages among them show up as lost, this says why.
		w.AddWarning(brokerDropWarning(d - dropped0))
	}
	if lostErr != nil {
		w.AddWarning(lostErr.Error())
	}
	// Freeze the accounting before the recorder closes: no more losses, and arrivals from
	// now on are ignored (a match in progress finishes first: it holds its call's mutex), so
	// the final counters and the in-flight count are read from the same state.
	endSweep()
	st.frozen.Store(true)
	for _, c := range p.calls.all() {
		if c.st == st {
			c.mu.Lock()
			c.mu.Unlock() //nolint:staticcheck // barrier
		}
	}
	sum, ferr := w.Finalize(rs.End, interrupted)
	p.cur.CompareAndSwap(st, nil)
	p.hangupAll(st)
	if lostErr != nil {
		return sum, errors.Join(lostErr, ferr)
	}
	return sum, ferr
}

// waitForStart waits for the common start of a synchronized run, everything else being ready.
// Late means not ready: the run goes on (its load is part of what the other shards measure,
// and what it measures is kept) and is invalid. A ctx ending during the wait ends the run
// before its first call (loadgen.Run sees it).
func (p *Pool) waitForStart(ctx context.Context, s Step, w *results.Writer) {
	late, err := loadgen.WaitUntil(ctx, s.clock, s.StartAt)
	if err != nil || late <= 0 {
		return
	}
	why := fmt.Sprintf("shard %s was not ready at the common start %s (ready %s late): its load window does not line up with the other shards'",
		p.cfg.Shard, s.StartAt.UTC().Format(time.RFC3339Nano), late.Round(time.Millisecond))
	w.AddInvalid(why)
	if s.NotReady != nil {
		s.NotReady(why)
	}
}

// lossSweepEvery is how often the loss sweep runs: a message is declared lost at most this
// long after its loss timeout.
const lossSweepEvery = 100 * time.Millisecond

// drainMessages waits, once no new checked message can be sent, until every checked message
// is delivered or lost: first for the publishes in progress, then until nothing is in
// flight, which the loss sweep guarantees within the loss timeout of the last send. A cut
// run (interrupted, target lost) waits at most 2 s. It returns the messages still in flight.
func (st *stepRun) drainMessages(cut bool) uint64 {
	limit := st.model.LossTimeout + 5*time.Second // publishes in progress time out after 5 s
	if cut {
		limit = min(limit, 2*time.Second)
	}
	deadline := time.Now().Add(limit)
	for st.led.sending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !cut {
		if last := st.led.lastSend(); !last.IsZero() {
			deadline = last.Add(st.model.LossTimeout + 2*lossSweepEvery)
		}
	}
	for {
		n := st.led.inFlight()
		if n == 0 || !time.Now().Before(deadline) {
			if !cut {
				st.led.sweep(time.Now()) // everything past its timeout is lost now, not later
				n = st.led.inFlight()
			}
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerDropWarning is the summary warning for n deliveries the embedded broker dropped.
func brokerDropWarning(n int64) string {
	return fmt.Sprintf("the embedded broker dropped %d deliveries during the step "+
		"(a subscriber's write queue of %d was full): messages were lost in the broker, not the connector",
		n, EmbeddedMaxPendingWrites)
}

func (st *stepRun) sizesCopy() []int {
	st.sizeMu.Lock()
	defer st.sizeMu.Unlock()
	return append([]int(nil), st.sizes...)
}

// watch stops the run when endpoints lose their connections or the attached connector
// goes unhealthy: the target vanished.
func (p *Pool) watch(ctx context.Context, stop context.CancelFunc, out chan<- error) {
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		n := p.lostConnections()
		var err error
		if n > 0 {
			err = fmt.Errorf("%w: %d of %d endpoints disconnected mid-run; results cover the run until then", ErrTargetLost, n, p.Len())
		} else if herr := p.env.Healthy(); herr != nil {
			err = fmt.Errorf("%w: connector unhealthy: %v", ErrTargetLost, herr)
		}
		if err != nil {
			out <- err
			stop()
			return
		}
	}
}

// hangupAll ends the calls still held after a step, unmeasured, spread over up to a second.
func (p *Pool) hangupAll(st *stepRun) {
	calls := p.calls.all()
	var live []*call
	for _, c := range calls {
		if c.st != st {
			continue
		}
		c.mu.Lock()
		c.quiet = true
		if c.holdTimer != nil {
			c.holdTimer.Stop()
		}
		open := !c.ended
		c.mu.Unlock()
		if open {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	gap := time.Second / time.Duration(len(live))
	done := make(chan struct{}, len(live))
	for i, c := range live {
		time.AfterFunc(time.Duration(i)*gap, func() { c.hangupFrom(0, false, "load step ended"); done <- struct{}{} })
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for range live {
		select {
		case <-done:
		case <-t.C:
			return
		}
	}
}
