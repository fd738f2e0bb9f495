package sim

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// uniquePath gives every test its own topic path.
func uniquePath() string { return "/lgt-" + mqttc.RandomClientID("")[:10] + "/" }

func smallModel() CallModel {
	m := DefaultCallModel()
	m.RejectShare, m.NoAnswerShare = 0.2, 0.2
	m.RingTimeout = 3 * time.Second // generous: -race on 2 shared cores is slow
	m.HoldMean = 300 * time.Millisecond
	m.ICEGap = 10 * time.Millisecond
	m.LossTimeout = time.Second
	return m
}

func openSmall(t *testing.T, env *Env, n int, rec *metrics.Recorder) *Pool {
	return openSmallWith(t, env, n, rec, ClientAuto)
}

// openSmallWith opens n endpoints on the given MQTT client and checks that they use it.
func openSmallWith(t *testing.T, env *Env, n int, rec *metrics.Recorder, client string) *Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := DefaultPoolConfig()
	cfg.Endpoints, cfg.RampRate, cfg.Client = n, 200, client
	cfg.IDPrefix = "t" + mqttc.RandomClientID("")[:6] + "-"
	p, err := OpenPool(ctx, env, cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if client != ClientAuto {
		var wrong []string
		p.epMu.RLock()
		for _, se := range p.eps {
			if paho := se.ep.Client() != nil; paho != (client == ClientPaho) {
				wrong = append(wrong, se.id)
			}
		}
		p.epMu.RUnlock()
		if len(wrong) > 0 {
			t.Fatalf("client %s requested; %d endpoints use the other one (%s, ...)", client, len(wrong), wrong[0])
		}
	}
	return p
}

// startEmbedded starts the embedded reference on its own topic path, stopped by Cleanup.
func startEmbedded(t *testing.T) *Env {
	t.Helper()
	env, err := StartTarget(context.Background(), Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	return env
}

func checkRun(t *testing.T, sum *results.Summary, dir string) {
	t.Helper()
	ty := sum.Tally
	if err := ty.Check(); err != nil {
		t.Fatalf("accounting: %v", err)
	}
	if ty.Attempts == 0 {
		t.Fatal("no call attempts")
	}
	for _, name := range []string{"setup", "ice", "connect", "register"} {
		if sum.Metrics[name].Corrected.Count == 0 {
			t.Errorf("metric %s has no values", name)
		}
	}
	if ty.Lost != 0 || ty.InFlight != 0 || ty.Duplicated != 0 || ty.Misrouted != 0 || ty.Altered != 0 ||
		ty.Unexpected != 0 || ty.OutOfOrder != 0 || ty.Malformed != 0 {
		t.Errorf("healthy target: expected 0 lost, in flight, duplicated, misrouted, altered, unexpected, out of order, malformed; actual %+v", ty)
	}
	if ty.Delivered == 0 || ty.Delivered != ty.Sent {
		t.Errorf("healthy target: expected every checked message delivered, actual sent %d delivered %d", ty.Sent, ty.Delivered)
	}
	again, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Tally.Attempts != ty.Attempts {
		t.Errorf("summary.json attempts %d, returned %d", again.Tally.Attempts, ty.Attempts)
	}
}

func TestCallStepEmbedded(t *testing.T) {
	t.Parallel()
	for _, client := range []string{ClientLight, ClientPaho} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			callStepEmbedded(t, client)
		})
	}
}

func callStepEmbedded(t *testing.T, client string) {
	ctx := context.Background()
	env, err := StartTarget(ctx, Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	rec := metrics.NewRecorder()
	p := openSmallWith(t, env, 20, rec, client)
	if p.Len() != 20 {
		t.Fatalf("pool has %d endpoints, want 20", p.Len())
	}
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := p.CallStep(ctx, dir, Step{Rate: 15, Duration: 2 * time.Second, Seed: 7, Calls: smallModel(),
		Recorder: rec, Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, sum, dir)
	o := sum.Tally.Outcomes
	if o[metrics.Rejected] == 0 || o[metrics.NoAnswer] == 0 || o[metrics.Success] == 0 {
		t.Errorf("want successes, rejects and no-answers with 20%%/20%% shares: %v", sum.Tally.Outcomes)
	}
	if n := sum.Tally.Reasons["rejected: "+RejectReason]; n != o[metrics.Rejected] {
		t.Errorf("rejected reasons %d != rejected outcomes %d", n, o[metrics.Rejected])
	}
	if o[metrics.Failure] != 0 || o[metrics.Timeout] != 0 {
		t.Errorf("failures on a healthy target: %v", sum.Tally.Reasons)
	}
	if sum.Metrics["teardown"].Corrected.Count == 0 || sum.Metrics["post_dial_delay"].Corrected.Count == 0 {
		t.Error("no teardown or post-dial delay measured")
	}
	if sum.Metrics["service_query"].Corrected.Count != 20 {
		t.Errorf("service queries %d, want 20", sum.Metrics["service_query"].Corrected.Count)
	}
	b := sum.Baseline
	if b == nil || b.Messages == 0 || b.Messages != b.RtcommMessages || b.Rate <= 0 || b.Lost != 0 {
		t.Errorf("baseline: %+v", b)
	}
	if t.Failed() {
		js, _ := sum.Encode()
		t.Logf("%s", js)
	}
}

func TestShardsPartitionIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, err := StartTarget(ctx, Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	prefix := "s" + mqttc.RandomClientID("")[:6] + "-"
	seen := map[string]int{}
	for i := range 3 {
		cfg := DefaultPoolConfig()
		cfg.Endpoints, cfg.IDPrefix, cfg.ServiceQuery = 10, prefix, false
		cfg.Shard = loadgen.Shard{Index: i, Count: 3}
		p, err := OpenPool(ctx, env, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range p.IDs() {
			seen[id]++
		}
		_ = p.Close()
	}
	if len(seen) != 10 {
		t.Fatalf("3 shards opened %d distinct IDs, want 10: %v", len(seen), seen)
	}
	for id, n := range seen {
		if n != 1 || !strings.HasPrefix(id, prefix) {
			t.Errorf("ID %s opened %d times", id, n)
		}
	}
}

func TestInterruptedStepKeepsResults(t *testing.T) {
	t.Parallel()
	env, err := StartTarget(context.Background(), Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	p := openSmall(t, env, 10, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := p.CallStep(ctx, dir, Step{Rate: 20, Duration: time.Minute, Calls: smallModel()})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Tally.Attempts == 0 {
		t.Fatalf("interrupted %v, attempts %d", sum.Interrupted, sum.Tally.Attempts)
	}
	if err := sum.Tally.Check(); err != nil {
		t.Fatal(err)
	}
	// The interval log alone rebuilds the run.
	rb, err := results.Rebuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Tally.Attempts != sum.Tally.Attempts || !rb.Interrupted {
		t.Errorf("rebuilt attempts %d interrupted %v; want %d, true", rb.Tally.Attempts, rb.Interrupted, sum.Tally.Attempts)
	}
	if err := os.Remove(filepath.Join(dir, results.FileSummary)); err != nil {
		t.Fatal(err)
	}
	if _, err := results.Load(dir); err != nil {
		t.Fatalf("load without summary.json: %v", err)
	}
}

func TestRegisterStep(t *testing.T) {
	t.Parallel()
	env, err := StartTarget(context.Background(), Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	cfg := DefaultPoolConfig()
	cfg.Endpoints, cfg.RampRate, cfg.IDPrefix = 15, 100, "r"+mqttc.RandomClientID("")[:6]+"-"
	dir := filepath.Join(t.TempDir(), "reg")
	sum, p, err := RegisterStep(context.Background(), env, dir, cfg, "register.p99<5s")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := sum.Metrics["register"].Corrected.Count; got != 15 || !sum.SLOPassed {
		t.Errorf("register count %d (want 15), slo %v", got, sum.SLO)
	}
	if sum.Tally.Sent != 15 || sum.Tally.Delivered != 15 {
		t.Errorf("documents sent %d delivered %d", sum.Tally.Sent, sum.Tally.Delivered)
	}
}

func TestCallStepMosquitto(t *testing.T) {
	t.Parallel()
	mq := extbroker.MosquittoForTest(t)
	for _, client := range []string{ClientLight, ClientPaho} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env, err := StartTarget(ctx, Target{BrokerURL: mq.TCP, TopicPath: uniquePath()})
			if err != nil {
				t.Fatal(err)
			}
			defer env.Close()
			rec := metrics.NewRecorder()
			p := openSmallWith(t, env, 20, rec, client)
			dir := filepath.Join(t.TempDir(), "run")
			sum, err := p.CallStep(ctx, dir, Step{Rate: 15, Duration: 2 * time.Second, Seed: 3, Calls: smallModel(), Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			checkRun(t, sum, dir)
		})
	}
}

// Endpoints spread over several loopback source addresses register and call as usual.
func TestCallStepSourceAddrs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := &remoteHosts{hosts: map[string]int{}}
	env, err := StartTarget(ctx, Target{TopicPath: uniquePath(), BrokerHooks: []mqtt.Hook{seen}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	cfg := DefaultPoolConfig()
	cfg.Endpoints, cfg.RampRate, cfg.Client = 12, 200, ClientLight
	cfg.IDPrefix = "t" + mqttc.RandomClientID("")[:6] + "-"
	if cfg.SourceAddrs, err = LoopbackSources(3); err != nil {
		t.Fatal(err)
	}
	rec := metrics.NewRecorder()
	p, err := OpenPool(ctx, env, cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Len() != 12 {
		t.Fatalf("expected 12 endpoints registered over 3 source addresses, actual %d (%d failed)", p.Len(), p.Failed())
	}
	seen.mu.Lock()
	for _, h := range []string{"127.0.0.2", "127.0.0.3"} {
		if seen.hosts[h] < 4 {
			t.Errorf("expected 4 endpoints connected from %s, actual %d (all: %v)", h, seen.hosts[h], seen.hosts)
		}
	}
	seen.mu.Unlock()
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := p.CallStep(ctx, dir, Step{Rate: 10, Duration: time.Second, Seed: 5, Calls: smallModel(), Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, sum, dir)
}

// remoteHosts is a broker hook counting connections per remote host.
type remoteHosts struct {
	mqtt.HookBase
	mu    sync.Mutex
	hosts map[string]int
}

func (h *remoteHosts) ID() string { return "remote-hosts" }

func (h *remoteHosts) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *remoteHosts) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	host, _, _ := net.SplitHostPort(cl.Net.Remote)
	h.mu.Lock()
	h.hosts[host]++
	h.mu.Unlock()
	return nil
}

// The client choice: auto is light on tcp:// and paho elsewhere; source addresses need the
// light client, are spread automatically above AutoSpreadAbove endpoints only for a broker
// on IPv4 loopback, and a wrong name is an error.
func TestPoolTransport(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		client, url string
		endpoints   int
		addrs       int // given
		wantClient  string
		wantAddrs   int
		wantErr     string
	}{
		{client: ClientAuto, url: "tcp://127.0.0.1:1883", endpoints: 100, wantClient: ClientLight},
		{client: ClientAuto, url: "mqtt://broker:1883", endpoints: 100, wantClient: ClientLight},
		{client: ClientAuto, url: "ws://127.0.0.1:8080/mqtt", endpoints: 100, wantClient: ClientPaho},
		{client: ClientAuto, url: "ssl://127.0.0.1:8883", endpoints: 100, wantClient: ClientPaho},
		{client: ClientPaho, url: "tcp://127.0.0.1:1883", endpoints: 100, wantClient: ClientPaho},
		{client: ClientAuto, url: "tcp://127.0.0.1:1883", endpoints: 100_000, wantClient: ClientLight, wantAddrs: 5},
		{client: ClientLight, url: "tcp://127.0.0.1:1883", endpoints: AutoSpreadAbove, wantClient: ClientLight},
		{client: ClientLight, url: "tcp://127.0.0.1:1883", endpoints: AutoSpreadAbove + 1, wantClient: ClientLight, wantAddrs: 2},
		{client: ClientLight, url: "tcp://10.0.0.5:1883", endpoints: 100_000, wantClient: ClientLight},
		{client: ClientLight, url: "tcp://127.0.0.1:1883", endpoints: 100_000, addrs: 2, wantClient: ClientLight, wantAddrs: 2},
		{client: ClientPaho, url: "tcp://127.0.0.1:1883", endpoints: 100, addrs: 2, wantErr: "need the light client"},
		{client: ClientAuto, url: "ws://127.0.0.1:8080/mqtt", endpoints: 100, addrs: 2, wantErr: "need the light client"},
		{client: "fast", url: "tcp://127.0.0.1:1883", endpoints: 100, wantErr: `MQTT client "fast"`},
	} {
		cfg := DefaultPoolConfig()
		cfg.Client, cfg.Endpoints = c.client, c.endpoints
		if c.addrs > 0 {
			cfg.SourceAddrs, _ = LoopbackSources(c.addrs)
		}
		err := cfg.transport(c.url)
		name := c.client + " " + c.url + " " + strconv.Itoa(c.endpoints)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: expected an error with %q, actual %v", name, c.wantErr, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cfg.Client != c.wantClient || len(cfg.SourceAddrs) != c.wantAddrs {
			t.Errorf("%s: expected client %s over %d source addresses, actual %s over %d", name, c.wantClient, c.wantAddrs, cfg.Client, len(cfg.SourceAddrs))
		}
	}
	if _, err := LoopbackSources(255); err == nil {
		t.Error("LoopbackSources(255): expected an error (127.0.0.255 is the broadcast address)")
	}
}

// TestDrainEndDuringTrickle ends a step while most calls are still trickling candidates
// (long ICE gap, long hold): sends cut short by the end of the drain had already been
// handed to the client and arrive, which must count as delivered (or in flight), never
// as unexpected.
func TestDrainEndDuringTrickle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		external bool
	}{{"embedded", false}, {"mosquitto", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tg Target
			if tc.external {
				tg.BrokerURL = extbroker.MosquittoForTest(t).TCP
			}
			tg.TopicPath = uniquePath()
			ctx := context.Background()
			env, err := StartTarget(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			defer env.Close()
			p := openSmall(t, env, 20, nil)
			m := smallModel()
			m.RejectShare, m.NoAnswerShare = 0, 0
			m.ICE, m.ICEGap = 4, 150*time.Millisecond
			m.HoldMean = 10 * time.Second
			dir := filepath.Join(t.TempDir(), "run")
			sum, err := p.CallStep(ctx, dir, Step{Rate: 20, Duration: time.Second, Pacer: "constant", Seed: 5, Calls: m})
			if err != nil {
				t.Fatal(err)
			}
			ty := sum.Tally
			if err := ty.Check(); err != nil {
				t.Fatalf("accounting: %v", err)
			}
			if ty.Outcomes[metrics.Success] == 0 {
				t.Fatalf("no successful calls: %+v", ty)
			}
			if ty.Unexpected != 0 || ty.Lost != 0 {
				t.Errorf("unexpected %d, lost %d after a drain that cut trickles short: %+v", ty.Unexpected, ty.Lost, ty)
			}
		})
	}
}

// TestTargetLostWarningInSummaryJSON: a broker that dies mid-step ends the step with
// ErrTargetLost, and the reason is among the warnings of summary.json, not only of the
// returned summary.
func TestTargetLostWarningInSummaryJSON(t *testing.T) {
	t.Parallel()
	mq := extbroker.MosquittoForTest(t)
	ctx := context.Background()
	env, err := StartTarget(ctx, Target{BrokerURL: mq.TCP, TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	p := openSmall(t, env, 10, nil)
	time.AfterFunc(time.Second, mq.Kill)
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := p.CallStep(ctx, dir, Step{Rate: 10, Duration: 30 * time.Second, Seed: 9, Calls: smallModel()})
	if !errors.Is(err, ErrTargetLost) {
		t.Fatalf("CallStep error %v, want ErrTargetLost", err)
	}
	loaded, lerr := results.Load(dir)
	if lerr != nil {
		t.Fatal(lerr)
	}
	for name, s := range map[string]*results.Summary{"returned": sum, "summary.json": loaded} {
		found := false
		for _, w := range s.Warnings {
			found = found || strings.Contains(w, ErrTargetLost.Error())
		}
		if !found {
			t.Errorf("%s warnings %q lack %q", name, s.Warnings, ErrTargetLost)
		}
	}
}

// lagClock oversleeps every wait by extra, like a generator that cannot keep up.
type lagClock struct{ extra time.Duration }

func (lagClock) Now() time.Time { return time.Now() }
func (c lagClock) Sleep(ctx context.Context, d time.Duration) error {
	return loadgen.SystemClock.Sleep(ctx, d+c.extra)
}

// TestRampLateStarts: a ramp whose schedule falls behind reports its late starts, and
// records them in the recorder only when the pool is told the recorder counts endpoints.
func TestRampLateStarts(t *testing.T) {
	t.Parallel()
	env, err := StartTarget(context.Background(), Target{TopicPath: uniquePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, record := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cfg := DefaultPoolConfig()
		cfg.Endpoints, cfg.RampRate, cfg.ServiceQuery = 4, 200, false
		cfg.IDPrefix = "l" + mqttc.RandomClientID("")[:6] + "-"
		cfg.RecordRampLateStarts = record
		cfg.clock = lagClock{extra: 3 * loadgen.DefaultLateThreshold}
		rec := metrics.NewRecorder()
		p, err := OpenPool(ctx, env, cfg, rec)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		n, worst := p.RampLateStarts()
		// The second start overslept by 30 ms; the ones due meanwhile start at once, still late.
		// (The first start is due at once: late only if the machine stalled.)
		if n < 3 || n > 4 || worst < 3*loadgen.DefaultLateThreshold {
			t.Errorf("record=%v: ramp late starts %d (want 3), worst %s", record, n, worst)
		}
		got := rec.Snapshot().Tally.LateStarts
		if want := map[bool]uint64{false: 0, true: uint64(n)}[record]; got != want {
			t.Errorf("record=%v: recorder late starts %d, want %d", record, got, want)
		}
		// Growing adds to the pool's count.
		gctx, gcancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := p.Grow(gctx, 2, 200, nil); err != nil {
			t.Error(err)
		}
		gcancel()
		if m, _ := p.RampLateStarts(); m < n+1 || m > n+2 {
			t.Errorf("record=%v: after growing by 2, late starts %d, want %d", record, m, n+1)
		}
		_ = p.Close()
	}
}
