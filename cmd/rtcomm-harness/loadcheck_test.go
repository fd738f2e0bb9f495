package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/reports/loadreport"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

// load --check, with the checker inside the embedded broker (hook) and subscribed to an
// external one: the reference's own load traffic gives no finding (exit 0 under
// violations<=0); with alter-ice planted in the connector the checker finds ICE-004 against
// the connector, the summary, the live findings file and the report say so, and the
// violations SLO fails the run (exit 1).
func TestLoadCheck(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"hook", "subscription"} {
		for _, tc := range []struct {
			fault string
			code  int
			req   string
		}{{"", 0, ""}, {"alter-ice:3", exitSLOBreached, "ICE-004"}} {
			t.Run(mode+"/fault="+tc.fault, func(t *testing.T) {
				t.Parallel()
				o := tinyLoad(t)
				o.check, o.sloSpec, o.fault = true, "violations<=0", tc.fault
				o.rejectShare = 0
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if mode == "subscription" {
					b, err := broker.Start(ctx, broker.Config{TCPAddr: "127.0.0.1:0", WSAddr: "off"})
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					o.brokerURL = b.TCPURL()
				}
				var out bytes.Buffer
				err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
				// A loaded machine (or -race) can start a call late, which makes the run invalid
				// (exit 2) whatever the checker found, as runLoadValid tolerates; the findings
				// are judged all the same.
				lateOnly := exitCode(err) == exitLoadInvalid && strings.Contains(err.Error(), "late starts")
				if code := exitCode(err); code != tc.code && !lateOnly {
					t.Fatalf("expected exit %d, actual %d (%v)\n%s", tc.code, code, err, out.String())
				}
				sum := loadCheckSummary(t, o.out, mode)
				fs := readFindingsOnly(t, filepath.Join(o.out, checkDir))
				live := readLiveFindings(t, o.out)
				if uint64(len(fs)) != sum.Check.Findings || len(live) != len(fs) {
					t.Errorf("expected summary, findings.json and the live file to agree, actual %d, %d, %d",
						sum.Check.Findings, len(fs), len(live))
				}
				slo := sum.SLO[len(sum.SLO)-1]
				if slo.Threshold != "violations<=0" || slo.Pass != (tc.req == "") {
					t.Errorf("expected the violations SLO judged (pass=%v), actual %+v", tc.req == "", slo)
				}
				if tc.req == "" {
					if sum.Check.Findings != 0 || len(sum.Check.ByRequirement) != 0 {
						t.Fatalf("expected no finding on the reference's load, actual %+v\n%v", sum.Check, fs)
					}
					return
				}
				g := findGroup(sum.Check, tc.req)
				if g == nil || g.Participant != watch.ConnectorParticipant || g.Findings == 0 || g.Evidence < g.Findings {
					t.Fatalf("expected %s blamed on the connector with evidence, actual %+v", tc.req, sum.Check.ByRequirement)
				}
				if !strings.Contains(out.String(), tc.req) || !strings.Contains(out.String(), "FAIL violations<=0") {
					t.Errorf("expected the end-of-run print to name %s and the failed SLO, actual:\n%s", tc.req, out.String())
				}
				rep, err := loadreport.Build([]string{o.out}, loadreport.Options{})
				if err != nil || rep.Check == nil || findGroup(rep.Check, tc.req) == nil {
					t.Errorf("expected the load report to carry the check, actual %v", err)
				}
				var html bytes.Buffer
				if err := rep.HTML(&html); err != nil || !strings.Contains(html.String(), "Protocol check") {
					t.Errorf("expected the HTML report's protocol check section, actual err %v", err)
				}
			})
		}
	}
}

// Ctrl-C in the middle of a load --check run keeps the checker's findings: in the summary
// (which the interrupted run still finalizes), the live file and the bundle.
func TestLoadCheckInterrupted(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.check, o.fault, o.rejectShare = true, "alter-ice:3", 0
	o.duration = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(5*time.Second, cancel)
	defer stop.Stop()
	var out bytes.Buffer
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	if exitCode(err) != exitLoadInvalid {
		t.Fatalf("interrupted run: expected exit %d, actual %v\n%s", exitLoadInvalid, err, out.String())
	}
	sum := loadCheckSummary(t, o.out, "hook")
	if !sum.Interrupted || findGroup(sum.Check, "ICE-004") == nil {
		t.Fatalf("interrupted run: expected an interrupted summary with ICE-004 found, actual interrupted=%v %+v", sum.Interrupted, sum.Check)
	}
	if live := readLiveFindings(t, o.out); uint64(len(live)) != sum.Check.Findings {
		t.Errorf("interrupted run: expected %d live findings, actual %d", sum.Check.Findings, len(live))
	}
	readFindingsOnly(t, filepath.Join(o.out, checkDir))
}

// --slo violations<=N without --check is refused: nothing would count them.
func TestLoadViolationsSLONeedsCheck(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.sloSpec = "lost<=0,violations<=0"
	err := runLoad(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{}, false, slog.New(slog.DiscardHandler))
	if exitCode(err) != exitLoadInvalid || !strings.Contains(err.Error(), "needs --check") {
		t.Fatalf("expected exit %d saying violations needs --check, actual %v", exitLoadInvalid, err)
	}
}

// loadCheckSummary reads summary.json and requires its check section.
func loadCheckSummary(t *testing.T, dir, mode string) *results.Summary {
	t.Helper()
	sum, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Check == nil {
		t.Fatal("summary.json: expected a check section, actual none")
	}
	if sum.Check.Mode != mode || sum.Check.Observed == 0 || sum.Check.Bundle != checkDir {
		t.Errorf("summary.json check: expected mode %s, publishes observed, bundle %s; actual %+v", mode, checkDir, sum.Check)
	}
	return sum
}

// readLiveFindings reads the findings the checker appended as it made them.
func readLiveFindings(t *testing.T, dir string) []watch.Finding {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, checkDir, liveFindingsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fs []watch.Finding
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var x watch.Finding
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%s: %v", liveFindingsFile, err)
		}
		fs = append(fs, x)
	}
	return fs
}

func findGroup(c *results.Check, req string) *results.CheckGroup {
	for i, g := range c.ByRequirement {
		if g.Requirement == req {
			return &c.ByRequirement[i]
		}
	}
	return nil
}

// envLong enables the long load runs that only CI makes (.ci/run sets it).
const envLong = "RTCOMM_LONG"

// TestLoadCheckLong (CI only: RTCOMM_LONG=1): load --check for 60 s at 100 calls/s against
// the embedded reference, the checker in the broker, gives no finding, and the violations SLO
// passes. Calls hold 2 s on average (about 200 at a time on 1,000 endpoints); rejected and
// unanswered calls keep their default shares, so every call shape is judged.
func TestLoadCheckLong(t *testing.T) {
	if os.Getenv(envLong) != "1" {
		t.Skipf("a 60 s load run at 100 calls/s: CI only (set %s=1; .ci/run does)", envLong)
	}
	o := defaultLoadOptions()
	o.rate, o.duration, o.holdMean = 100, 60*time.Second, 2*time.Second
	sum := runCleanLoadCheck(t, o, "hook", 4*time.Minute)
	// The run really was one: about 6,000 calls, each some 20 publishes.
	if sum.Tally.Attempts < 5000 || sum.Check.Observed < 50_000 {
		t.Errorf("expected about 6,000 calls and over 50,000 publishes judged, actual %d calls, %d publishes",
			sum.Tally.Attempts, sum.Check.Observed)
	}
}

// TestLoadCheckMosquitto (CI only, RTCOMM_LONG=1: about 30 s): load --check against a real
// broker, mosquitto, the checker subscribed to <topic path># (subscription mode), with the
// default call mix (rejected and unanswered calls, hang-ups from either side): 50 calls/s
// for 20 s give no finding and violations<=0 passes. With alter-ice:3 planted the same run
// exits 1 on ICE-004 (tried by hand); TestLoadCheck proves that on every run.
func TestLoadCheckMosquitto(t *testing.T) {
	if os.Getenv(envLong) != "1" {
		t.Skipf("a 20 s load run at 50 calls/s on mosquitto: CI only (set %s=1; .ci/run does)", envLong)
	}
	mq := extbroker.MosquittoForTest(t)
	o := defaultLoadOptions()
	o.brokerURL = mq.TCP
	o.endpoints, o.rate, o.duration, o.holdMean, o.ringTimeout = 500, 50, 20*time.Second, 2*time.Second, 5*time.Second
	sum := runCleanLoadCheck(t, o, "subscription", 2*time.Minute)
	// The run really was one, with the whole mix: about 1,000 calls, some rejected, some
	// unanswered, the rest hung up, each some 20 publishes.
	tl := sum.Tally
	if tl.Attempts < 800 || tl.Outcomes[metrics.Rejected] == 0 || tl.Outcomes[metrics.NoAnswer] == 0 || sum.Check.Observed < 15_000 {
		t.Errorf("expected about 1,000 calls (rejected and unanswered among them) and over 15,000 publishes judged, actual %d calls (%d rejected, %d unanswered), %d publishes",
			tl.Attempts, tl.Outcomes[metrics.Rejected], tl.Outcomes[metrics.NoAnswer], sum.Check.Observed)
	}
}

// runCleanLoadCheck runs load --check --slo violations<=0 with o and fails the test unless
// the checker (in mode) found nothing and the run exited 0 (or 2 only because the shared
// machine made the generator late: what the checker saw is judged all the same).
func runCleanLoadCheck(t *testing.T, o loadOptions, mode string, timeout time.Duration) *results.Summary {
	t.Helper()
	o.check, o.sloSpec, o.maxLate = true, "violations<=0", 0.05
	o.topicPath = "/lgcl-" + mqttc.RandomClientID("")[:8] + "/"
	o.out = filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	t.Logf("load --check:\n%s", out.String())
	switch code := exitCode(err); {
	case code == exitLoadInvalid && strings.Contains(err.Error(), "late starts"):
		t.Logf("the generator fell behind (exit 2): findings judged, exit 0 not: %v", err)
	case code != 0:
		t.Fatalf("expected exit 0, actual %d (%v)", code, err)
	}
	sum := loadCheckSummary(t, o.out, mode)
	if sum.Check.Findings != 0 {
		t.Fatalf("expected no finding on the reference's load, actual %d: %+v", sum.Check.Findings, sum.Check.ByRequirement)
	}
	if v := sum.SLO[0]; v.Threshold != "violations<=0" || !v.Pass {
		t.Errorf("expected violations<=0 to pass, actual %+v", v)
	}
	t.Logf("%d calls, %d publishes judged, 0 findings", sum.Tally.Attempts, sum.Check.Observed)
	return sum
}

// Once the run's results are final, load --check's hook judges no more fates: a PUBLISH
// the broker refused after the cut (the endpoints closing) gives no finding; before it, one
// does (the publish ledger is on).
func TestLoadHookStopsJudgingFates(t *testing.T) {
	var got []watch.Finding
	var off atomic.Bool
	h := &loadHook{Hook: watch.Hook{Checker: watch.New(watch.Config{TopicPath: "/lh/"}), Broker: watch.NewBroker("/lh/"),
		OnFinding: func(f watch.Finding) { got = append(got, f) }}, off: &off}
	cl := &mqtt.Client{ID: "pub"}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "/lh/bob/pub", Payload: []byte("{}")}
	refused := mqtt.PublishFate{Refused: errors.New("refused"), Hook: "faulty"}
	h.OnPublishFate(cl, pk, refused)
	if len(got) != 1 || got[0].Participant != watch.BrokerParticipant {
		t.Fatalf("during the run: expected a finding against the broker, actual %v", got)
	}
	off.Store(true)
	h.OnPublishFate(cl, pk, refused)
	if len(got) != 1 {
		t.Fatalf("after the cut: expected no new finding, actual %v", got[1:])
	}
}
