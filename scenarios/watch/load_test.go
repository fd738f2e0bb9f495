package watch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/sim"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// A short load run against the reference (answered, rejected and unanswered calls with
// candidates and chat, as `load` drives them), judged inside the broker, gets no finding.
// The 60 s run at 100 calls/s that issue 14 asks for is not built (docs/CHECK.md).
func TestLoadRunHasNoFindings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := "/wl-" + uuid.NewString()[:8] + "/"
	c := watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, TopicPath: path})
	// With the broker judge and its publish ledger, as load --check runs it: the
	// reference's handling of the load gives no finding either.
	b, err := broker.Start(ctx, broker.Config{Hooks: []mqtt.Hook{&watch.Hook{Checker: c, Broker: ledgerJudge(path)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	env, err := sim.StartTarget(ctx, sim.Target{BrokerURL: b.TCPURL(), TopicPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	cfg := sim.DefaultPoolConfig()
	cfg.Endpoints, cfg.RampRate, cfg.IDPrefix = 20, 200, "wl-"
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p, err := sim.OpenPool(octx, env, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := sim.DefaultCallModel()
	m.RejectShare, m.NoAnswerShare = 0.2, 0.2
	m.RingTimeout, m.HoldMean, m.ICEGap, m.LossTimeout = 3*time.Second, 300*time.Millisecond, 10*time.Millisecond, time.Second
	sum, err := p.CallStep(ctx, filepath.Join(t.TempDir(), "run"), sim.Step{Rate: 15, Duration: 2 * time.Second, Seed: 7, Calls: m})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tally.Attempts < 10 {
		t.Fatalf("expected >= 10 calls, actual %d", sum.Tally.Attempts)
	}
	c.Finish(time.Now())
	for _, f := range c.Findings() {
		t.Errorf("finding on the reference under load: %s (evidence %q)", f, f.Evidence[len(f.Evidence)-1].Payload)
	}
	if c.Observed() < 100 {
		t.Errorf("expected the run's publishes judged (>= 100), actual %d", c.Observed())
	}
	t.Logf("%d calls, %d publishes judged, passes %v", sum.Tally.Attempts, c.Observed(), c.Passes())
}
