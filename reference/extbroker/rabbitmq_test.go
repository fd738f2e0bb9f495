package extbroker_test

import (
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
)

func TestRabbitMQServesTCPAndWebSocket(t *testing.T) {
	t.Parallel()
	p := extbroker.RabbitMQForTest(t)
	roundTrip(t, p.TCP, "")
	roundTrip(t, p.WS, "")
	p.Close()
}
