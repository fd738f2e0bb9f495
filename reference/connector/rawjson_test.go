package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// scanSeeds are edge cases for the scanner next to the fixture corpus.
var scanSeeds = []string{
	`{}`, ` { } `, `{"fromTopic":"a"}`, `{"fromTopic":null,"x":1}`, `{"x":1}`,
	`{"method":"MESSAGE","sigSessID":"s","payload":{"fromTopic":"nested","webrtc":{"type":"offer"}}}`,
	`{"fromTopic":"a","fromTopic":"b"}`, `{"from\u0054opic":"escaped key"}`, `{"fromTopic":"\/rtcomm\/a"}`,
	`{"method":"MESSAGE","transID":5}`, `{"method":"PRANSWER","holdTimeout":1.5}`, `{"method":"PRANSWER","holdTimeout":-3}`,
	`{"method":"PRANSWER","holdTimeout":99999999999999999999}`, `{"protocols":["a","b"]}`, `{"protocols":["a",1]}`,
	`{"protocols":[]}`, `{"protocols":"webrtc"}`, `{"payload":[]}`, `{"payload":"x"}`, `{"details":{}}`,
	`{"services":{"X":{"topic":1}}}`, `{"timestamp":12345}`, `{"timestamp":true}`, `{"userDefines":"anything"}`,
	`{"a":"\u00e9\ud83d\ude00"}`, `{"a":"bad \x escape"}`, `{"a":"ctl ` + "\x01" + `"}`, `{"a":tru}`, `{"a":01}`,
	`{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":1E+2}`, `{"a":-0.5e-3}`, `{"a":[1,2,]}`, `{"a":1,}`, `{,}`,
	`{"a" 1}`, `{"a":1} x`, `{"a":1}{}`, `[1]`, `"s"`, `null`, `3`, ``, `   `, "\xef\xbb\xbf{}", `{"a":"` + "\xff\xfe" + `"}`,
	`{"method":"MESSAGE","rtcommVer":"v2.0.0"}`, `{"method":null,"sigSessID":null}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `{"a":` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + `}`,
}

func scanInputs() [][]byte {
	var out [][]byte
	for _, s := range scanSeeds {
		out = append(out, []byte(s))
	}
	for _, b := range fixtures.BadInputs() {
		if len(b.Payload) < 300000 {
			out = append(out, b.Payload)
		}
	}
	for _, set := range fixtures.CandidateSets() {
		ps, _ := fixtures.CandidatePayloads(set)
		for _, p := range ps {
			out = append(out, []byte(`{"method":"MESSAGE","fromTopic":"/r/a","sigSessID":"s","payload":`+string(p)+`}`))
		}
	}
	for _, s := range fixtures.SDPs() {
		out = append(out, []byte(`{"method":"MESSAGE","sigSessID":"s","payload":`+string(s.Payload())+`,"fromTopic":"/r/a"}`))
	}
	return out
}

func TestScanMatchesEncodingJSONAndDecode(t *testing.T) {
	t.Parallel()
	for _, raw := range scanInputs() {
		checkScan(t, raw)
	}
}

func FuzzScanMessage(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkScan(t, raw) })
}

// checkScan: the scanner accepts exactly what encoding/json accepts, its fast
// verdicts agree with spec.Decode, and splicing keeps every other byte.
func checkScan(t *testing.T, raw []byte) {
	t.Helper()
	name := short(string(raw))
	var s scanned
	err := scanMessage(raw, &s)
	trimmed := bytes.TrimSpace(raw)
	valid := json.Valid(raw)
	isObj := valid && len(trimmed) > 0 && trimmed[0] == '{'
	switch {
	case isObj && err != nil:
		t.Fatalf("%q: encoding/json accepts the object, scanner says %v", name, err)
	case !isObj && err == nil:
		t.Fatalf("%q: scanner accepts what encoding/json does not take as an object", name)
	case valid && !isObj && len(trimmed) > 0 && !errors.Is(err, errNotObject):
		t.Fatalf("%q: valid non-object: expected errNotObject, actual %v", name, err)
	}
	if err != nil {
		return
	}
	m, derr := spec.Decode(raw)
	if !s.slow {
		if derr != nil {
			t.Fatalf("%q: scanner took the fast path but spec.Decode says %v", name, derr)
		}
		var in inbound
		fast := in.scan(raw)
		if badVersion(m.RtcommVer) {
			if fast {
				t.Fatalf("%q: wrong rtcommVer must take the slow path", name)
			}
		} else {
			if !fast {
				t.Fatalf("%q: scanned fast but inbound.scan refused", name)
			}
			checks := [][2]string{
				{string(in.method), string(m.Method)}, {string(in.orig), string(m.Orig)},
				{string(in.sigSessID), m.SigSessID}, {string(in.transID), m.TransID},
				{string(in.fromTopic), m.FromTopic}, {string(in.result), m.Result}, {string(in.reason), m.Reason},
				{s.str(raw, fToEndpointID), m.ToEndpointID}, {string(in.payload), string(m.Payload)},
			}
			for _, ck := range checks {
				if ck[0] != ck[1] {
					t.Fatalf("%q: fast field %q, spec.Decode %q", name, ck[0], ck[1])
				}
			}
			if m.HoldTimeout != nil && *m.HoldTimeout != in.hold {
				t.Fatalf("%q: holdTimeout fast %d, spec.Decode %d", name, in.hold, *m.HoldTimeout)
			}
		}
	}
	if s.overflow {
		return
	}
	const to = "/x/connector/r1"
	out := splice(raw, &s, []byte(`"`+to+`"`))
	var before, after map[string]json.RawMessage
	if json.Unmarshal(raw, &before) != nil {
		return // valid JSON whose keys are not unique strings after unescaping, etc.
	}
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("%q: spliced message is not a JSON object: %v: %s", name, err, out)
	}
	var ft string
	if err := json.Unmarshal(after["fromTopic"], &ft); err != nil || ft != to {
		t.Fatalf("%q: spliced fromTopic: expected %s, actual %s", name, to, after["fromTopic"])
	}
	for k, v := range before {
		if k != "fromTopic" && !bytes.Equal(after[k], v) {
			t.Fatalf("%q: member %s changed: %s -> %s", name, k, v, after[k])
		}
	}
	if len(after) != len(before)+boolInt(before["fromTopic"] == nil) {
		t.Fatalf("%q: members: before %d, after %d", name, len(before), len(after))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSpliceKeepsBytes(t *testing.T) {
	t.Parallel()
	from := []byte(`"/p/connector/r"`)
	cases := map[string]string{
		`{"method":"MESSAGE","fromTopic":"/p/alice","payload":{"fromTopic":"x"}}`: `{"method":"MESSAGE","fromTopic":"/p/connector/r","payload":{"fromTopic":"x"}}`,
		`{"method":"MESSAGE"}`:               `{"fromTopic":"/p/connector/r","method":"MESSAGE"}`,
		`{}`:                                 `{"fromTopic":"/p/connector/r"}`,
		` { "fromTopic" : null , "a" : 1 } `: ` { "fromTopic" : "/p/connector/r" , "a" : 1 } `,
		`{"fromTopic":"a","x":[{"y":"}"}],"fromTopic":"b"}`:                          `{"fromTopic":"/p/connector/r","x":[{"y":"}"}],"fromTopic":"/p/connector/r"}`,
		`{"from\u0054opic":"a","z":"\"fromTopic\":\"q\""}`:                           `{"from\u0054opic":"/p/connector/r","z":"\"fromTopic\":\"q\""}`,
		`{"sdp":"v=0\r\n","fromTopic":"/p/a","candidate":{"candidate":"c 1 udp"}}`:   `{"sdp":"v=0\r\n","fromTopic":"/p/connector/r","candidate":{"candidate":"c 1 udp"}}`,
		`{"method":"STOP_SESSION","sigSessID":"s","reason":"a \u00e9 \ud83d\ude00"}`: `{"fromTopic":"/p/connector/r","method":"STOP_SESSION","sigSessID":"s","reason":"a \u00e9 \ud83d\ude00"}`,
	}
	for in, want := range cases {
		got, err := setFromTopic([]byte(in), from)
		if err != nil || string(got) != want {
			t.Errorf("setFromTopic(%s):\nexpected %s\nactual   %s (%v)", in, want, got, err)
		}
	}
	if _, err := setFromTopic([]byte(`[1]`), from); err == nil {
		t.Error("setFromTopic on an array: expected an error, actual nil")
	}
}
