package connector

import (
	"context"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// InProcess returns the Config.Dial of a connector running beside the embedded broker b in
// one process: its in-process link (broker.LocalClient). The broker's hooks see the same MQTT
// client as over a socket (client ID, credentials, will, ACLs, OnPublish), without the encode,
// syscalls and decode of a loopback connection each way. Replicas of a shared group and
// external brokers keep the socket (mqttc.Dial).
func InProcess(b *broker.Broker) func(context.Context, mqttc.Options) (Link, error) {
	return func(ctx context.Context, o mqttc.Options) (Link, error) {
		lc, err := b.DialLocal(ctx, o)
		if err != nil {
			return nil, err
		}
		return lc, nil
	}
}
