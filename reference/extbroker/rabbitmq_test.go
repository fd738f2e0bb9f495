package extbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func TestRabbitMQServesTCPAndWebSocket(t *testing.T) {
	t.Parallel()
	p := extbroker.RabbitMQForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{p.TCP, p.WS} {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url})
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		got := make(chan []byte, 1)
		if err := c.Subscribe(ctx, "/ext/x/+", 1, func(m mqttc.Message) { got <- m.Payload }); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, "/ext/x/alice", 1, false, []byte("hi")); err != nil {
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
		c.Close()
	}
	p.Close()
}
