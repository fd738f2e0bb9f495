package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// DecodeReference is Decode as it was before splitObject: json.Unmarshal into a map,
// then the same field decoding. The differential fuzz test holds Decode to it.
var DecodeReference = decodeReference

func decodeReference(payload []byte) (*Message, error) {
	if m, err := Decode(payload); m == nil && errors.Is(err, ErrEmpty) {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, ErrNotObject
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if raw == nil {
		return nil, ErrNotObject
	}
	m := &Message{}
	var errs []error
	for name, val := range raw {
		if !knownFields[name] {
			if m.Extra == nil {
				m.Extra = make(map[string]json.RawMessage)
			}
			m.Extra[name] = val
			continue
		}
		if err := m.decodeField(name, append(json.RawMessage(nil), val...)); err != nil {
			errs = append(errs, err)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return m, errors.Join(errs...)
}

// EncodeReference is Encode as it was before appendMessage: reflection-based
// json.Marshal of the typed fields, Extra spliced in, and the whole compacted again.
func EncodeReference(m *Message) ([]byte, error) {
	if m.RtcommVer == "" {
		m.RtcommVer = Version
	}
	type plain Message
	b, err := json.Marshal(plain(*m))
	if err != nil {
		return nil, err
	}
	if len(m.Extra) > 0 {
		names := make([]string, 0, len(m.Extra))
		for k := range m.Extra {
			if !knownFields[k] {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		out := append([]byte(nil), b[:len(b)-1]...)
		for _, k := range names {
			kb, _ := json.Marshal(k)
			out = append(out, ',')
			out = append(out, kb...)
			out = append(out, ':')
			out = append(out, m.Extra[k]...)
		}
		b = append(out, '}')
	}
	return json.Marshal(json.RawMessage(b))
}

// ScanObject is Decode's validating splitter: whether data is valid JSON, whether it is an
// object, and the names of its members in order.
func ScanObject(data []byte) (names []string, object, valid bool) {
	members, object, valid := scanObject(data, nil)
	for _, m := range members {
		names = append(names, m.name)
	}
	return names, object, valid
}
