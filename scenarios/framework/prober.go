package framework

import (
	"github.com/google/uuid"
	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Prober is a raw rtcomm client: an MQTT connection subscribed to its own inbox, sending
// hand-built messages. Scenarios use it where they need to control every byte.
type Prober struct {
	*Conn
	ID   string
	Addr string // <path><id>: its address and fromTopic
}

// Prober connects a raw client for role, subscribed to <path><id>/# (and <path><id>).
func (e *Env) Prober(role string) *Prober {
	GinkgoHelper()
	id := e.ID(role)
	c, err := e.Connect(id, ConnOptions{Validate: true, AsID: id, MQTT31: true})
	Harness(err, "harness: connect "+id)
	p := &Prober{Conn: c, ID: id, Addr: e.Topics.Inbox(id)}
	Harness(c.Subscribe(p.Addr+"/#", 0), "harness: subscribe inbox")
	return p
}

// Query publishes a SERVICE_QUERY at <path>management/<id> and returns its transID.
func (p *Prober) Query() string {
	GinkgoHelper()
	tid := uuid.NewString()
	Harness(p.Send(spec.Join(p.env.Topics.Management(), p.ID), &spec.Message{
		Method: spec.MethodServiceQuery, TransID: tid, FromTopic: p.Addr,
	}), "harness: publish SERVICE_QUERY")
	return tid
}

// Answer waits for the RESPONSE to the query with transID tid.
func (p *Prober) Answer(req, tid string) (Msg, *spec.Message) {
	GinkgoHelper()
	m, ok := p.Inbox().Await(p.env.Ctx, p.env.Reply(), IsResponse(spec.MethodServiceQuery, tid))
	if !ok {
		Precondition(req, "RESPONSE orig SERVICE_QUERY with transID "+tid+" within "+p.env.Reply().String(),
			"%s", p.Inbox().Summary())
	}
	return m, m.Decode()
}
