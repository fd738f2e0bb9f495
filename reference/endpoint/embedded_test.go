package endpoint_test

import (
	"context"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
)

// startEmbedded starts the embedded broker on a random loopback port.
func startEmbedded(t testing.TB) string {
	t.Helper()
	return startEmbeddedBroker(t).TCPURL()
}

func startEmbeddedBroker(t testing.TB) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
