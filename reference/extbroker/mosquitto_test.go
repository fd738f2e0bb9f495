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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{p.TCP, p.WS} {
		sub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url})
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		got := make(chan []byte, 1)
		if err := sub.Subscribe(ctx, "/ext/x/#", 1, func(m mqttc.Message) { got <- m.Payload }); err != nil {
			t.Fatal(err)
		}
		if err := sub.Publish(ctx, "/ext/x/alice", 1, false, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b) != "hi" {
				t.Errorf("%s: expected hi, actual %q", url, b)
			}
		case <-ctx.Done():
			t.Fatalf("%s: expected a message, none arrived", url)
		}
		sub.Close()
	}
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
