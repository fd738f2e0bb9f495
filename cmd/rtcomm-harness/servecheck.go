package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// serveCheck is serve --check: the passive checker as a hook of the embedded broker.
type serveCheck struct {
	o     serveOptions
	start time.Time
	trace *os.File
	c     *watch.Checker
	hook  *watch.Hook
	slo   *violationsSLO
	cfg   watch.Config
}

func newServeCheck(o serveOptions, reg prometheus.Registerer, log *slog.Logger) (*serveCheck, error) {
	prof, err := checkProfile(o.checkProfile)
	if err != nil {
		return nil, fmt.Errorf("--check-profile: %w", err)
	}
	slo, err := parseViolationsSLO(o.checkSLO)
	if err != nil {
		return nil, fmt.Errorf("--check-slo: %w", err)
	}
	if o.checkOut == "" {
		o.checkOut = filepath.Join("results", "check-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(o.checkOut, 0o755); err != nil {
		return nil, fmt.Errorf("--check-out: %w", err)
	}
	trace, err := os.Create(filepath.Join(o.checkOut, watch.TraceFile))
	if err != nil {
		return nil, fmt.Errorf("--check-out: %w", err)
	}
	violations := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcomm_check_violations_total",
		Help: "Protocol violations the in-broker checker found (serve --check), per requirement."}, []string{"requirement"})
	if err := reg.Register(violations); err != nil {
		trace.Close()
		return nil, fmt.Errorf("check metrics: %w", err)
	}
	s := &serveCheck{o: o, start: time.Now(), trace: trace, slo: slo,
		cfg: watch.Config{TopicPath: o.topicPath, Profile: prof, FromStart: true, Trace: trace}}
	s.c = watch.New(s.cfg)
	bj := watch.NewBroker(o.topicPath)
	// The embedded broker's topic limits, open and secure mode alike (ID-017): a filter it
	// grants or a will topic it accepts beyond them is its fault.
	bj.SetLimits(watch.TopicLimits{MaxLength: cmp.Or(o.maxTopicLength, broker.DefaultMaxTopicLength),
		MaxLevels: cmp.Or(o.maxTopicLevels, broker.DefaultMaxTopicLevels)})
	// Its payload limit: a larger PUBLISH it refuses is refused lawfully (publish ledger).
	bj.SetMaxPayload(cmp.Or(o.maxPayload, broker.DefaultMaxPayload))
	// The embedded broker's retention policy (ID-016), to model its retained store (BRK-001):
	// quotas in both modes, presence topics only in secure mode.
	ret := watch.Retention{Quota: cmp.Or(o.retainedQuota, broker.DefaultRetainedQuota), Total: broker.DefaultRetainedTotal}
	if o.secure {
		// The secured broker's identity rule, the connector's user exempt (ID-005/008/009),
		// and its retained quota per user (ID-016); serve tells it the call controllers
		// once it has read the credentials file (ID-015).
		bj.SetSecure(o.topicPath, o.connectorUser)
		bj.SetRetainedQuota(cmp.Or(o.retainedQuota, broker.DefaultRetainedQuota))
		ret.PresencePath, ret.Exempt = spec.NewTopics(o.topicPath).Path, o.connectorUser
	}
	bj.SetRetention(ret)
	s.hook = &watch.Hook{Checker: s.c, Broker: bj, OnFinding: func(f watch.Finding) {
		violations.WithLabelValues(f.Requirement).Inc()
		logFinding(log, f)
	}}
	return s, nil
}

// connector names the reference connector's MQTT client, so its own messages are blamed on
// "connector". It runs before the connector connects, so no message is judged without it.
func (s *serveCheck) connector(clientID string) { s.c.AddConnectorClient(clientID) }

// finish judges what time alone shows and writes the bundle (serve's Ctrl-C).
func (s *serveCheck) finish(out io.Writer, b *broker.Broker, log *slog.Logger) error {
	defer s.trace.Close()
	s.hook.FinishBroker(time.Now()) // reports through OnFinding
	for _, f := range s.c.Finish(time.Now()) {
		s.hook.OnFinding(f)
	}
	t := verdict.Target{Name: "clients of serve --check", Mode: "check", Profile: s.cfg.Profile, TopicPath: s.o.topicPath,
		Description: "passive check inside the embedded broker (every inbound publish, with its client)"}
	if b != nil {
		t.Broker = verdict.Broker{TCP: b.TCPURL(), WS: b.WSURL()}
	}
	return finishCheck(out, s.o.checkOut, s.c, t, s.start, s.slo, log)
}
