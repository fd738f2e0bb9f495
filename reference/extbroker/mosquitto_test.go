package extbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func TestMosquittoServesTCPAndWebSocket(t *testing.T) {
	t.Parallel()
	p := extbroker.MosquittoForTest(t)
	roundTrip(t, p.TCP, "")
	roundTrip(t, p.WS, "")
}

func TestMosquittoCloseStopsIt(t *testing.T) {
	t.Parallel()
	p := extbroker.MosquittoForTest(t)
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: p.TCP}); err == nil {
		c.Close()
		t.Fatal("expected the broker to be gone after Close, actual a successful connect")
	}
}
