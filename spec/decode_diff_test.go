package spec_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// FuzzDecodeMatchesReference: the single-pass Decode gives exactly what unmarshalling
// into a map gave (same message, same error text) for any input.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	for _, s := range []string{`{}`, ` { } `, `null`, `[1]`, `"x"`, `12`, `{"a":1,"a":2}`,
		`{"method":"A","method":"B"}`, `{"meth\u006fd":"MESSAGE"}`, "{\"method\":\"\xff\"}",
		"{\"\xfe\":1}", `{"fromTopic":"a\"b\\c"}`, `{"payload":{"x":[1,{"y":"}"}]} , "z" : [ ] }`,
		`{"payload":"x","holdTimeout":"1","protocols":[1],"services":[]}`, `{"a":1`, `{"a":1}x`,
		`{"timestamp":1.5e3,"userDefines":null,"details":{}}`, `{"protocols":[]}`, `{"protocols":[ "webrtc" , "chat" ]}`,
		`{"protocols":["\u0041","b"]}`, `{"protocols":["a",1]}`, `{"protocols":["a",null]}`, `{"protocols":[["a"]]}`,
		"{\"protocols\":[\"\xff\"]}", `{"method":"START_SESSION","orig":"REFER","result":"SUCCESS","rtcommVer":"v1.0.0"}`, ` {"method" : "MESSAGE" , "x":true}`} {
		f.Add([]byte(s))
	}
	many := `{"method":"MESSAGE"`
	for i := range 40 {
		many += fmt.Sprintf(`,"k%d":%d,"method":"M%d"`, i%7, i, i)
	}
	f.Add([]byte(many + `}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gerr := spec.Decode(raw)
		want, werr := spec.DecodeReference(raw)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("%q: error %v, reference %v", raw, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
		}
		owned, oerr := spec.DecodeOwned(bytes.Clone(raw))
		if fmt.Sprint(oerr) != fmt.Sprint(gerr) || !reflect.DeepEqual(owned, got) {
			t.Fatalf("%q: DecodeOwned %+v (%v), Decode %+v (%v)", raw, owned, oerr, got, gerr)
		}
	})
}

// FuzzEncodeMatchesReference: Encode of any decoded message gives exactly the bytes (or
// the error) of reflection-based json.Marshal, twice in a row (the compact cache).
func FuzzEncodeMatchesReference(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	for _, s := range []string{`{"method":"M<>&","fromTopic":"\u2028\u00e9\ud83d\ude00","reason":"a\"b\\c\n"}`,
		`{"method":"X","payload":{ "a" : [1, 2] },"details":{"x":"<"},"userDefines":[ ]}`,
		`{"method":"X","holdTimeout":-5,"queuePosition":0,"protocols":["webrtc","chat"],"services":{"B":{"topic":"t"},"A":{"queues":[{"endpointID":"q","topic":"t"}]}}}`,
		"{\"method\":\"\xff\",\"zz\":{ \"k\" : \"<\" },\"aa\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _ := spec.Decode(raw)
		if m == nil {
			return
		}
		for range 2 {
			a, b := *m, *m
			got, gerr := spec.Encode(&a)
			want, werr := spec.EncodeReference(&b)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || string(got) != string(want) {
				t.Fatalf("%q:\n got %s (%v)\nwant %s (%v)", raw, got, gerr, want, werr)
			}
		}
	})
}
