package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Limits bound what one message may contain, so a receiver can refuse a
// hostile message in one cheap pass before it decodes anything. A zero field
// means "no limit"; DefaultLimits gives sensible values. Lengths are of the
// string as sent (escape sequences count as their bytes).
type Limits struct {
	MaxPayload   int // bytes of the whole message
	MaxDepth     int // nesting of objects and arrays; the message object itself is depth 1
	MaxIDLen     int // top-level IDs: transID, sigSessID, toEndpointID, appContext, sessionID, callerEndpoint, calleeEndpoint, method, orig, result, rtcommVer
	MaxTopicLen  int // top-level topics: fromTopic, addressTopic, topic
	MaxReasonLen int // the top-level reason
	MaxStringLen int // any other string anywhere, keys included (an SDP is the largest legitimate one)
}

// Default limits: generous for every real client (an SDP with many codecs and
// candidates is ~10-20 KB; rtcomm messages nest 4-5 levels), small enough that
// a message cannot make a receiver allocate or recurse much.
const (
	DefaultMaxDepth     = 32
	DefaultMaxIDLen     = MaxEndpointIDLen
	DefaultMaxTopicLen  = 4096
	DefaultMaxReasonLen = 1024
	DefaultMaxStringLen = 256 << 10
	DefaultMaxPayload   = 1 << 20
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:   DefaultMaxPayload,
		MaxDepth:     DefaultMaxDepth,
		MaxIDLen:     DefaultMaxIDLen,
		MaxTopicLen:  DefaultMaxTopicLen,
		MaxReasonLen: DefaultMaxReasonLen,
		MaxStringLen: DefaultMaxStringLen,
	}
}

// ErrLimit is wrapped by every *LimitError, for errors.Is.
var ErrLimit = errors.New("message exceeds a limit")

// LimitError says which limit a message broke.
type LimitError struct {
	What  string // "payload", "depth", or "string"
	Field string // the top-level field of an over-long string ("" elsewhere)
	Limit int
	Got   int // the size found (for depth: the first level past the limit)
}

func (e *LimitError) Error() string {
	switch e.What {
	case "payload":
		return fmt.Sprintf("message of %d bytes exceeds the %d-byte limit", e.Got, e.Limit)
	case "depth":
		return fmt.Sprintf("message nests deeper than %d levels", e.Limit)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s of %d bytes exceeds the %d-byte limit", e.Field, e.Got, e.Limit)
	}
	return fmt.Sprintf("a string of %d bytes exceeds the %d-byte limit", e.Got, e.Limit)
}

// Unwrap makes errors.Is(err, ErrLimit) hold.
func (e *LimitError) Unwrap() error { return ErrLimit }

// Code is a short fixed label for metrics: too_large, too_deep or string_too_long.
func (e *LimitError) Code() string {
	switch e.What {
	case "payload":
		return "too_large"
	case "depth":
		return "too_deep"
	}
	return "string_too_long"
}

// Check returns a *LimitError for the first limit payload breaks, else nil.
// It is one pass over the bytes without allocation and does not validate the
// JSON: malformed input within the limits passes (the decoder refuses it), so
// Check never needs more than the limits to reject a message.
func (l Limits) Check(payload []byte) error {
	if l.MaxPayload > 0 && len(payload) > l.MaxPayload {
		return &LimitError{What: "payload", Limit: l.MaxPayload, Got: len(payload)}
	}
	if l.MaxDepth <= 0 && l.MaxStringLen <= 0 && l.MaxIDLen <= 0 && l.MaxTopicLen <= 0 && l.MaxReasonLen <= 0 {
		return nil
	}
	depth := 0
	// Top-level member tracking: at depth 1 a string is a key when expectKey,
	// and the string value right after a key gets the key's field limit.
	expectKey := false
	var key []byte
	keyLimit, keyField := 0, ""
	for i := 0; i < len(payload); i++ {
		switch payload[i] {
		case '{':
			depth++
			if l.MaxDepth > 0 && depth > l.MaxDepth {
				return &LimitError{What: "depth", Limit: l.MaxDepth, Got: depth}
			}
			expectKey = depth == 1
		case '[':
			depth++
			if l.MaxDepth > 0 && depth > l.MaxDepth {
				return &LimitError{What: "depth", Limit: l.MaxDepth, Got: depth}
			}
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				expectKey = true
			}
		case ':':
			if depth == 1 {
				keyLimit, keyField = l.fieldLimit(key)
			}
		case '"':
			end := stringEnd(payload, i)
			s := payload[i+1 : min(end, len(payload))]
			limit, field := l.MaxStringLen, ""
			switch {
			case depth == 1 && expectKey:
				key, expectKey, keyLimit, keyField = s, false, 0, ""
			case depth == 1 && keyLimit > 0:
				limit, field = keyLimit, keyField
			}
			if limit > 0 && len(s) > limit {
				return &LimitError{What: "string", Field: field, Limit: limit, Got: len(s)}
			}
			if depth == 1 && !expectKey && field != "" {
				keyLimit, keyField = 0, ""
			}
			i = end
		}
	}
	return nil
}

// fieldLimit is the limit of a top-level string member (0: MaxStringLen applies).
func (l Limits) fieldLimit(key []byte) (int, string) {
	if bytes.IndexByte(key, '\\') >= 0 { // an escaped key may still spell a known field (rare: allocates)
		var name string
		if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &name); err != nil {
			return 0, ""
		}
		key = []byte(name)
	}
	var limit int
	var name string
	switch string(key) {
	case "transID", "sigSessID", "toEndpointID", "appContext", "sessionID", "callerEndpoint",
		"calleeEndpoint", "method", "orig", "result", "rtcommVer":
		limit, name = l.MaxIDLen, fieldName(key)
	case "fromTopic", "addressTopic", "topic":
		limit, name = l.MaxTopicLen, fieldName(key)
	case "reason":
		limit, name = l.MaxReasonLen, "reason"
	default:
		return 0, ""
	}
	if limit <= 0 {
		return 0, ""
	}
	if l.MaxStringLen > 0 && l.MaxStringLen < limit {
		limit = l.MaxStringLen
	}
	return limit, name
}

// stringEnd returns the index of the quote closing the string opened at
// b[open] (len(b) when unterminated). IndexByte is vectorized: SDPs, the
// longest strings, cost little.
func stringEnd(b []byte, open int) int {
	j := open + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		e := j + k
		n := 0 // backslashes right before the quote: an odd count escapes it
		for p := e - 1; p > open && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return e
		}
		j = e + 1
	}
}

// fieldName returns the constant name of a known field without allocating.
func fieldName(key []byte) string {
	for _, n := range [...]string{"transID", "sigSessID", "toEndpointID", "appContext", "sessionID",
		"callerEndpoint", "calleeEndpoint", "method", "orig", "result", "rtcommVer", "fromTopic", "addressTopic", "topic"} {
		if string(key) == n {
			return n
		}
	}
	return string(key)
}
