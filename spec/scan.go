package spec

import (
	"encoding/binary"
	"encoding/json"
)

// maxNestingDepth is encoding/json's limit (scanner.go, maxNestingDepth): a value nested
// deeper is not valid JSON to json.Valid, so not to scanObject either.
const maxNestingDepth = 10000

// scanObject validates data as exactly one JSON value, accepting precisely what json.Valid
// accepts (RFC 8259 grammar, no UTF-8 check inside strings, nesting up to
// maxNestingDepth), and, when the value is an object, splits it into its members in order.
// valid is false for anything json.Valid refuses; object is false for a valid value that is
// not an object. Each member's val is a capped view of data. Members are appended to
// members[:0] (Decode's array on its stack: one allocation less per message).
//
// It replaces json.Valid followed by a second pass that split the object: Decode runs on
// every message a simulated endpoint receives, and json.Valid's byte-at-a-time state
// machine over a 5.6 KB SDP was 40 % of Decode in the load generator's profile (issue 16).
// FuzzScanObjectMatchesValid holds it to json.Valid.
func scanObject(data []byte, members []member) (_ []member, object, valid bool) {
	i := skipSpace(data, 0)
	if i < len(data) && data[i] == '{' {
		members = members[:0]
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == '}' {
			return objectEnd(data, i, members)
		}
		for {
			if i >= len(data) || data[i] != '"' {
				return nil, false, false
			}
			kEnd, ok := scanString(data, i)
			if !ok {
				return nil, false, false
			}
			name, ok := decodeKey(data[i:kEnd])
			if !ok {
				return nil, false, false
			}
			i = skipSpace(data, kEnd)
			if i >= len(data) || data[i] != ':' {
				return nil, false, false
			}
			i = skipSpace(data, i+1)
			vEnd, ok := scanValue(data, i, 1)
			if !ok {
				return nil, false, false
			}
			members = append(members, member{name: name, val: json.RawMessage(data[i:vEnd:vEnd])})
			i = skipSpace(data, vEnd)
			if i >= len(data) {
				return nil, false, false
			}
			switch data[i] {
			case ',':
				i = skipSpace(data, i+1)
			case '}':
				return objectEnd(data, i, members)
			default:
				return nil, false, false
			}
		}
	}
	end, ok := scanValue(data, i, 0)
	return nil, false, ok && skipSpace(data, end) == len(data)
}

// objectEnd ends the top-level object at data[i] ('}'): only space may follow.
func objectEnd(data []byte, i int, members []member) ([]member, bool, bool) {
	if skipSpace(data, i+1) != len(data) {
		return nil, false, false
	}
	return members, true, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue returns the index just past the valid JSON value starting at data[i]; depth is
// the nesting of the container it is in (0 at the top).
func scanValue(data []byte, i, depth int) (int, bool) {
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '"':
		return scanString(data, i)
	case c == '{' || c == '[':
		if depth+1 > maxNestingDepth {
			return i, false
		}
		return scanContainer(data, i, depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(data, i)
	case c == 't':
		return scanLiteral(data, i, "true")
	case c == 'f':
		return scanLiteral(data, i, "false")
	case c == 'n':
		return scanLiteral(data, i, "null")
	}
	return i, false
}

// scanContainer scans the object or array opening at data[i], itself at nesting depth.
func scanContainer(data []byte, i, depth int) (int, bool) {
	obj := data[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == closer {
		return i + 1, true
	}
	for {
		var ok bool
		if obj {
			if i >= len(data) || data[i] != '"' {
				return i, false
			}
			if i, ok = scanString(data, i); !ok {
				return i, false
			}
			i = skipSpace(data, i)
			if i >= len(data) || data[i] != ':' {
				return i, false
			}
			i = skipSpace(data, i+1)
		}
		if i, ok = scanValue(data, i, depth); !ok {
			return i, false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return i, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case closer:
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanString returns the index just past the string opening at data[i] ('"'): no control
// characters, only JSON's escapes. Bytes from 0x80 up pass unchecked, as in json.Valid.
func scanString(data []byte, i int) (int, bool) {
	for i++; i < len(data); i++ {
		// The bulk of an SDP: plain bytes, skipped eight at a time while none of the eight
		// is special, then one table lookup each.
		for i+8 <= len(data) && !hasSpecial(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < len(data) && !strSpecial[data[i]] {
			i++
		}
		if i >= len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(data) {
				return i, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return len(data), false
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		}
	}
	return i, false
}

// strSpecial marks the bytes that end a string's run of plain bytes: the quote, the
// backslash and the control characters JSON forbids unescaped.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// hasSpecial reports whether any of the eight bytes in x is a quote, a backslash or below
// 0x20 (the bit tricks of "Bit Twiddling Hacks", haszero and hasless: exact for "any").
func hasSpecial(x uint64) bool {
	q := x ^ (lo8 * '"')
	b := x ^ (lo8 * '\\')
	return ((q-lo8)&^q|(b-lo8)&^b|(x-lo8*0x20)&^x)&hi8 != 0
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at data[i].
func scanNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && isDigit(data[i]):
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return i, false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return i, false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	return i, true
}

// scanLiteral matches true, false or null at data[i].
func scanLiteral(data []byte, i int, lit string) (int, bool) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
