package framework

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// referenceAnswerTimeout reaps unanswered sessions quickly enough for scenarios that check
// reaping (SESS-009) to stay short, and slowly enough never to hit a normal call.
const referenceAnswerTimeout = 30 * time.Second

// ReferenceConnector starts the reference connector for one scenario (modes embedded and
// broker): one connector, or p.Topology.Replicas replicas in one shared group.
func ReferenceConnector(ctx context.Context, p ConnectorParams) (func(), error) {
	n := max(1, p.Topology.Replicas)
	group := ""
	if n > 1 {
		group = "replicas-" + RandomTag(6)
	}
	var started []*connector.Connector
	stop := func() {
		var wg sync.WaitGroup
		for _, c := range started {
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Close() }()
		}
		wg.Wait()
	}
	for i := range n {
		cfg := ReferenceConfig(p)
		if n > 1 {
			cfg.SharedGroup = group
			if cfg.ClientID == "" { // in secure mode ReferenceConfig names the user in it (ID-012)
				cfg.ClientID = fmt.Sprintf("rtcconn-%d-%s", i+1, RandomTag(6))
			}
		}
		c, err := connector.New(cfg)
		if err != nil {
			stop()
			return nil, fmt.Errorf("reference connector: %w", err)
		}
		if err := c.Start(ctx); err != nil {
			_ = c.Close()
			stop()
			return nil, fmt.Errorf("reference connector on %s: %w", p.BrokerURL, err)
		}
		started = append(started, c)
	}
	return stop, nil
}

// ReferenceConfig is the reference connector's configuration for one scenario's parameters
// (exported so test doubles can start a modified reference connector).
func ReferenceConfig(p ConnectorParams) connector.Config {
	cfg := connector.DefaultConfig()
	cfg.BrokerURL = p.BrokerURL
	cfg.TopicPath = p.TopicPath
	cfg.Username, cfg.Password = p.Username, p.Password
	cfg.TLSConfig = p.TLSConfig
	cfg.Events = p.Events
	cfg.CallControl = p.CallCtl
	cfg.Queues = p.Queues
	cfg.AnswerTimeout = referenceAnswerTimeout
	cfg.Secure, cfg.CallControllers = p.Secure, p.CallControllers
	if p.Secure && p.Username != "" {
		// A client ID naming its user: no other user can take it (ID-012).
		cfg.ClientID = p.Username + ":" + mqttc.RandomClientID("")
	}
	cfg.RouteOnly = p.Topology.RouteOnly
	if p.Profile == ProfileStrict {
		// The grace after a replacement ignores the first empty presence message (rtcomm.js's
		// goodbye, REG-009). Strict clients send no goodbye, so under the strict profile it
		// would swallow the newcomer's own unregister (REG-008): switch it off.
		cfg.ReplaceGrace = connector.NoReplaceGrace
	}
	for _, s := range p.Schemes {
		cfg.Schemes = append(cfg.Schemes, connector.SchemeRoute{Scheme: s.Scheme, Topic: schemeTopic(p.TopicPath, s.Topic)})
	}
	if p.Broker != nil && p.BrokerURL == p.Broker.TCPURL() && p.Topology.Replicas <= 1 {
		cfg.Dial = connector.InProcess(p.Broker) // replicas keep the socket, as serve's do
	}
	cfg.Logger = p.Logger
	return cfg
}

// schemeTopic makes a declared scheme topic absolute under the topic path.
func schemeTopic(path, topic string) string {
	if len(topic) > 0 && topic[0] == '/' || len(path) > 0 && len(topic) >= len(path) && topic[:len(path)] == path {
		return topic
	}
	return path + topic
}
