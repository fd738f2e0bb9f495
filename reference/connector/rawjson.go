package connector

import (
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// The relay path reads a handful of top-level fields and rewrites one. Doing
// that with spec.Decode costs more than everything else the connector does per
// message, so scanMessage makes one validating pass over the raw JSON, without
// allocating, and records where those fields are. Whatever it does not judge
// exactly as spec.Decode would (escaped keys or routing fields, services,
// wrong types) it flags as slow: the caller then uses spec.Decode, whose
// errors name the field. Relayed bytes are the inbound bytes with only the
// fromTopic value replaced, so payload and unknown fields pass byte-for-byte
// and a missing transID stays missing.

var errJSON = errors.New("malformed JSON")

// errNotObject is returned for valid JSON that is not an object.
var errNotObject = errors.New("payload is not a JSON object")

const maxDepth = 10000 // as encoding/json

// span is a range of the raw message; the zero span means "absent" (no value
// can start at offset 0: that is the object's '{').
type span struct{ a, b int }

func (s span) ok() bool { return s.b > 0 }

func (s span) in(raw []byte) []byte { return raw[s.a:s.b] }

// Indexes of the fields scanMessage records.
const (
	fMethod = iota
	fTransID
	fSigSessID
	fFromTopic
	fOrig
	fResult
	fReason
	fToEndpointID
	fRtcommVer
	fPayload // raw object
	numFields
)

// scanned is what one pass finds at the top level of a message.
type scanned struct {
	f     [numFields]span // string contents without quotes (fPayload: the raw object)
	hold  int             // holdTimeout; 0 when absent
	from  [4]span         // every top-level fromTopic value, quotes included: the splice targets
	nFrom int
	// overflow: more fromTopic members than from holds (cannot be spliced).
	overflow bool
	slow     bool // valid JSON, but only spec.Decode can judge it exactly
}

// str returns a recorded string field ("" when absent); it allocates.
func (s *scanned) str(raw []byte, i int) string {
	if !s.f[i].ok() {
		return ""
	}
	return string(s.f[i].in(raw))
}

// fieldKind says what spec.Decode expects of a known top-level field.
type fieldKind uint8

const (
	kindAny fieldKind = iota
	kindString
	kindInt
	kindObject
	kindStrings   // array of strings
	kindTimestamp // string or number
	kindSlow      // decoded by spec.Decode into nested types: not judged here
)

// classify returns the expectation for a key and, for recorded fields, its index.
func classify(key []byte) (fieldKind, int) {
	switch string(key) {
	case "method":
		return kindString, fMethod
	case "transID":
		return kindString, fTransID
	case "sigSessID":
		return kindString, fSigSessID
	case "fromTopic":
		return kindString, fFromTopic
	case "orig":
		return kindString, fOrig
	case "result":
		return kindString, fResult
	case "reason":
		return kindString, fReason
	case "toEndpointID":
		return kindString, fToEndpointID
	case "payload":
		return kindObject, fPayload
	case "rtcommVer":
		return kindString, fRtcommVer
	case "appContext", "type", "addressTopic", "topic", "state", "alias",
		"callerEndpoint", "calleeEndpoint", "sessionID":
		return kindString, -1
	case "holdTimeout", "queuePosition":
		return kindInt, -1
	case "details":
		return kindObject, -1
	case "protocols":
		return kindStrings, -1
	case "timestamp":
		return kindTimestamp, -1
	case "services":
		return kindSlow, -1
	}
	return kindAny, -1 // userDefines and unknown fields: any JSON
}

// scanMessage validates raw as one JSON object (as encoding/json would) and
// fills s. A non-nil error means raw is not a JSON object at all.
func scanMessage(raw []byte, s *scanned) error {
	*s = scanned{}
	i := skipWS(raw, 0)
	if i >= len(raw) {
		return errJSON
	}
	if raw[i] != '{' {
		if _, err := skipValue(raw, i, 0); err != nil || skipWS(raw, mustEnd(raw, i)) != len(raw) {
			return errJSON
		}
		return errNotObject
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			if i >= len(raw) || raw[i] != '"' {
				return errJSON
			}
			ke, kesc, err := scanString(raw, i)
			if err != nil {
				return err
			}
			key := raw[i+1 : ke-1]
			i = skipWS(raw, ke)
			if i >= len(raw) || raw[i] != ':' {
				return errJSON
			}
			vs := skipWS(raw, i+1)
			ve, err := skipValue(raw, vs, 1)
			if err != nil {
				return err
			}
			if kesc {
				s.slow = true // an escaped key may spell a known field: spec.Decode judges it
				if unescapedIs(raw[ke-len(key)-2:ke], "fromTopic") {
					s.addFrom(vs, ve)
				}
			} else {
				s.judge(raw, key, vs, ve)
			}
			i = skipWS(raw, ve)
			if i >= len(raw) {
				return errJSON
			}
			if raw[i] == '}' {
				i++
				break
			}
			if raw[i] != ',' {
				return errJSON
			}
			i = skipWS(raw, i+1)
		}
	}
	if skipWS(raw, i) != len(raw) {
		return errJSON // trailing data
	}
	return nil
}

// mustEnd is the end of the value at i (already known to be valid).
func mustEnd(raw []byte, i int) int {
	e, _ := skipValue(raw, i, 0)
	return e
}

// judge checks one top-level member's type the way spec.Decode would and
// records the fields routing reads.
func (s *scanned) judge(raw, key []byte, vs, ve int) {
	kind, idx := classify(key)
	if string(key) == "fromTopic" {
		s.addFrom(vs, ve)
	}
	v := raw[vs:ve]
	if string(v) == "null" { // null is "absent" for every field
		if idx >= 0 {
			s.f[idx] = span{}
		}
		return
	}
	switch kind {
	case kindString:
		if v[0] != '"' {
			s.slow = true
			return
		}
		if idx >= 0 {
			ascii := true
			for _, c := range v {
				if c == '\\' {
					s.slow = true // routing compares raw bytes: escaped values go the slow way
					return
				}
				ascii = ascii && c < utf8.RuneSelf
			}
			if !ascii && !utf8.Valid(v) {
				s.slow = true // spec.Decode turns invalid UTF-8 into U+FFFD
				return
			}
			s.f[idx] = span{vs + 1, ve - 1}
		}
	case kindInt:
		n, ok := smallInt(v)
		if !ok {
			s.slow = true
			return
		}
		if string(key) == "holdTimeout" {
			s.hold = n
		}
	case kindObject:
		if v[0] != '{' {
			s.slow = true
			return
		}
		if idx >= 0 {
			s.f[idx] = span{vs, ve}
		}
	case kindStrings:
		if !isStringArray(v) {
			s.slow = true
		}
	case kindTimestamp:
		if v[0] != '"' && v[0] != '-' && (v[0] < '0' || v[0] > '9') {
			s.slow = true
		}
	case kindSlow:
		s.slow = true
	}
}

// smallInt parses a JSON integer of at most 18 digits (what fits an int
// without overflow checks); anything else is left to spec.Decode.
func smallInt(v []byte) (int, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// addFrom records a fromTopic value to splice.
func (s *scanned) addFrom(vs, ve int) {
	if s.nFrom == len(s.from) {
		s.overflow, s.slow = true, true
		return
	}
	s.from[s.nFrom] = span{vs, ve}
	s.nFrom++
}

// unescapedIs compares a string literal containing escapes with name (rare: allocates).
func unescapedIs(lit []byte, name string) bool {
	var v string
	return json.Unmarshal(lit, &v) == nil && v == name
}

// isStringArray reports whether the (valid) JSON value v is an array of strings.
func isStringArray(v []byte) bool {
	if v[0] != '[' {
		return false
	}
	i := skipWS(v, 1)
	if i < len(v) && v[i] == ']' {
		return true
	}
	for i < len(v) {
		if v[i] != '"' {
			return false
		}
		e, _, err := scanString(v, i)
		if err != nil {
			return false
		}
		i = skipWS(v, e)
		if i < len(v) && v[i] == ']' {
			return true
		}
		if i >= len(v) || v[i] != ',' {
			return false
		}
		i = skipWS(v, i+1)
	}
	return false
}

// splice returns raw with every recorded top-level fromTopic value replaced by
// from (a JSON string literal), or with "fromTopic" inserted first when there
// was none. It allocates exactly the result.
func splice(raw []byte, s *scanned, from []byte) []byte {
	if s.nFrom == 0 {
		open := skipWS(raw, 0)
		rest := skipWS(raw, open+1)
		out := make([]byte, 0, len(raw)+len(fromTopicMember)+len(from)+1)
		out = append(out, raw[:open+1]...)
		out = append(out, fromTopicMember...)
		out = append(out, from...)
		if rest < len(raw) && raw[rest] != '}' {
			out = append(out, ',')
		}
		return append(out, raw[open+1:]...)
	}
	size := len(raw)
	for _, sp := range s.from[:s.nFrom] {
		size += len(from) - (sp.b - sp.a)
	}
	out := make([]byte, 0, size)
	last := 0
	for _, sp := range s.from[:s.nFrom] {
		out = append(out, raw[last:sp.a]...)
		out = append(out, from...)
		last = sp.b
	}
	return append(out, raw[last:]...)
}

const fromTopicMember = `"fromTopic":`

// setFromTopic rewrites fromTopic in a message that spec.Decode accepted.
func setFromTopic(raw, from []byte) ([]byte, error) {
	var s scanned
	if err := scanMessage(raw, &s); err != nil {
		return nil, err
	}
	if s.overflow {
		return nil, errors.New("too many fromTopic members")
	}
	return splice(raw, &s, from), nil
}

// method maps raw method bytes to the known constant without allocating.
func method(b []byte) spec.Method {
	for _, m := range spec.Methods {
		if string(m) == string(b) {
			return m
		}
	}
	return spec.Method(b)
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString validates the string literal starting at b[i] == '"' and returns
// the index just past it and whether it contains escapes.
func scanString(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return j + 1, esc, nil
		case c < 0x20:
			return 0, false, errJSON
		case c == '\\':
			esc = true
			j++
			if j >= len(b) {
				return 0, false, errJSON
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false, errJSON
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return 0, false, errJSON
					}
				}
				j += 4
			default:
				return 0, false, errJSON
			}
		}
	}
	return 0, false, errJSON
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipValue validates the JSON value starting at b[i] and returns the index just past it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errJSON
	}
	if depth > maxDepth {
		return 0, errJSON
	}
	switch c := b[i]; {
	case c == '"':
		e, _, err := scanString(b, i)
		return e, err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, errJSON
				}
				e, _, err := scanString(b, i)
				if err != nil {
					return 0, err
				}
				i = skipWS(b, e)
				if i >= len(b) || b[i] != ':' {
					return 0, errJSON
				}
				i = skipWS(b, i+1)
			}
			e, err := skipValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, e)
			if i >= len(b) {
				return 0, errJSON
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errJSON
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	}
	return 0, errJSON
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, errJSON
}

// number validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0, errJSON
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, errJSON
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, errJSON
		}
	}
	return i, nil
}
