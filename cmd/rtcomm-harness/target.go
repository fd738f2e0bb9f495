package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/sim"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// targetFlags are the flags of the commands that put simulated endpoints on a target (load,
// capacity): the broker, whether a connector is attached already, the topic path, the
// credentials and the endpoints' IDs. One declaration keeps names, defaults and help equal.
type targetFlags struct {
	brokerURL   string
	noConnector bool
	topicPath   string
	username    string
	password    string
	idPrefix    string
	client      string
	sourceAddrs int
}

// addTargetFlags declares --broker, --no-connector, --topic-path, --username, --password and
// --id-prefix on f; t's topicPath and idPrefix (when set) are the defaults.
func addTargetFlags(f *pflag.FlagSet, t *targetFlags) {
	f.StringVar(&t.brokerURL, "broker", "", "external broker URL (tcp://, ws://, ssl://, wss://); empty runs the embedded reference")
	f.BoolVar(&t.noConnector, "no-connector", false, "with --broker: a connector is already attached; do not start the reference connector")
	addTopicPathFlag(f, &t.topicPath)
	f.StringVar(&t.username, "username", "", "MQTT username of the endpoints and the harness's clients (external broker)")
	f.StringVar(&t.password, "password", "", "MQTT password")
	f.StringVar(&t.idPrefix, "id-prefix", t.idPrefix, "prefix of the simulated endpoints' IDs")
	f.StringVar(&t.client, "client", sim.ClientAuto, "MQTT client of the simulated endpoints: light (one goroutine per connection, batched writes; "+
		"tcp:// and mqtt:// only), paho (also TLS and WebSocket), or auto: light where it can, paho otherwise (docs/PERFORMANCE.md)")
	f.IntVar(&t.sourceAddrs, "source-addrs", 0, "spread the endpoints' connections over the source addresses 127.0.0.1 .. 127.0.0.N (loopback "+
		"gives each ~28,000 ports; light client only); 0 = automatic: one per 20,000 endpoints when the broker is on 127.x")
}

// poolConfig applies the flags' client choice to pc.
func (t *targetFlags) poolConfig(pc *sim.PoolConfig) error {
	pc.Client = t.client
	if t.sourceAddrs < 0 {
		return fmt.Errorf("--source-addrs %d: must be 0 (automatic) or more", t.sourceAddrs)
	}
	if t.sourceAddrs > 0 {
		if t.client == sim.ClientPaho {
			return fmt.Errorf("--source-addrs needs the light client (--client %s or %s)", sim.ClientLight, sim.ClientAuto)
		}
		ips, err := sim.LoopbackSources(t.sourceAddrs)
		if err != nil {
			return fmt.Errorf("--source-addrs: %w", err)
		}
		pc.SourceAddrs = ips
	}
	return nil
}

// addTopicPathFlag declares --topic-path on f; *p when set is the default, else
// spec.DefaultTopicPath.
func addTopicPathFlag(f *pflag.FlagSet, p *string) {
	if *p == "" {
		*p = spec.DefaultTopicPath
	}
	f.StringVar(p, "topic-path", *p, "rtcomm topic path")
}

// target is the sim.Target the flags describe.
func (t *targetFlags) target(log *slog.Logger) sim.Target {
	return sim.Target{BrokerURL: t.brokerURL, NoConnector: t.noConnector, TopicPath: t.topicPath,
		Username: t.username, Password: t.password, Logger: log}
}
