package connector

import "github.com/rtcomm-harness/rtcomm-harness/spec"

// inbound is one message on the relay path: its raw bytes, where its fields
// are (scanMessage), and, when it had to take the slow path, spec.Decode's view.
type inbound struct {
	raw     []byte
	s       scanned
	scanErr error
	m       *spec.Message // slow path only

	method       spec.Method
	orig         spec.Method
	sigSessID    []byte
	transID      []byte
	fromTopic    []byte
	toEndpointID []byte
	result       []byte
	reason       []byte
	hold         int
	payload      []byte
}

// scan runs the single validating pass; fast reports whether the fields can
// be used as they are (no spec.Decode needed).
func (in *inbound) scan(raw []byte) (fast bool) {
	in.raw = raw
	in.scanErr = scanMessage(raw, &in.s)
	if in.scanErr != nil || in.s.slow {
		return false
	}
	r, f := raw, &in.s.f
	if v := f[fRtcommVer].in(r); len(v) > 0 && string(v) != spec.Version {
		return false // the slow path answers it
	}
	in.method = method(f[fMethod].in(r))
	in.orig = method(f[fOrig].in(r))
	in.sigSessID = f[fSigSessID].in(r)
	in.transID = f[fTransID].in(r)
	in.fromTopic = f[fFromTopic].in(r)
	in.toEndpointID = f[fToEndpointID].in(r)
	in.result = f[fResult].in(r)
	in.reason = f[fReason].in(r)
	in.hold = in.s.hold
	if f[fPayload].ok() {
		in.payload = f[fPayload].in(r)
	}
	return true
}

// useDecoded takes the fields from spec.Decode's result (slow path).
func (in *inbound) useDecoded(m *spec.Message) {
	in.m = m
	in.method, in.orig = m.Method, m.Orig
	in.sigSessID, in.transID, in.fromTopic = []byte(m.SigSessID), []byte(m.TransID), []byte(m.FromTopic)
	in.result, in.reason = []byte(m.Result), []byte(m.Reason)
	in.toEndpointID = []byte(m.ToEndpointID)
	in.hold = 0
	if m.HoldTimeout != nil {
		in.hold = *m.HoldTimeout
	}
	in.payload = m.Payload
}

// msg is the message as spec.Message, for answering it (rare paths only).
func (in *inbound) msg() *spec.Message {
	if in.m != nil {
		return in.m
	}
	return &spec.Message{Method: in.method, TransID: string(in.transID), SigSessID: string(in.sigSessID),
		FromTopic: string(in.fromTopic)}
}

// isReferResponse: a RESPONSE to the connector's REFER (orig REFER, or a bare
// RESPONSE without a session).
func (in *inbound) isReferResponse() bool {
	return in.method == spec.MethodResponse &&
		(in.orig == spec.MethodRefer || (in.orig == "" && len(in.sigSessID) == 0))
}

func isRelayMethod(m spec.Method) bool {
	switch m {
	case spec.MethodPranswer, spec.MethodResponse, spec.MethodMessage, spec.MethodStopSession:
		return true
	}
	return false
}
