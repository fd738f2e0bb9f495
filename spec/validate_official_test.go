package spec_test

import (
	"fmt"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// TestPlaceCallNumericIDs: lib.rtcomm.node lib/3pcc.js ThirdPartyCC.startCall sends
// the application's sessionID and transactionID as given, and the library's own
// test (test/3pccTest.js) passes numbers. The client profile takes a JSON integer
// there; the strict profile, and every other method and field, still want strings.
func TestPlaceCallNumericIDs(t *testing.T) {
	t.Parallel()
	const topic = "/rtcomm/callControl"
	pc := func(transID, sessionID string) []byte {
		return []byte(fmt.Sprintf(`{"rtcommVer":"v0.0.1","method":"3PCC_PLACE_CALL","calleeEndpoint":"Jill Endpoint",`+
			`"callerEndpoint":"Jack Endpoint","fromTopic":"0e1d2c3b-4a59-4687-b6a5-948372615f0e","transID":%s,"sessionID":%s}`,
			transID, sessionID))
	}
	client := spec.Validator{Profile: spec.ProfileClient}
	strict := spec.Validator{Profile: spec.ProfileStrict}
	for _, tc := range []struct {
		name, transID, sessionID string
		clientOK                 bool
	}{
		{"library test: 100 and 1000", "100", "1000", true},
		{"zero", "0", `"s"`, true},
		{"strings", `"t"`, `"s"`, true},
		{"fraction", "1.5", `"s"`, false},
		{"exponent", "1e3", `"s"`, false},
		{"negative", "-1", `"s"`, false},
		{"leading zero", "0100", `"s"`, false}, // not JSON at all
		{"beyond 2^53", "12345678901234567", `"s"`, false},
		{"object", `{"a":1}`, `"s"`, false},
		{"numeric sessionID only", `"t"`, "7", true},
	} {
		vs := client.Validate(topic, pc(tc.transID, tc.sessionID))
		if tc.clientOK && len(vs) > 0 {
			t.Errorf("%s: client profile: expected no violation, actual %v", tc.name, vs)
		}
		if !tc.clientOK && len(vs) == 0 {
			t.Errorf("%s: client profile: expected a violation, actual none", tc.name)
		}
		if tc.transID != `"t"` || tc.sessionID != `"s"` {
			if len(strict.Validate(topic, pc(tc.transID, tc.sessionID))) == 0 {
				t.Errorf("%s: strict profile: expected a violation for a non-string ID, actual none", tc.name)
			}
		}
	}
	// Only 3PCC_PLACE_CALL: a numeric transID elsewhere is still a type error.
	sq := []byte(`{"rtcommVer":"v1.0.0","method":"SERVICE_QUERY","fromTopic":"/rtcomm/X","transID":100}`)
	if vs := client.Validate("/rtcomm/management/alice", sq); len(vs) == 0 {
		t.Errorf("numeric transID on SERVICE_QUERY: expected FMT-004 in the client profile, actual none")
	}
}

func TestStringifyPlaceCallIDs(t *testing.T) {
	t.Parallel()
	in := []byte(`{"method":"3PCC_PLACE_CALL","transID":100,"sessionID":1000,"fromTopic":"x"}`)
	m, err := spec.Decode(spec.StringifyPlaceCallIDs(in))
	if err != nil || m.TransID != "100" || m.SessionID != "1000" || m.FromTopic != "x" {
		t.Fatalf("expected transID \"100\", sessionID \"1000\", fromTopic x; actual %+v (%v)", m, err)
	}
	for _, same := range []string{
		`{"method":"3PCC_PLACE_CALL","transID":"100"}`,
		`{"method":"START_SESSION","transID":100}`,
		`{"method":"3PCC_PLACE_CALL","transID":1.5}`,
		`not json 3PCC_PLACE_CALL`,
	} {
		if got := string(spec.StringifyPlaceCallIDs([]byte(same))); got != same {
			t.Errorf("%s: expected unchanged, actual %s", same, got)
		}
	}
}
