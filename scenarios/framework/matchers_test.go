package framework_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/framework"
)

func TestEqualPayload(t *testing.T) {
	sent := json.RawMessage(`{"webrtc":{"type":"offer","sdp":"v=0\r\n"},"list":[1,2],"n":1}`)
	cases := []struct {
		name   string
		actual any
		match  bool
		why    []string // substrings of the failure message
	}{
		{"same, reformatted and reordered", json.RawMessage(`{ "n": 1, "list": [1, 2], "webrtc": {"sdp": "v=0\r\n", "type": "offer"} }`), true, nil},
		{"as []byte", []byte(sent), true, nil},
		{"as string", string(sent), true, nil},
		{"added field", json.RawMessage(`{"webrtc":{"type":"offer","sdp":"v=0\r\n","x":true},"list":[1,2],"n":1}`), false,
			[]string{".webrtc.x: not sent, received true"}},
		{"missing field", json.RawMessage(`{"webrtc":{"type":"offer","sdp":"v=0\r\n"},"list":[1,2]}`), false, []string{".n: sent 1, missing"}},
		{"changed value", json.RawMessage(`{"webrtc":{"type":"answer","sdp":"v=0\r\n"},"list":[1,2],"n":1}`), false,
			[]string{`.webrtc.type: sent "offer", received "answer"`}},
		{"array element and length", json.RawMessage(`{"webrtc":{"type":"offer","sdp":"v=0\r\n"},"list":[1,3,4],"n":1}`), false,
			[]string{".list: sent 2 elements, received 3", ".list[1]: sent 2, received 3"}},
		{"not an object", json.RawMessage(`[1]`), false, []string{"(the whole payload): sent an object, received [1]"}},
		{"empty", json.RawMessage(nil), false, []string{"no payload"}},
		{"not JSON", json.RawMessage(`{"webrtc":`), false, []string{"not JSON"}},
	}
	for _, c := range cases {
		m := framework.EqualPayload(sent)
		ok, err := m.Match(c.actual)
		if err != nil {
			t.Errorf("%s: unexpected error %v", c.name, err)
			continue
		}
		if ok != c.match {
			t.Errorf("%s: match = %v, want %v (%s)", c.name, ok, c.match, m.FailureMessage(c.actual))
			continue
		}
		for _, w := range c.why {
			if msg := m.FailureMessage(c.actual); !strings.Contains(msg, w) {
				t.Errorf("%s: failure message %q lacks %q", c.name, msg, w)
			}
		}
	}
	if _, err := framework.EqualPayload(sent).Match(42); err == nil {
		t.Error("an int was matched without an error")
	}
}
