package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Where load --check writes, inside the results directory.
const (
	checkDir = "check" // the verdict bundle (verdicts.json, junit.xml, findings.json, report.html/.md)
	// liveFindingsFile gets each finding as it is made, one JSON object a line, so a run
	// that is killed keeps what the checker found (the bundle is written at the end).
	liveFindingsFile = "findings.jsonl"
)

// loadCheck is load --check: the passive checker beside the load generator, as a hook of
// the embedded broker or subscribed to <topic path># on an external one. It keeps no trace
// (a load run publishes too much). Its findings go into the run's summary (results.Check,
// judged by a violations SLO) and its bundle to <results>/check.
type loadCheck struct {
	dir   string // <results>/check
	mode  string // "hook" or "subscription"
	start time.Time
	c     *watch.Checker
	hook  *loadHook
	sub   *mqttc.Client
	log   *slog.Logger

	liveMu sync.Mutex
	live   *os.File // liveFindingsFile; nil once closed
	enc    *json.Encoder

	// off: the run's results are final; what follows (hang-ups of held calls, which the run
	// does not measure) is not judged, so the summary and the bundle tell the same story.
	off    atomic.Bool
	nFound atomic.Uint64 // findings so far, for the live line
	once   sync.Once
	sum    *results.Check
}

// loadHook is watch.Hook with an off switch.
type loadHook struct {
	watch.Hook
	off *atomic.Bool
}

// OnPublish judges the publish unless the run is over; it never changes or refuses one.
func (h *loadHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.off.Load() {
		return pk, nil
	}
	return h.Hook.OnPublish(cl, pk)
}

// OnPacketSent judges a delivery unless the run is over.
func (h *loadHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if !h.off.Load() {
		h.Hook.OnPacketSent(cl, pk, b)
	}
}

// OnPublishFate judges what the broker did with a PUBLISH unless the run is over.
func (h *loadHook) OnPublishFate(cl *mqtt.Client, pk packets.Packet, f mqtt.PublishFate) {
	if !h.off.Load() {
		h.Hook.OnPublishFate(cl, pk, f)
	}
}

// newLoadCheck prepares the checker for the run whose results go to runDir; embedded says
// whether the harness starts the broker (the hook then sees the traffic from its start).
func newLoadCheck(o loadOptions, runDir string, log *slog.Logger) (*loadCheck, error) {
	embedded := o.brokerURL == ""
	l := &loadCheck{dir: filepath.Join(runDir, checkDir), mode: "subscription", log: log, start: time.Now(),
		c: watch.New(watch.Config{TopicPath: o.topicPath, Profile: spec.ProfileClient, FromStart: embedded})}
	if embedded {
		l.mode = "hook"
	}
	bj := watch.NewBroker(o.topicPath)
	// The load run's embedded broker keeps retained messages by the reference's defaults
	// (loadgen/sim: open mode), modelled to judge its retained store (BRK-001).
	bj.SetRetention(watch.Retention{Quota: broker.DefaultRetainedQuota, Total: broker.DefaultRetainedTotal})
	// The load's embedded broker runs with the reference's default limits (loadgen/sim/env.go):
	// a refusal beyond them is lawful (publish ledger).
	bj.SetLimits(watch.TopicLimits{MaxLength: broker.DefaultMaxTopicLength, MaxLevels: broker.DefaultMaxTopicLevels})
	bj.SetMaxPayload(broker.DefaultMaxPayload)
	l.hook = &loadHook{Hook: watch.Hook{Checker: l.c, Broker: bj, OnFinding: l.found}, off: &l.off}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("--check: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(l.dir, liveFindingsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--check: %w (give a fresh --out)", err)
	}
	l.live, l.enc = f, json.NewEncoder(f)
	return l, nil
}

// found logs a live finding and appends it to the live file.
func (l *loadCheck) found(f watch.Finding) {
	l.nFound.Add(1)
	logFinding(l.log, f)
	l.liveMu.Lock()
	defer l.liveMu.Unlock()
	if l.live == nil {
		return
	}
	if err := l.enc.Encode(f); err != nil {
		l.log.Warn("--check: live findings not written", "err", err)
	}
}

// subscribe watches an external broker (the hook sees nothing there).
func (l *loadCheck) subscribe(ctx context.Context, url string, o loadOptions) error {
	cl, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, Username: o.username, Password: o.password,
		ClientID: "rtcomm-check-" + uuid.NewString()[:8]})
	if err != nil {
		return fmt.Errorf("--check: %w", err)
	}
	filter := spec.NewTopics(o.topicPath).Path + "#"
	if err := cl.Subscribe(ctx, filter, 0, func(m mqttc.Message) {
		if l.off.Load() {
			return
		}
		for _, f := range l.c.Observe(watch.Observation{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, Time: time.Now()}) {
			l.found(f)
		}
	}); err != nil {
		cl.Close()
		return fmt.Errorf("--check: subscribe %s: %w", filter, err)
	}
	l.sub = cl
	return nil
}

// close stops watching and closes the live file (idempotent).
func (l *loadCheck) close() {
	l.off.Store(true)
	if l.sub != nil {
		l.sub.Close()
	}
	l.liveMu.Lock()
	if l.live != nil {
		if err := l.live.Close(); err != nil {
			l.log.Warn("--check: live findings", "err", err)
		}
		l.live = nil
	}
	l.liveMu.Unlock()
}

// summary ends the check and returns its part of the run's summary; the results writer
// asks for it when it finalizes the run (sim.Step.Check), runLoad again afterwards.
func (l *loadCheck) summary() *results.Check {
	l.once.Do(func() {
		l.off.Store(true)
		l.hook.FinishBroker(time.Now()) // reports through l.found
		for _, f := range l.c.Finish(time.Now()) {
			l.found(f)
		}
		l.sum = checkSummary(l.c.Findings(), l.c.Observed(), l.mode)
	})
	return l.sum
}

// checkSummary groups findings per requirement and blamed participant, most first.
func checkSummary(fs []watch.Finding, observed int, mode string) *results.Check {
	s := &results.Check{Mode: mode, Observed: uint64(observed), Findings: uint64(len(fs)), Bundle: checkDir,
		ByRequirement: []results.CheckGroup{}}
	at := map[[2]string]int{}
	for _, f := range fs {
		k := [2]string{f.Requirement, f.Participant}
		i, ok := at[k]
		if !ok {
			i = len(s.ByRequirement)
			at[k] = i
			s.ByRequirement = append(s.ByRequirement, results.CheckGroup{Requirement: f.Requirement, Participant: f.Participant,
				First: f.Time.UTC(), Example: "expected " + f.Expected + ", actual " + f.Actual})
		}
		g := &s.ByRequirement[i]
		g.Findings++
		g.Evidence += uint64(len(f.Evidence))
	}
	slices.SortStableFunc(s.ByRequirement, func(a, b results.CheckGroup) int {
		return cmp.Or(cmp.Compare(b.Findings, a.Findings), cmp.Compare(a.Requirement, b.Requirement), cmp.Compare(a.Participant, b.Participant))
	})
	return s
}

// finish ends the check (if the run did not) and writes its bundle. The violations SLO is
// judged in the run's summary; an error here is the harness's (a bundle not written).
func (l *loadCheck) finish(out io.Writer, log *slog.Logger) error {
	l.summary()
	l.close()
	t := verdict.Target{Name: "load run", Mode: "check", Profile: spec.ProfileClient,
		Description: "passive check of a load run's traffic (" + l.mode + ")"}
	return finishCheck(out, l.dir, l.c, t, l.start, nil, log)
}

// printCheckSummary prints the checker's part of a load summary.
func printCheckSummary(w io.Writer, c *results.Check) {
	fmt.Fprintf(w, "\ncheck      %d publishes judged (%s): %d finding(s)\n", c.Observed, c.Mode, c.Findings)
	for _, g := range c.ByRequirement {
		fmt.Fprintf(w, "  %-10s %-24s %5d finding(s), %d evidence message(s); first: %s\n",
			g.Requirement, g.Participant, g.Findings, g.Evidence, g.Example)
	}
}
