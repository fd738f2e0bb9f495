// Package sim is the MQTT side of the load generator: simulated rtcomm endpoints (one MQTT
// connection each, built on reference/endpoint over loadgen/mqttlite or paho, see
// PoolConfig.Client), a presence monitor, the open-loop call
// model and the raw-MQTT baseline. Measurements go through loadgen/metrics exactly as
// loadgen/README.md describes; results directories through loadgen/results.
//
// The shape of a run:
//
//	env, err := sim.StartTarget(ctx, sim.Target{})            // embedded broker + connector
//	defer env.Close()
//	rec := metrics.NewRecorder()                               // ramp measurements go here too
//	pool, err := sim.OpenPool(ctx, env, sim.DefaultPoolConfig(), rec)
//	defer pool.Close()
//	sum, err := pool.CallStep(ctx, dir, sim.Step{Rate: 20, Duration: 30 * time.Second,
//		Calls: sim.DefaultCallModel(), Recorder: rec})
//
// A capacity search opens one pool and runs one CallStep per rate (each with its own
// directory and a nil Recorder), or measures registration with RegisterStep.
package sim

import (
	mqtt "github.com/mochi-mqtt/server/v2"

	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

// Target says what the load goes to. The zero value is the embedded reference: an
// in-process reference/broker and reference/connector on random loopback ports.
type Target struct {
	// BrokerURL of an external broker (tcp://, ws://, ssl://, wss://); empty starts the
	// embedded reference broker.
	BrokerURL string
	// NoConnector: a connector is already attached to the external broker; the harness
	// starts none. Ignored (an error) without BrokerURL.
	NoConnector bool
	// TopicPath is the rtcomm topic root, default "/rtcomm/".
	TopicPath string
	// Username and Password every simulated endpoint and the harness's own clients
	// (monitor, baseline, attached connector) authenticate with on an external broker.
	Username, Password string
	// Logger for the target's components; nil discards.
	Logger *slog.Logger
	// ConnectorVia, when set, routes the connector the harness starts through a relay it
	// starts: given the broker URL it returns the URL the connector dials instead and a
	// function that stops the relay. It exists for harness self-tests, which put a
	// fault-injecting MQTT proxy there (load --fault) to prove the checks catch a faulty
	// target. Ignored with NoConnector.
	ConnectorVia func(brokerURL string) (url string, stop func(), err error)
	// BrokerHooks are added to the embedded broker (load --check puts the passive
	// checker there); ignored with an external broker.
	BrokerHooks []mqtt.Hook
}

// Env is a started target. Close stops what StartTarget started (nothing for an external
// broker with NoConnector).
// Methods: BrokerURL() string, TopicPath() string, Describe() string, Healthy() error,
// Close() error (see env.go).

// PoolConfig describes the simulated endpoints of one load generator.
type PoolConfig struct {
	// Endpoints is the total number of endpoint IDs over all shards; this generator
	// opens Shard.Len(Endpoints) of them.
	Endpoints int
	// Shard is this generator's slice of IDs and of the rates (loadgen.Whole when alone).
	Shard loadgen.Shard
	// IDPrefix: endpoint i has ID IDPrefix+i (default "lg-"). Shards use the same prefix.
	IDPrefix string
	// AppContext of the DOCUMENTs and calls, default "rtcomm".
	AppContext string
	// RampRate is the total connection rate in endpoints per second over all shards
	// (this generator connects at Shard.Rate(RampRate)); default 250.
	RampRate float64
	// ServiceQuery makes every endpoint send SERVICE_QUERY after registering, as rtcomm.js
	// does (measured as service_query); default true in DefaultPoolConfig.
	ServiceQuery bool
	// RegisterTimeout: a DOCUMENT the monitor has not seen by then is lost; default 10 s.
	RegisterTimeout time.Duration
	// ConnectConcurrency bounds connections in progress at once; default 64.
	ConnectConcurrency int
	// RecordRampLateStarts records the ramp's late starts (bring-ups the schedule started
	// more than loadgen.DefaultLateThreshold late) as late starts in the recorder given to
	// OpenPool or Grow. Set it only when that recorder counts one attempt per endpoint (as
	// capacity --mode registrations does): a tally's late starts are a share of its
	// attempts, and a call step's attempts are calls. Pool.RampLateStarts counts them anyway.
	RecordRampLateStarts bool
	// Client is the MQTT client of the simulated endpoints: ClientLight (loadgen/mqttlite:
	// one goroutine per connection, batched writes; tcp:// and mqtt:// brokers only),
	// ClientPaho (reference/mqttc: also TLS and WebSocket), or ClientAuto (the default):
	// light where it can, paho otherwise. Both run the same reference/endpoint logic, so the
	// generator's checks are the same.
	Client string
	// SourceAddrs are the local addresses the endpoints' connections go out from, in turn
	// (ClientLight only): loopback gives each source address ~28,000 ephemeral ports, so
	// 100,000 endpoints need several (LoopbackSources). Empty: the system's choice, or, with
	// ClientLight, more than AutoSpreadAbove endpoints and a broker on 127.0.0.0/8,
	// LoopbackSources(ceil(endpoints / AutoSpreadAbove)).
	SourceAddrs []net.IP

	clock loadgen.Clock // the ramp schedule's clock; nil is the system clock (tests)
}

// MQTT clients of the simulated endpoints (PoolConfig.Client).
const (
	ClientAuto  = "auto"
	ClientPaho  = "paho"
	ClientLight = "light"
)

// AutoSpreadAbove is the number of endpoints per source address when PoolConfig.SourceAddrs
// is chosen automatically: below loopback's ~28,000 ephemeral ports with room for the rest.
const AutoSpreadAbove = 20000

// LoopbackSources returns 127.0.0.1 .. 127.0.0.n (Linux accepts any 127.x address on the
// loopback interface without configuration); n from 1 to 254.
func LoopbackSources(n int) ([]net.IP, error) {
	if n < 1 || n > 254 {
		return nil, fmt.Errorf("source addresses: %d (1 to 254: 127.0.0.1 .. 127.0.0.254)", n)
	}
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(i+1))
	}
	return ips, nil
}

// DefaultPoolConfig returns 1,000 endpoints ramped at 250/s with service queries.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Endpoints: 1000, Shard: loadgen.Whole, IDPrefix: "lg-", AppContext: "rtcomm",
		RampRate: 250, ServiceQuery: true, RegisterTimeout: 10 * time.Second, ConnectConcurrency: 64,
		Client: ClientAuto}
}

// CallModel is what one simulated call does. Durations are simulated user/device time.
type CallModel struct {
	Offer  string // fixtures SDP offer name; default "chrome-av-offer" (its answer is used)
	ICE    int    // candidates trickled by each side (K); default 4; 0 sends none
	ICEGap time.Duration
	// PranswerDelay: the callee sends PRANSWER (ringing) this long after the offer arrives;
	// negative sends no PRANSWER. Default 0 (at once, like a device that starts ringing).
	PranswerDelay time.Duration
	// AnswerDelay: the callee answers this long after the offer arrived (simulated user
	// answering; counts in setup). Default 0: setup measures the signaling path only.
	AnswerDelay   time.Duration
	RejectShare   float64       // share of calls the callee rejects (RESPONSE FAILURE "busy"); default 0.05
	NoAnswerShare float64       // share the callee lets ring until the caller gives up; default 0.03
	RingTimeout   time.Duration // a caller cancels (STOP_SESSION) an unanswered call after this; default 15 s
	HoldMean      time.Duration // mean of the exponential hold time of answered calls; default 60 s
	// SetupTimeout: no first reply within this is a timeout (the rtcomm.js value); default 5 s.
	SetupTimeout time.Duration
	// LossTimeout: a checked message not delivered this long after its own send is lost;
	// default 5 s, as SetupTimeout (a client waiting for a reply has given up by then).
	LossTimeout time.Duration
}

// DefaultCallModel returns the documented video-call defaults (loadgen/README.md).
func DefaultCallModel() CallModel {
	return CallModel{Offer: "chrome-av-offer", ICE: 4, ICEGap: 40 * time.Millisecond,
		PranswerDelay: 0, AnswerDelay: 0, RejectShare: 0.05, NoAnswerShare: 0.03,
		RingTimeout: 15 * time.Second, HoldMean: 60 * time.Second,
		SetupTimeout: 5 * time.Second, LossTimeout: 5 * time.Second}
}

// Step is one open-loop call run on an open pool.
type Step struct {
	Rate     float64       // total calls per second over all shards (this pool runs Shard.Rate(Rate))
	Duration time.Duration // load window
	Pacer    string        // "poisson" (default) or "constant"
	Seed     uint64        // seeds the pacer and the call choices; 0 = random
	Calls    CallModel     // zero value: DefaultCallModel()
	SLO      string        // loadgen/slo spec judged in the summary
	// Drain bounds the wait for calls still being set up after the window; default
	// RingTimeout+SetupTimeout. Calls still unsettled then count as aborted.
	Drain time.Duration
	// Recorder to record into; nil makes a new one. Pass the recorder given to OpenPool
	// to keep the ramp's connect/register/service_query values in this step's results.
	Recorder *metrics.Recorder
	// Baseline also relays the same message count and sizes as raw MQTT (publisher ->
	// subscriber on the same broker) after the window; the summary gets a "baseline" section.
	Baseline bool
	// Progress, when set, gets a live status line every second (see loadgen.Progress).
	Progress *ProgressOut
	// Extra is added to params.extra.
	Extra map[string]any
	// Check, when set, gives the passive protocol checker's findings for the summary
	// (results.Writer.SetCheck): asked once, when the step finalizes its results.
	Check func() *results.Check
	// Warnings are added to the summary's warnings (results.Writer.AddWarning), e.g. that
	// the ramp before the step fell behind.
	Warnings []string
	// StartAt, when set, is the common start of a synchronized (sharded) run: the step
	// prepares everything (results directory, trackers), waits until StartAt, and its load
	// window starts then. A step that gets there after StartAt was not ready: it runs at once
	// and the summary's Invalid says why; NotReady (optional) is told the reason at that moment.
	StartAt  time.Time
	NotReady func(why string)
	// HarnessVersion is recorded in params.json.
	HarnessVersion string

	clock loadgen.Clock // the schedule's clock; nil is the system clock (tests stall it)
}

// ProgressOut is where the live line goes.
type ProgressOut struct {
	W   interface{ Write([]byte) (int, error) }
	TTY bool
	// Violations, when set, counts the protocol checker's findings so far (load --check).
	Violations func() uint64
}

// ErrTargetLost is wrapped by CallStep's error when endpoints lost their broker connection
// during the step: the summary covers what was measured until then.
var ErrTargetLost = errors.New("target lost: endpoints' connections dropped")

// Exported functions and methods (implemented in pool.go, call.go, step.go, baseline.go):
//
//	func StartTarget(ctx context.Context, t Target) (*Env, error)
//	func OpenPool(ctx context.Context, env *Env, cfg PoolConfig, rec *metrics.Recorder) (*Pool, error)
//	func (p *Pool) Len() int                 // endpoints connected and registered
//	func (p *Pool) IDs() []string            // their IDs, in index order
//	func (p *Pool) Close() error             // hangs up, unregisters, disconnects
//	func (p *Pool) CallStep(ctx context.Context, dir string, s Step) (*results.Summary, error)
//	func RegisterStep(ctx context.Context, env *Env, dir string, cfg PoolConfig, slo string) (*results.Summary, *Pool, error)
//	func (p *Pool) Grow(ctx context.Context, n int, rate float64, rec *metrics.Recorder) (int, error)
//	func (p *Pool) Failed() int
//	func (p *Pool) RampLateStarts() (n int64, worst time.Duration)
