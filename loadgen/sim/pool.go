package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/mqttlite"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Pool is a set of connected, registered simulated endpoints plus the presence monitor.
type Pool struct {
	env    *Env
	cfg    PoolConfig
	topics spec.Topics

	monitor *mqttc.Client
	regMu   sync.Mutex
	regWait map[string]regWait // endpoint ID -> DOCUMENT awaiting the monitor

	epMu sync.RWMutex
	eps  []*simEP // registered endpoints, in index order

	failed atomic.Int64 // endpoints that did not connect or register
	// Bring-ups the ramp schedule started late (loadgen.DefaultLateThreshold), over all
	// Grows, and the worst lag (ns).
	rampLate, rampWorst atomic.Int64
	calls               callTable
	sessIDs             sessionIDs              // sigSessIDs of this pool's calls
	cur                 atomic.Pointer[stepRun] // the step being measured
	closing             atomic.Bool
	// connLost counts light-client connections that ended without Close: until one has,
	// lostConnections need not look at every endpoint (100,000 of them twice a second).
	connLost atomic.Int64
}

type regWait struct {
	sent time.Time
	rec  *metrics.Recorder
	done chan struct{}
}

// simEP is one simulated endpoint.
type simEP struct {
	idx  int
	id   string
	ep   *endpoint.Endpoint
	busy atomic.Int32 // calls it takes part in
}

func (p *PoolConfig) defaults() {
	d := DefaultPoolConfig()
	if p.Shard.Count == 0 {
		p.Shard = loadgen.Whole
	}
	if p.IDPrefix == "" {
		p.IDPrefix = d.IDPrefix
	}
	if p.AppContext == "" {
		p.AppContext = d.AppContext
	}
	if p.RampRate <= 0 {
		p.RampRate = d.RampRate
	}
	if p.RegisterTimeout <= 0 {
		p.RegisterTimeout = d.RegisterTimeout
	}
	if p.ConnectConcurrency <= 0 {
		p.ConnectConcurrency = d.ConnectConcurrency
	}
	if p.Client == "" {
		p.Client = d.Client
	}
}

// transport checks the client choice and fills in automatic source addresses for a broker
// at brokerURL.
func (p *PoolConfig) transport(brokerURL string) error {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return fmt.Errorf("pool: broker URL %q: %w", brokerURL, err)
	}
	if p.Client == ClientAuto {
		p.Client = ClientPaho
		if u.Scheme == "tcp" || u.Scheme == "mqtt" {
			p.Client = ClientLight
		}
	}
	switch p.Client {
	case ClientPaho:
		if len(p.SourceAddrs) > 0 {
			return fmt.Errorf("pool: source addresses need the %s client (paho picks its own)", ClientLight)
		}
		return nil
	case ClientLight:
	default:
		return fmt.Errorf("pool: MQTT client %q (%s, %s or %s)", p.Client, ClientAuto, ClientLight, ClientPaho)
	}
	n := p.Shard.Len(p.Endpoints)
	if len(p.SourceAddrs) > 0 || n <= AutoSpreadAbove {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil // spreading over 127.x only reaches a broker on IPv4 loopback
	}
	p.SourceAddrs, err = LoopbackSources((n + AutoSpreadAbove - 1) / AutoSpreadAbove)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
}

// dialer is the endpoints' connection opener for the configured client; idx picks the
// source address.
func (p *Pool) dialer(idx int) func(ctx context.Context, o mqttc.Options) (endpoint.Conn, error) {
	if p.cfg.Client != ClientLight {
		return nil // endpoint.Dial's default: paho
	}
	var src net.IP
	if n := len(p.cfg.SourceAddrs); n > 0 {
		src = p.cfg.SourceAddrs[(idx/p.cfg.Shard.Count)%n]
	}
	return func(ctx context.Context, o mqttc.Options) (endpoint.Conn, error) {
		lost := o.OnConnectionLost
		o.OnConnectionLost = func(err error) {
			p.connLost.Add(1)
			if lost != nil {
				lost(err)
			}
		}
		c, err := mqttlite.Dial(ctx, mqttlite.Options{Options: o, LocalIP: src})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// OpenPool connects and registers this shard's endpoints at the ramp rate and returns the
// pool. Connect, register and (with ServiceQuery) service_query latencies go to rec (nil:
// not recorded). Endpoints that fail are counted (Failed) and left out; OpenPool fails
// only when ctx ends, the monitor cannot subscribe, or no endpoint came up.
func OpenPool(ctx context.Context, env *Env, cfg PoolConfig, rec *metrics.Recorder) (*Pool, error) {
	cfg.defaults()
	if err := cfg.Shard.Validate(); err != nil {
		return nil, fmt.Errorf("pool: shard: %w", err)
	}
	if cfg.Endpoints < 0 {
		return nil, fmt.Errorf("pool: %d endpoints", cfg.Endpoints)
	}
	if err := spec.ValidateEndpointID(cfg.IDPrefix + "0"); err != nil {
		return nil, fmt.Errorf("pool: ID prefix %q: %w", cfg.IDPrefix, err)
	}
	if err := cfg.transport(env.BrokerURL()); err != nil {
		return nil, err
	}
	p := &Pool{env: env, cfg: cfg, topics: spec.NewTopics(env.TopicPath()), regWait: map[string]regWait{}}
	p.calls.init()
	p.sessIDs.init()
	mon, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: env.BrokerURL(), ClientID: mqttc.RandomClientID("lgmon"),
		Username: env.t.Username, Password: env.t.Password, KeepAlive: 60 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("pool: presence monitor: %w", err)
	}
	p.monitor = mon
	if err := mon.Subscribe(ctx, p.topics.SphereRoot()+"/#", 0, p.onSphere); err != nil {
		mon.Close()
		return nil, fmt.Errorf("pool: presence monitor: %w", err)
	}
	if _, err := p.Grow(ctx, cfg.Shard.Len(cfg.Endpoints), cfg.RampRate, rec); err != nil {
		p.Close()
		return nil, err
	}
	if p.Len() == 0 && cfg.Shard.Len(cfg.Endpoints) > 0 {
		p.Close()
		return nil, fmt.Errorf("pool: none of %d endpoints came up on %s", cfg.Shard.Len(cfg.Endpoints), env.BrokerURL())
	}
	return p, nil
}

// RampLateStarts returns how many endpoint bring-ups all ramps so far (OpenPool and Grow)
// started more than loadgen.DefaultLateThreshold after their intended time, and the worst lag.
func (p *Pool) RampLateStarts() (n int64, worst time.Duration) {
	return p.rampLate.Load(), time.Duration(p.rampWorst.Load())
}

// Grow connects and registers n more of this shard's endpoints (continuing the index
// sequence) at Shard.Rate(rate) per second and returns how many came up. Latencies go to rec.
func (p *Pool) Grow(ctx context.Context, n int, rate float64, rec *metrics.Recorder) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	p.epMu.RLock()
	next := len(p.eps) + int(p.failed.Load())
	p.epMu.RUnlock()
	// Shard-owned indices from the next position in this shard's sequence.
	first := p.cfg.Shard.Index + next*p.cfg.Shard.Count
	r := p.cfg.Shard.Rate(rate)
	if rec != nil {
		rec.TrackInFlight(p, func() uint64 { return p.regInFlight(rec) })
	}
	sem := make(chan struct{}, p.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	var up atomic.Int64
	var firstErr atomic.Pointer[error]
	results := make([]*simEP, n)
	pacer := loadgen.PacerFunc(func(elapsed time.Duration, hits uint64) (time.Duration, bool) {
		if hits >= uint64(n) {
			return 0, true
		}
		return loadgen.ConstantPacer{Rate: r}.Pace(elapsed, hits)
	})
	var k atomic.Int64
	// A ramp that falls behind bunches the connections it was to spread out; a recorder that
	// counts one attempt per endpoint (PoolConfig.RecordRampLateStarts) gets them as late
	// starts, and RampLateStarts reports them either way.
	late := loadgen.WithLateStart(func(_ time.Time, lag time.Duration) {
		p.rampLate.Add(1)
		for w := p.rampWorst.Load(); int64(lag) > w && !p.rampWorst.CompareAndSwap(w, int64(lag)); w = p.rampWorst.Load() {
		}
		if rec != nil && p.cfg.RecordRampLateStarts {
			rec.LateStart(lag)
		}
	})
	st := loadgen.Run(ctx, pacer, 0, func(intended time.Time) {
		wg.Add(1)
		defer wg.Done()
		j := int(k.Add(1) - 1)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			p.failed.Add(1)
			return
		}
		defer func() { <-sem }()
		idx := first + j*p.cfg.Shard.Count
		se, err := p.bringUp(ctx, idx, intended, rec)
		if err != nil {
			p.failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		results[j] = se
		up.Add(1)
	}, late, loadgen.WithClock(p.cfg.clock))
	// Run returns once the last start is due; every started goroutine calls wg.Add before
	// counting itself in k, so once k reaches Hits the WaitGroup covers them all.
	for uint64(k.Load()) < st.Hits {
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	p.epMu.Lock()
	for _, se := range results {
		if se != nil {
			p.eps = append(p.eps, se)
		}
	}
	p.epMu.Unlock()
	if err := ctx.Err(); err != nil {
		return int(up.Load()), fmt.Errorf("pool: ramp interrupted after %d of %d endpoints: %w", up.Load(), n, err)
	}
	if e := firstErr.Load(); e != nil && up.Load() < int64(n) {
		p.env.t.Logger.Warn("endpoints failed to come up", "failed", int64(n)-up.Load(), "of", n, "first_error", *e)
	}
	return int(up.Load()), nil
}

// bringUp connects, registers and (optionally) queries one endpoint.
func (p *Pool) bringUp(ctx context.Context, idx int, intended time.Time, rec *metrics.Recorder) (*simEP, error) {
	se := &simEP{idx: idx, id: p.cfg.IDPrefix + strconv.Itoa(idx)}
	cm := DefaultCallModel()
	cfg := endpoint.Config{
		BrokerURL: p.env.BrokerURL(), Username: p.env.t.Username, Password: p.env.t.Password,
		TopicPath: p.env.TopicPath(), ID: se.id, AppContext: p.cfg.AppContext, Dial: p.dialer(idx),
		SendEarly:        true, // candidates are trickled as gathered; see call.go
		PranswerTimeout:  cm.SetupTimeout,
		AnswerTimeout:    time.Hour, // the call model cancels unanswered calls itself
		InviteTimeout:    time.Hour,
		OnInvite:         func(inv *endpoint.Invite) { p.onInvite(se, inv) },
		OnSessionMessage: func(*endpoint.Session, *spec.Message) {}, // measured in OnMessage
		// Deliveries are checked whole in OnMessage; a held call keeps only the envelopes
		// (two SDPs per held call were 60 % of the generator's live heap at 150 calls/s).
		DropPayloads: true,
		OnMessage: func(topic string, m *spec.Message, raw []byte, at time.Time) {
			p.onMessage(se, topic, m, raw, at)
		},
	}
	dialStart := time.Now()
	ep, err := endpoint.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		rec.Record(metrics.Connect, intended, dialStart, time.Now())
	}
	se.ep = ep
	w := regWait{rec: rec, done: make(chan struct{})}
	p.regMu.Lock()
	w.sent = time.Now()
	p.regWait[se.id] = w
	p.regMu.Unlock()
	if rec != nil {
		rec.Add(metrics.Sent, 1)
	}
	if err := ep.Register(ctx); err != nil {
		p.settleReg(se.id, false)
		ep.Kill()
		return nil, err
	}
	if p.cfg.ServiceQuery {
		t0 := time.Now()
		if _, err := ep.ServiceQuery(ctx); err != nil {
			p.settleReg(se.id, false)
			_ = ep.Close()
			return nil, fmt.Errorf("service query %s: %w", se.id, err)
		}
		if rec != nil {
			t1 := time.Now()
			rec.Record(metrics.ServiceQuery, t0, t0, t1)
		}
	}
	t := time.NewTimer(p.cfg.RegisterTimeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		p.settleReg(se.id, false)
		// Registered as far as it knows; the monitor just did not see it: count it as
		// lost and keep the endpoint (the connector may well have seen it).
	case <-ctx.Done():
		// Left in flight (still waited for, and counted by regInFlight): the run ended
		// before the monitor saw it.
		_ = ep.Close()
		return nil, ctx.Err()
	}
	return se, nil
}

// regInFlight counts the DOCUMENTs recorded in rec that the monitor has neither seen nor
// given up on: the registrations' side of the in-flight count (metrics.Recorder.TrackInFlight).
func (p *Pool) regInFlight(rec *metrics.Recorder) uint64 {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	var n uint64
	for _, w := range p.regWait {
		if w.rec == rec {
			n++
		}
	}
	return n
}

// settleReg ends a registration wait: seen (delivered) or given up (lost).
func (p *Pool) settleReg(id string, seen bool) {
	p.regMu.Lock()
	w, ok := p.regWait[id]
	delete(p.regWait, id)
	p.regMu.Unlock()
	if !ok {
		return
	}
	if w.rec != nil {
		if seen {
			w.rec.Add(metrics.Delivered, 1)
			w.rec.Record(metrics.Register, w.sent, w.sent, time.Now())
		} else {
			w.rec.Add(metrics.Lost, 1)
		}
	}
	close(w.done)
}

// onSphere is the presence monitor: a DOCUMENT on <path>sphere/<id> for an endpoint that
// waits completes its registration.
func (p *Pool) onSphere(m mqttc.Message) {
	if len(m.Payload) == 0 {
		return
	}
	id := spec.Sender(m.Topic)
	p.regMu.Lock()
	w, ok := p.regWait[id]
	if ok {
		delete(p.regWait, id)
	}
	p.regMu.Unlock()
	if !ok {
		return // another generator's endpoint, or a retained document of an earlier run
	}
	at := time.Now()
	if w.rec != nil {
		w.rec.Add(metrics.Delivered, 1)
		w.rec.Record(metrics.Register, w.sent, w.sent, at)
	}
	close(w.done)
}

// Len returns the number of registered endpoints.
func (p *Pool) Len() int {
	p.epMu.RLock()
	defer p.epMu.RUnlock()
	return len(p.eps)
}

// Client is the MQTT client the endpoints use (ClientLight or ClientPaho; auto resolved).
func (p *Pool) Client() string { return p.cfg.Client }

// Failed returns how many endpoints did not come up.
func (p *Pool) Failed() int { return int(p.failed.Load()) }

// IDs returns the registered endpoints' IDs in index order.
func (p *Pool) IDs() []string {
	p.epMu.RLock()
	defer p.epMu.RUnlock()
	ids := make([]string, len(p.eps))
	for i, se := range p.eps {
		ids[i] = se.id
	}
	return ids
}

// lostConnections counts endpoints whose connection ended without Close.
func (p *Pool) lostConnections() int {
	if p.cfg.Client == ClientLight && p.connLost.Load() == 0 {
		return 0
	}
	p.epMu.RLock()
	defer p.epMu.RUnlock()
	n := 0
	for _, se := range p.eps {
		select {
		case <-se.ep.Done():
			n++
		default:
		}
	}
	return n
}

// pick returns a caller and a callee (different endpoints), preferring idle ones.
func (p *Pool) pick(rng *rand.Rand) (*simEP, *simEP, bool) {
	p.epMu.RLock()
	defer p.epMu.RUnlock()
	n := len(p.eps)
	if n < 2 {
		return nil, nil, false
	}
	choose := func(not *simEP) *simEP {
		var c *simEP
		for range 8 {
			c = p.eps[rng.IntN(n)]
			if c != not && c.busy.Load() == 0 {
				return c
			}
		}
		for c == not {
			c = p.eps[rng.IntN(n)]
		}
		return c
	}
	a := choose(nil)
	return a, choose(a), true
}

// Close hangs up the pool's calls, unregisters and disconnects every endpoint.
func (p *Pool) Close() error {
	if !p.closing.CompareAndSwap(false, true) {
		return nil
	}
	p.epMu.Lock()
	eps := p.eps
	p.eps = nil
	p.epMu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	var mu sync.Mutex
	var errs []error
	for _, se := range eps {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := se.ep.Close(); err != nil && !errors.Is(err, endpoint.ErrClosed) {
				mu.Lock()
				if len(errs) < 4 {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if p.monitor != nil {
		p.monitor.Close()
	}
	return errors.Join(errs...)
}
