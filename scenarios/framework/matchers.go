package framework

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	gomegatypes "github.com/onsi/gomega/types"
)

// EqualPayload is a Gomega matcher for a relayed JSON payload (json.RawMessage, []byte or
// string) that must equal the one sent up to JSON formatting. Unlike gomega.MatchJSON, whose
// failure prints both documents in full (an SDP offer is kilobytes, so the difference is cut
// off), its failure names the JSON paths that differ.
func EqualPayload(sent json.RawMessage) gomegatypes.GomegaMatcher {
	return &payloadMatcher{sent: sent}
}

type payloadMatcher struct {
	sent json.RawMessage
	why  string // the differences found by the last Match
}

// maxPayloadDiffs bounds the differences one failure lists.
const maxPayloadDiffs = 5

func (m *payloadMatcher) Match(actual any) (bool, error) {
	var got []byte
	switch a := actual.(type) {
	case json.RawMessage:
		got = a
	case []byte:
		got = a
	case string:
		got = []byte(a)
	default:
		return false, fmt.Errorf("EqualPayload: want json.RawMessage, []byte or string, got %T", actual)
	}
	var want, have any
	if err := json.Unmarshal(m.sent, &want); err != nil {
		return false, fmt.Errorf("EqualPayload: the payload sent is not JSON: %w", err)
	}
	if len(got) == 0 {
		m.why = "no payload"
		return false, nil
	}
	if err := json.Unmarshal(got, &have); err != nil {
		m.why = fmt.Sprintf("a payload that is not JSON (%v): %s", err, Brief(got))
		return false, nil
	}
	var diffs []string
	jsonDiff("", want, have, &diffs)
	if len(diffs) == 0 {
		return true, nil
	}
	if len(diffs) > maxPayloadDiffs {
		diffs = append(diffs[:maxPayloadDiffs], fmt.Sprintf("... %d more", len(diffs)-maxPayloadDiffs))
	}
	m.why = "the payload differs from the one sent: " + strings.Join(diffs, "; ")
	return false, nil
}

func (m *payloadMatcher) FailureMessage(any) string { return m.why }

func (m *payloadMatcher) NegatedFailureMessage(any) string {
	return "a payload that differs from the one sent, actual: the same payload"
}

// jsonDiff appends to out one line per JSON path where have differs from want (decoded
// values); it stops descending once out holds more than maxPayloadDiffs lines.
func jsonDiff(path string, want, have any, out *[]string) {
	if len(*out) > maxPayloadDiffs {
		return
	}
	at := path
	if at == "" {
		at = "(the whole payload)"
	}
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: sent an object, received %s", at, BriefJSON(have)))
			return
		}
		keys := make([]string, 0, len(w)+len(h))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range h {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			wv, wok := w[k]
			hv, hok := h[k]
			p := path + "." + k
			switch {
			case !hok:
				*out = append(*out, fmt.Sprintf("%s: sent %s, missing", p, BriefJSON(wv)))
			case !wok:
				*out = append(*out, fmt.Sprintf("%s: not sent, received %s", p, BriefJSON(hv)))
			default:
				jsonDiff(p, wv, hv, out)
			}
		}
	case []any:
		h, ok := have.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: sent an array, received %s", at, BriefJSON(have)))
			return
		}
		if len(h) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: sent %d elements, received %d", at, len(w), len(h)))
		}
		for i := range min(len(w), len(h)) {
			jsonDiff(path+"["+strconv.Itoa(i)+"]", w[i], h[i], out)
		}
	default:
		if !reflect.DeepEqual(want, have) {
			*out = append(*out, fmt.Sprintf("%s: sent %s, received %s", at, BriefJSON(want), BriefJSON(have)))
		}
	}
}
