package spec_test

import (
	"encoding/json"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// spec.Encode's fast path (no Extra) must give exactly json.Marshal's bytes.
func TestEncodeMatchesJSONMarshal(t *testing.T) {
	t.Parallel()
	hold := 30
	msgs := []*spec.Message{
		{Method: spec.MethodStartSession, FromTopic: "/rtcomm/a<b>&c", SigSessID: "s\u2028", TransID: "t",
			ToEndpointID: "x\"y", Protocols: []string{"webrtc"}, HoldTimeout: &hold,
			Payload: json.RawMessage(`{ "webrtc" : {"type":"offer","sdp":"v=0\r\n<&>"} }`)},
		{Method: spec.MethodResponse, Orig: spec.MethodServiceQuery, Result: "SUCCESS",
			Services: map[string]spec.Service{spec.ServiceConnector: {Topic: "/rtcomm/connector"}}},
		{Method: spec.MethodDocument, UserDefines: json.RawMessage(`[ 1, 2 ]`), Details: json.RawMessage(`{}`)},
		{Method: spec.MethodMessage, Extra: map[string]json.RawMessage{"zz": json.RawMessage(`{ "a" : "<" }`)}},
	}
	for i, m := range msgs {
		got, err := spec.Encode(m)
		if err != nil {
			t.Fatalf("%d: spec.Encode: %v", i, err)
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%d: json.Marshal: %v", i, err)
		}
		if string(got) != string(want) {
			t.Errorf("%d: spec.Encode\n got %s\nwant %s", i, got, want)
		}
	}
	if _, err := spec.Encode(&spec.Message{Method: spec.MethodMessage, Payload: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("spec.Encode accepted an invalid raw payload")
	}
}
