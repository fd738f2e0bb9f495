package spec_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// scanCases are inputs at the edges of JSON's grammar, each judged by json.Valid.
var scanCases = []string{
	``, ` `, `{}`, ` { } `, `{} x`, `{}}`, `{`, `}`, `[]`, `[`, `[1,]`, `[,1]`, `[1 2]`, `{"a"}`, `{"a":}`,
	`{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`, `{'a':1}`, `{"a":1}{"b":2}`,
	`"x"`, `"`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\a"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\u"`, "\"\x01\"",
	"\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\t\"", `"\uD800"`, "{\"\xff\":1}",
	`0`, `-0`, `01`, `-01`, `1.`, `1.0`, `.5`, `-.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-`, `--1`, `+1`, `1.5e3x`,
	`0x10`, `1_000`, `Infinity`, `NaN`, `123456789012345678901234567890`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `nulll`, `[true,false,null]`, `{"a":tru}`,
	" \t\r\n{\"a\" \t:\r\n[ 1 , { } ] }\n", "\v{}", "\u00a0{}", "{}\x00",
	`{"a":{"b":[{"c":"}"}]},"d":"]"}`, `{"payload":{"x":[1,{"y":"}"}]} , "z" : [ ] }`,
}

func nested(n int, open, close string) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// TestScanObjectMatchesValid: Decode's validation accepts exactly what json.Valid accepts at
// the edges of the grammar and at encoding/json's nesting limit (10,000).
func TestScanObjectMatchesValid(t *testing.T) {
	t.Parallel()
	cases := append([]string{}, scanCases...)
	for _, n := range []int{9999, 10000, 10001} {
		cases = append(cases, nested(n, "[", "]"), `{"a":`+nested(n-1, "[", "]")+`}`, `{"a":`+nested(n, "[", "]")+`}`,
			nested(n-1, `{"a":`, "}")+"", `{"a":`+nested(n-1, `{"a":`, "}")+`}`)
	}
	for _, c := range cases {
		_, object, valid := spec.ScanObject([]byte(c))
		if want := json.Valid([]byte(c)); valid != want {
			t.Errorf("%.60q (%d bytes): expected valid %v (json.Valid), actual %v", c, len(c), want, valid)
		}
		wantObj := valid && strings.TrimLeft(c, " \t\r\n")[0] == '{'
		if object != wantObj {
			t.Errorf("%.60q: expected object %v, actual %v", c, wantObj, object)
		}
	}
	names, _, _ := spec.ScanObject([]byte(`{"b":1,"a":{"x":2},"b":[3]}`))
	if strings.Join(names, ",") != "b,a,b" {
		t.Errorf("members: expected b,a,b in order, actual %v", names)
	}
}

// FuzzScanObjectMatchesValid: for any input, Decode's validation agrees with json.Valid.
func FuzzScanObjectMatchesValid(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, _, valid := spec.ScanObject(raw); valid != json.Valid(raw) {
			t.Fatalf("%q: scanObject says valid %v, json.Valid %v", raw, valid, !valid)
		}
	})
}

// BenchmarkDecodeStartSession decodes a START_SESSION with each SDP fixture (the message a
// simulated callee receives per call; one pass validates and splits it).
//
//	go test -run '^$' -bench DecodeStartSession ./spec/
func BenchmarkDecodeStartSession(b *testing.B) {
	var msgs [][]byte
	for _, s := range fixtures.SDPs() {
		msgs = append(msgs, []byte(`{"method":"START_SESSION","rtcommVer":"v1.0.0","transID":"t","sigSessID":"s",`+
			`"toEndpointID":"bob","fromTopic":"/rtcomm/alice","protocols":["webrtc"],"payload":`+string(s.Payload())+`}`))
	}
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	b.SetBytes(int64(n / len(msgs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := spec.Decode(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
}
