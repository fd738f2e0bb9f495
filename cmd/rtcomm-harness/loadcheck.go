package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// loadCheck is load --check: the passive checker beside the load generator, as a hook of
// the embedded broker or subscribed to <topic path># on an external one. It keeps no trace
// (a load run publishes too much); findings.json and the verdicts go to <results>/check.
type loadCheck struct {
	dir   string
	start time.Time
	c     *watch.Checker
	hook  *watch.Hook
	sub   *mqttc.Client
}

func newLoadCheck(o loadOptions, dir string, log *slog.Logger) (*loadCheck, error) {
	c := watch.New(watch.Config{TopicPath: o.topicPath, Profile: spec.ProfileClient, FromStart: o.brokerURL == ""})
	return &loadCheck{dir: filepath.Join(dir, "check"), start: time.Now(), c: c,
		hook: &watch.Hook{Checker: c, OnFinding: func(f watch.Finding) { logFinding(log, f) }}}, nil
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
		for _, f := range l.c.Observe(watch.Observation{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, Time: time.Now()}) {
			l.hook.OnFinding(f)
		}
	}); err != nil {
		cl.Close()
		return fmt.Errorf("--check: subscribe %s: %w", filter, err)
	}
	l.sub = cl
	return nil
}

func (l *loadCheck) close() {
	if l.sub != nil {
		l.sub.Close()
	}
}

// finish writes the check bundle and judges the violations clause of --slo.
func (l *loadCheck) finish(out io.Writer, slo *violationsSLO, log *slog.Logger) error {
	l.close()
	for _, f := range l.c.Finish(time.Now()) {
		l.hook.OnFinding(f)
	}
	t := verdict.Target{Name: "load run", Mode: "check", Profile: spec.ProfileClient,
		Description: "passive check of a load run's traffic"}
	return finishCheck(out, l.dir, l.c, t, l.start, slo, log)
}

// splitViolationsSLO takes the violations clause out of a load --slo (load's own SLO
// grammar has no findings); without --check such a clause is an error.
func splitViolationsSLO(spec string, check bool) (rest string, v *violationsSLO, err error) {
	var keep []string
	for _, c := range strings.Split(spec, ",") {
		if strings.HasPrefix(strings.TrimSpace(c), "violations") {
			if !check {
				return "", nil, fmt.Errorf("%q needs --check", strings.TrimSpace(c))
			}
			if v, err = parseViolationsSLO(c); err != nil {
				return "", nil, err
			}
			continue
		}
		if strings.TrimSpace(c) != "" {
			keep = append(keep, c)
		}
	}
	return strings.Join(keep, ","), v, nil
}
