package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

// A STOP_SESSION without sigSessID (SESS-011): the planted client bug of these tests.
const buggyStop = `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","fromTopic":"%sbuggy","reason":"done"}`

func publishAs(t *testing.T, url, clientID, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, ClientID: clientID})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Publish(ctx, topic, 1, false, []byte(payload)); err != nil {
		t.Fatal(err)
	}
}

func readFindings(t *testing.T, dir string) []watch.Finding {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, watch.TraceFile)); err != nil {
		t.Errorf("bundle: expected %s, actual %v", watch.TraceFile, err)
	}
	return readFindingsOnly(t, dir)
}

// readFindingsOnly checks a bundle without a trace (load --check) and reads its findings.
func readFindingsOnly(t *testing.T, dir string) []watch.Finding {
	t.Helper()
	for _, f := range []string{verdict.File, "junit.xml", reportHTML, reportMD, watch.FindingsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("bundle: expected %s, actual %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, watch.FindingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var fs []watch.Finding
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// check --broker: a subscription sees a client's bug, blames the sender ID, writes the
// bundle, and --slo violations<=0 exits 1.
func TestCheckCommandFindsAClientBug(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir, path := t.TempDir(), "/chk-cmd/"
	done := make(chan error, 1)
	go func() {
		done <- runCheck(context.Background(), checkOptions{brokerURL: b.TCPURL(), topicPath: path, profile: "client",
			sloSpec: "violations<=0", out: dir, duration: 1500 * time.Millisecond}, io.Discard, slog.New(slog.DiscardHandler))
	}()
	time.Sleep(500 * time.Millisecond) // the checker subscribes
	publishAs(t, b.TCPURL(), "dev-1", path+"connector/buggy", strings.ReplaceAll(buggyStop, "%s", path))
	if code := exitCode(<-done); code != exitCheckBreached {
		t.Fatalf("expected exit %d (--slo breached), actual %d", exitCheckBreached, code)
	}
	fs := readFindings(t, dir)
	if len(fs) != 1 || fs[0].Requirement != "SESS-011" || fs[0].Participant != "buggy" {
		t.Fatalf("expected one SESS-011 finding blamed on buggy, actual %+v", fs)
	}
	v, err := verdict.Read(filepath.Join(dir, verdict.File))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := v.Get("SESS-011"); r.Verdict != verdict.Fail || v.Certified {
		t.Fatalf("expected SESS-011 fail and not certified, actual %s certified=%v", r.Verdict, v.Certified)
	}
}

// serve --check: the hook blames the MQTT client that sent the bug; a correct client
// (the reference endpoint registering and querying the connector) gets no finding.
func TestServeCheckBlamesTheClient(t *testing.T) {
	t.Parallel()
	dir, path := t.TempDir(), "/srv-chk/"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := serveOptions{tcpAddr: "127.0.0.1:0", wsAddr: "off", httpAddr: "off", topicPath: path, maxPayload: 1 << 20,
		answerTimeout: time.Second, check: true, checkOut: dir, checkProfile: "client", checkSLO: "violations<=0"}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, o, pw, slog.New(slog.DiscardHandler)); pw.Close() }()
	var url string
	buf := make([]byte, 4096)
	var text string
	for !strings.Contains(text, "serving") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		text += string(buf[:n])
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "mqtt tcp" {
			url = strings.TrimSpace(v)
		}
	}
	ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
	defer ecancel()
	e, err := endpoint.Dial(ectx, endpoint.Config{BrokerURL: url, TopicPath: path, ID: "good", ClientID: "good-client"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Register(ectx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ServiceQuery(ectx); err != nil {
		t.Fatal(err)
	}
	e.Close()
	publishAs(t, url, "buggy-client", path+"connector/buggy", strings.ReplaceAll(buggyStop, "%s", path))
	time.Sleep(100 * time.Millisecond)
	cancel()
	if code := exitCode(<-done); code != exitCheckBreached {
		t.Fatalf("expected exit %d (--check-slo breached), actual %d", exitCheckBreached, code)
	}
	fs := readFindings(t, dir)
	if len(fs) != 1 || fs[0].Requirement != "SESS-011" || fs[0].Participant != "buggy-client" {
		t.Fatalf("expected one SESS-011 finding blamed on buggy-client, actual %+v", fs)
	}
}
