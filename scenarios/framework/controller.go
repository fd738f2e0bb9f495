package framework

import (
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Controller is a 3PCC service client shaped like lib.rtcomm.node: its fromTopic is a bare
// client ID outside the topic path, and it publishes to the call-control topic exactly.
type Controller struct {
	*Conn
	From string // its fromTopic (and client ID), where RESPONSEs arrive
	CC   string // the call-control topic it publishes to (from the service query answer)
	ver  string // rtcommVer: lib.rtcomm.node's v0.0.1 in the client profile (lib/3pcc.js startCall)
}

// NewController connects a 3PCC requester and finds the call-control topic in the service
// query answer (default <path>callControl).
func NewController(e *Env) *Controller {
	GinkgoHelper()
	c, err := e.Connect("controller", ConnOptions{Validate: true})
	Harness(err, "harness: connect the 3PCC controller")
	from := "ctl-" + e.Tag
	e.Watch(from)
	e.Watch(from + "/#")
	Harness(c.Subscribe(from, 0), "subscribe")
	Harness(c.Subscribe(from+"/#", 0), "subscribe")
	cc := e.Topics.CallControl()
	probe := e.Prober("ccprobe")
	_, resp := probe.Answer("SQ-002", probe.Query())
	if s, ok := resp.Services[spec.ServiceCallControl]; ok && s.Topic != "" {
		cc = e.Topics.Resolve(s.Topic)
	}
	ver := spec.Version
	if e.Decl.Profile == ProfileClient {
		ver = spec.ServiceLibVersion // what the official library sends: a target must take it FMT-003
	}
	return &Controller{Conn: c, From: from, CC: cc, ver: ver}
}

// Place publishes 3PCC_PLACE_CALL and returns its transID.
func (c *Controller) Place(caller, callee string) string {
	GinkgoHelper()
	tid := RandomUUID()
	Harness(c.Send(c.CC, &spec.Message{Method: spec.Method3PCCPlaceCall, RtcommVer: c.ver, TransID: tid, FromTopic: c.From,
		CallerEndpoint: caller, CalleeEndpoint: callee}), "publish 3PCC_PLACE_CALL")
	return tid
}

// Response waits up to 45 s (lib.rtcomm.node's timeout) for the RESPONSE to transID.
func (c *Controller) Response(e *Env, tid string) (Msg, bool) {
	return c.Inbox().Await(e.Ctx, min(45*time.Second, e.Reply()*3), IsResponse(spec.Method3PCCPlaceCall, tid))
}

// AwaitRefer returns the REFER the connector sends caller after a 3PCC_PLACE_CALL (REF-003).
func AwaitRefer(e *Env, caller *Party) *endpoint.Refer {
	select {
	case ref := <-caller.Refers():
		return ref
	case <-time.After(e.Reply()):
		Precondition("REF-003", "REFER at the caller "+caller.ID(), "nothing within %s; %s received %s", e.Reply(), caller.ID(), caller.Inbox().Summary())
		return nil // not reached: precondition fails the spec
	}
}

// ReferredCall has ctl ask the connector to make caller call callee: it awaits the REFER
// (REF-003), accepts it with an offer and returns the callee's invite (REF-005).
func ReferredCall(e *Env, ctl *Controller, caller, callee *Party) (tid string, ref *endpoint.Refer, inv *endpoint.Invite) {
	GinkgoHelper()
	tid = ctl.Place(caller.ID(), callee.ID())
	ref = AwaitRefer(e, caller)
	c, cancel := e.OpContext()
	defer cancel()
	_, err := ref.Accept(c, endpoint.WithPayload(MustOffer("chrome-audio-offer")))
	Harness(err, "accept REFER")
	return tid, ref, callee.Invite("REF-005")
}
