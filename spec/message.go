// Package spec is the Rtcomm v1.0.0 signaling protocol as Go code and data:
// message types, topic layout, endpoint-ID rules, the requirement catalog and
// a validator that names the requirement each violation breaks.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Version is the rtcommVer value of protocol v1.0.0.
const Version = "v1.0.0"

// Method names the kind of an Rtcomm message.
type Method string

// The methods of Rtcomm v1.0.0 (PROTOCOL.md, "Messages").
const (
	MethodDocument         Method = "DOCUMENT"
	MethodDocumentReplaced Method = "DOCUMENT_REPLACED"
	MethodServiceQuery     Method = "SERVICE_QUERY"
	MethodResponse         Method = "RESPONSE"
	MethodStartSession     Method = "START_SESSION"
	MethodPranswer         Method = "PRANSWER"
	MethodMessage          Method = "MESSAGE"
	MethodStopSession      Method = "STOP_SESSION"
	MethodRefer            Method = "REFER"
	Method3PCCPlaceCall    Method = "3PCC_PLACE_CALL"
	MethodEventFired       Method = "RTCOMM_EVENT_FIRED"
)

// Methods lists every known method.
var Methods = []Method{
	MethodDocument, MethodDocumentReplaced, MethodServiceQuery, MethodResponse,
	MethodStartSession, MethodPranswer, MethodMessage, MethodStopSession,
	MethodRefer, Method3PCCPlaceCall, MethodEventFired,
}

// Known reports whether m is a method of Rtcomm v1.0.0.
func (m Method) Known() bool {
	for _, k := range Methods {
		if k == m {
			return true
		}
	}
	return false
}

// Result values of a RESPONSE.
const (
	ResultSuccess = "SUCCESS"
	ResultFailure = "FAILURE"
)

// Document types.
const (
	DocEndpoint = "ENDPOINT"
	DocService  = "SERVICE"
)

// Service names in a SERVICE_QUERY answer.
const (
	ServiceConnector   = "RTCOMM_CONNECTOR_SERVICE"
	ServiceCallControl = "RTCOMM_CALL_CONTROL_SERVICE"
	ServiceCallQueue   = "RTCOMM_CALL_QUEUE_SERVICE"
)

// Sub-protocol names used in protocols and payload keys.
const (
	ProtoWebRTC = "webrtc"
	ProtoChat   = "chat"
)

// Message is one Rtcomm message: every field any method uses, plus Extra,
// which keeps unknown top-level fields so a relayed message round-trips.
// Payload, UserDefines and Details stay raw so relays pass them byte-for-byte.
type Message struct {
	Method    Method `json:"method"`
	RtcommVer string `json:"rtcommVer,omitempty"`
	FromTopic string `json:"fromTopic,omitempty"`
	TransID   string `json:"transID,omitempty"`
	SigSessID string `json:"sigSessID,omitempty"`

	// RESPONSE
	Orig     Method             `json:"orig,omitempty"`
	Result   string             `json:"result,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	Services map[string]Service `json:"services,omitempty"`

	// Sessions
	ToEndpointID  string          `json:"toEndpointID,omitempty"`
	AppContext    string          `json:"appContext,omitempty"`
	Protocols     []string        `json:"protocols,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	HoldTimeout   *int            `json:"holdTimeout,omitempty"`
	QueuePosition *int            `json:"queuePosition,omitempty"`

	// DOCUMENT. AddressTopic is what rtcomm.js sends; Topic is the written spec's name.
	Type         string          `json:"type,omitempty"`
	AddressTopic string          `json:"addressTopic,omitempty"`
	Topic        string          `json:"topic,omitempty"`
	State        string          `json:"state,omitempty"`
	Alias        string          `json:"alias,omitempty"`
	UserDefines  json.RawMessage `json:"userDefines,omitempty"`

	// REFER
	Details json.RawMessage `json:"details,omitempty"`

	// 3PCC_PLACE_CALL
	CallerEndpoint string `json:"callerEndpoint,omitempty"`
	CalleeEndpoint string `json:"calleeEndpoint,omitempty"`
	SessionID      string `json:"sessionID,omitempty"`

	// RTCOMM_EVENT_FIRED
	Timestamp string `json:"timestamp,omitempty"`

	// Extra holds fields this package does not know, by name, as raw JSON.
	Extra map[string]json.RawMessage `json:"-"`
}

// Service is one entry of a SERVICE_QUERY answer's services object.
type Service struct {
	Topic                string   `json:"topic,omitempty"`
	SphereTopic          string   `json:"sphereTopic,omitempty"`
	IceURL               string   `json:"iceURL,omitempty"`
	EventMonitoringTopic string   `json:"eventMonitoringTopic,omitempty"`
	Schemes              []string `json:"schemes,omitempty"`
	Queues               []Queue  `json:"queues,omitempty"`
}

// Queue is one call queue advertised by RTCOMM_CALL_QUEUE_SERVICE.
type Queue struct {
	EndpointID string `json:"endpointID"`
	Topic      string `json:"topic"`
}

// ReferDetails is the details object of a REFER.
type ReferDetails struct {
	SessionID    string `json:"sessionID"`
	ToEndpointID string `json:"toEndpointID"`
}

// Envelope returns a copy of m without its raw JSON fields (Payload, UserDefines, Details
// and Extra). Those are views of Decode's one copy of the MQTT payload, so a decoded message
// kept for long keeps the whole payload (for a START_SESSION, its SDP); its envelope keeps
// only the typed fields, each a copy of its own.
func (m *Message) Envelope() *Message {
	c := *m
	c.Payload, c.UserDefines, c.Details, c.Extra = nil, nil, nil, nil
	return &c
}

// Address returns the DOCUMENT's address topic: addressTopic (rtcomm.js) or topic (written spec).
func (m *Message) Address() string {
	if m.AddressTopic != "" {
		return m.AddressTopic
	}
	return m.Topic
}

// knownFields are the JSON names decoded into Message's typed fields.
var knownFields = map[string]bool{
	"method": true, "rtcommVer": true, "fromTopic": true, "transID": true, "sigSessID": true,
	"orig": true, "result": true, "reason": true, "services": true,
	"toEndpointID": true, "appContext": true, "protocols": true, "payload": true,
	"holdTimeout": true, "queuePosition": true,
	"type": true, "addressTopic": true, "topic": true, "state": true, "alias": true, "userDefines": true,
	"details": true, "callerEndpoint": true, "calleeEndpoint": true, "sessionID": true, "timestamp": true,
}

// FieldError says which field of a message had the wrong JSON type.
type FieldError struct {
	Field string
	Want  string
	Got   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("field %q: expected %s, got %s", e.Field, e.Want, e.Got)
}

// ErrEmpty is returned by Decode for a zero-length payload: the last-will / unregister message.
var ErrEmpty = errors.New("empty payload (last will / unregister)")

// ErrNotObject is returned by Decode when the payload is JSON but not an object.
var ErrNotObject = errors.New("payload is not a JSON object")

// Decode parses one MQTT payload. It is lenient: a field with the wrong type
// is reported in the returned error (errors.As a *FieldError; several are
// joined) while every other field is still decoded, so a connector can answer
// FAILURE to the transID of a message whose other fields are broken.
// A nil message is returned only when the payload is not a JSON object.
func Decode(payload []byte) (*Message, error) { return decode(payload, true) }

// DecodeOwned is Decode of a payload the caller hands over: the raw fields are views of
// payload itself rather than of a copy, so payload must not be changed or reused after the
// call. For a client that reads every packet into a slice of its own (loadgen/mqttlite),
// where Decode's copy would be the second of each message.
func DecodeOwned(payload []byte) (*Message, error) { return decode(payload, false) }

func decode(payload []byte, clone bool) (*Message, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, ErrEmpty
	}
	// One private copy of the payload (or the payload handed over); every raw field
	// (Payload, Extra, ...) is a capped slice of it, so appending to one cannot overwrite
	// another.
	buf := payload
	if clone {
		buf = bytes.Clone(payload)
	}
	var arr [16]member
	members, object, valid := scanObject(buf, arr[:0]) // validates as json.Valid does, in the same pass
	switch {
	case !valid:
		return decodeInvalid(payload)
	case !object:
		return nil, ErrNotObject // valid JSON, but null, an array, a string, ...
	}
	m := &Message{}
	var errs []error
	// A repeated name keeps its last value, as json.Unmarshal into a map does.
	var last map[string]int // index of each name's last occurrence, for many members
	if len(members) > 16 {
		last = make(map[string]int, len(members))
		for i, x := range members {
			last[x.name] = i
		}
	}
	for i := len(members) - 1; i >= 0; i-- {
		name, val := members[i].name, members[i].val
		if last != nil && last[name] != i || last == nil && seenLater(members[i+1:], name) {
			continue
		}
		if !knownFields[name] {
			if m.Extra == nil {
				m.Extra = make(map[string]json.RawMessage)
			}
			m.Extra[name] = val
			continue
		}
		if err := m.decodeField(name, val); err != nil {
			errs = append(errs, err)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return m, errors.Join(errs...)
}

// decodeInvalid gives json.Unmarshal's error for a payload that is not valid JSON.
func decodeInvalid(payload []byte) (*Message, error) {
	var raw map[string]json.RawMessage
	err := json.Unmarshal(payload, &raw)
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ute):
		return nil, ErrNotObject
	case err != nil:
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	return nil, errors.New("malformed JSON") // json.Valid and json.Unmarshal disagree: cannot happen
}

// member is one name/value pair of a top-level object; val is the value's raw bytes.
type member struct {
	name string
	val  json.RawMessage
}

func seenLater(later []member, name string) bool {
	for _, x := range later {
		if x.name == name {
			return true
		}
	}
	return false
}

// decodeKey decodes a member name; raw includes the quotes.
func decodeKey(raw []byte) (string, bool) {
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// plainString is the fast path of a JSON string with no escapes and valid UTF-8 (what
// json.Unmarshal would return unchanged); ok is false otherwise.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if s, ok := vocabulary[string(body)]; ok {
		return s, true // no allocation for the protocol's own words
	}
	if bytes.IndexByte(body, '\\') >= 0 || !utf8.Valid(body) {
		return "", false
	}
	return string(body), true
}

// vocabulary holds the strings every message repeats (member names, methods, results,
// protocol names), so decoding them allocates nothing: a decoded message is otherwise a
// dozen small strings, and a held session keeps its messages' (issue 16).
var vocabulary = func() map[string]string {
	v := map[string]string{}
	for name := range knownFields {
		v[name] = name
	}
	for _, m := range Methods {
		v[string(m)] = string(m)
	}
	for _, w := range []string{Version, ResultSuccess, ResultFailure, DocEndpoint, DocService, ServiceConnector,
		ServiceCallControl, ServiceCallQueue, ProtoWebRTC, ProtoChat, "rtcomm", SDPOffer, SDPAnswer, SDPPranswer,
		ICECandType, "available", "sdp", "candidate", "sdpMid", "sdpMLineIndex", "webrtc", "chat", "message"} {
		v[w] = w
	}
	return v
}()

// plainStrings is the fast path of an array of plain strings (protocols): ok is false for
// anything else, which json.Unmarshal then decodes. val is valid JSON.
func plainStrings(val []byte) ([]string, bool) {
	i := skipSpace(val, 1) // val[0] == '['
	out := []string{}      // [] decodes to an empty slice, not nil
	if i < len(val) && val[i] == ']' {
		return out, true
	}
	for i < len(val) && val[i] == '"' {
		end, ok := scanString(val, i)
		if !ok {
			return nil, false
		}
		str, ok := plainString(val[i:end])
		if !ok {
			return nil, false
		}
		out = append(out, str)
		i = skipSpace(val, end)
		if i >= len(val) {
			return nil, false
		}
		switch val[i] {
		case ']':
			return out, true
		case ',':
			i = skipSpace(val, i+1)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (m *Message) decodeField(name string, val json.RawMessage) error {
	if string(val) == "null" {
		return nil // null is "absent" for every field (rtcomm.js sends fromTopic: null)
	}
	str := func(dst *string) error {
		if v, ok := plainString(val); ok {
			*dst = v
			return nil
		}
		return decodeAs(name, "string", val, dst)
	}
	switch name {
	case "method":
		var s string
		err := str(&s)
		m.Method = Method(s)
		return err
	case "orig":
		var s string
		err := str(&s)
		m.Orig = Method(s)
		return err
	case "rtcommVer":
		return str(&m.RtcommVer)
	case "fromTopic":
		return str(&m.FromTopic)
	case "transID":
		return str(&m.TransID)
	case "sigSessID":
		return str(&m.SigSessID)
	case "result":
		return str(&m.Result)
	case "reason":
		return str(&m.Reason)
	case "toEndpointID":
		return str(&m.ToEndpointID)
	case "appContext":
		return str(&m.AppContext)
	case "type":
		return str(&m.Type)
	case "addressTopic":
		return str(&m.AddressTopic)
	case "topic":
		return str(&m.Topic)
	case "state":
		return str(&m.State)
	case "alias":
		return str(&m.Alias)
	case "callerEndpoint":
		return str(&m.CallerEndpoint)
	case "calleeEndpoint":
		return str(&m.CalleeEndpoint)
	case "sessionID":
		return str(&m.SessionID)
	case "timestamp":
		// rtcomm.node sends a string; tolerate a number (epoch ms) and keep its text.
		if len(val) > 0 && val[0] != '"' {
			var n json.Number
			if err := decodeAs(name, "string", val, &n); err != nil {
				return err
			}
			m.Timestamp = n.String()
			return nil
		}
		return str(&m.Timestamp)
	case "services":
		return decodeAs(name, "object of services", val, &m.Services)
	case "protocols":
		if val[0] == '[' {
			if ps, ok := plainStrings(val); ok {
				m.Protocols = ps
				return nil
			}
		}
		return decodeAs(name, "array of strings", val, &m.Protocols)
	case "holdTimeout":
		return decodeAs(name, "integer", val, &m.HoldTimeout)
	case "queuePosition":
		return decodeAs(name, "integer", val, &m.QueuePosition)
	case "payload":
		if val[0] != '{' {
			return &FieldError{Field: name, Want: "object", Got: jsonKind(val)}
		}
		m.Payload = val // Decode's own copy
	case "details":
		if val[0] != '{' {
			return &FieldError{Field: name, Want: "object", Got: jsonKind(val)}
		}
		m.Details = val
	case "userDefines":
		m.UserDefines = val
	}
	return nil
}

func decodeAs(name, want string, val json.RawMessage, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(val))
	if n, ok := dst.(*json.Number); ok {
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return &FieldError{Field: name, Want: want, Got: jsonKind(val)}
		}
		num, ok := v.(json.Number)
		if !ok {
			return &FieldError{Field: name, Want: want, Got: jsonKind(val)}
		}
		*n = num
		return nil
	}
	if err := dec.Decode(dst); err != nil {
		return &FieldError{Field: name, Want: want, Got: jsonKind(val)}
	}
	return nil
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(val json.RawMessage) string {
	v := bytes.TrimSpace(val)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number " + string(v)
	}
}

// MarshalJSON encodes the typed fields, then the Extra fields, in a stable order.
func (m Message) MarshalJSON() ([]byte, error) {
	b, err := appendMessage(make([]byte, 0, 256+len(m.Payload)), &m)
	if err != nil {
		return nil, err
	}
	if len(m.Extra) == 0 {
		return b, nil
	}
	names := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		if !knownFields[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.Grow(len(b) + 64*len(names))
	buf.Write(b[:len(b)-1]) // drop the closing brace
	for _, k := range names {
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(m.Extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes strictly: any field error fails the whole decode.
// Use Decode for the lenient form that connectors need.
func (m *Message) UnmarshalJSON(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

// Encode marshals m, filling rtcommVer when it is empty.
func Encode(m *Message) ([]byte, error) {
	if m.RtcommVer == "" {
		m.RtcommVer = Version
	}
	if len(m.Extra) > 0 {
		return json.Marshal(m) // compacts and HTML-escapes the raw Extra values too
	}
	// Without Extra, MarshalJSON's output is already what json.Marshal(m) returns:
	// json.Marshal(m) would only re-scan (compact) it, a second pass over a 5 KB SDP
	// that cost about 5% of the load generator's CPU.
	return m.MarshalJSON()
}

// appendMessage appends m's typed fields as json.Marshal would encode them (field order,
// omitempty, HTML-safe escaping, raw fields compacted and validated) without reflection,
// and without re-scanning a raw field already known to be compact: the load generator
// sends the same 5 KB SDP thousands of times and compacting it was its largest cost.
// The differential tests hold it to json.Marshal.
func appendMessage(b []byte, m *Message) ([]byte, error) {
	b = append(b, `{"method":`...)
	b = appendJSONString(b, string(m.Method))
	var err error
	str := func(name, v string) {
		if v != "" {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = appendJSONString(b, v)
		}
	}
	val := func(name string, v any) {
		if err != nil {
			return
		}
		var vb []byte
		if vb, err = json.Marshal(v); err == nil {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = append(b, vb...)
		}
	}
	raw := func(name string, v json.RawMessage) {
		if len(v) == 0 || err != nil {
			return
		}
		var vb []byte
		if vb, err = compactRaw(v); err == nil {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = append(b, vb...)
		}
	}
	intp := func(name string, v *int) {
		if v != nil {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = strconv.AppendInt(b, int64(*v), 10)
		}
	}
	str("rtcommVer", m.RtcommVer)
	str("fromTopic", m.FromTopic)
	str("transID", m.TransID)
	str("sigSessID", m.SigSessID)
	str("orig", string(m.Orig))
	str("result", m.Result)
	str("reason", m.Reason)
	if len(m.Services) > 0 {
		val("services", m.Services)
	}
	str("toEndpointID", m.ToEndpointID)
	str("appContext", m.AppContext)
	if len(m.Protocols) > 0 {
		val("protocols", m.Protocols)
	}
	raw("payload", m.Payload)
	intp("holdTimeout", m.HoldTimeout)
	intp("queuePosition", m.QueuePosition)
	str("type", m.Type)
	str("addressTopic", m.AddressTopic)
	str("topic", m.Topic)
	str("state", m.State)
	str("alias", m.Alias)
	raw("userDefines", m.UserDefines)
	raw("details", m.Details)
	str("callerEndpoint", m.CallerEndpoint)
	str("calleeEndpoint", m.CalleeEndpoint)
	str("sessionID", m.SessionID)
	str("timestamp", m.Timestamp)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendJSONString appends s quoted as encoding/json does (HTML-safe); plain ASCII is
// copied, anything else goes through json.Marshal so every escaping rule is its.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// compactCache holds raw values recently found already compact (json.Marshal returned
// them unchanged): an equal value is valid and compact, so it is used as is. Compared by
// content, so a caller reusing or changing its slice cannot get a stale answer. 16 slots
// hold a load run's fixtures (offer, answer and 4 ICE candidates per side): in a profile of
// `make perf` re-validating the candidates was 5 % of the generator's CPU.
var compactCache struct {
	sync.Mutex
	vals [16][]byte
	next int
}

// compactCacheMin is the smallest value worth the cache: below it json.Marshal is cheap.
const compactCacheMin = 64

// compactRaw returns v as json.Marshal encodes a RawMessage: validated, compacted,
// HTML-escaped.
func compactRaw(v json.RawMessage) ([]byte, error) {
	if len(v) >= compactCacheMin {
		compactCache.Lock()
		for _, c := range compactCache.vals {
			if bytes.Equal(c, v) {
				compactCache.Unlock()
				return v, nil
			}
		}
		compactCache.Unlock()
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(v) >= compactCacheMin && bytes.Equal(out, v) {
		compactCache.Lock()
		compactCache.vals[compactCache.next] = bytes.Clone(v)
		compactCache.next = (compactCache.next + 1) % len(compactCache.vals)
		compactCache.Unlock()
	}
	return out, nil
}

// WebRTCPayload is the webrtc entry of a payload.
type WebRTCPayload struct {
	Type      string        `json:"type"` // offer, answer, pranswer, icecandidate, stream
	SDP       string        `json:"sdp,omitempty"`
	Candidate *ICECandidate `json:"candidate,omitempty"`
	Stream    string        `json:"stream,omitempty"`
}

// ICECandidate is an RTCIceCandidateInit as browsers serialize it.
// Candidate is "" for end-of-candidates.
type ICECandidate struct {
	Candidate     string `json:"candidate"`
	SDPMid        string `json:"sdpMid,omitempty"`
	SDPMLineIndex *int   `json:"sdpMLineIndex,omitempty"`
}

// ChatPayload is the chat entry of a payload.
type ChatPayload struct {
	Message string `json:"message"`
	From    string `json:"from,omitempty"`
}

// WebRTC payload types.
const (
	SDPOffer     = "offer"
	SDPAnswer    = "answer"
	SDPPranswer  = "pranswer"
	ICECandType  = "icecandidate"
	StreamChange = "stream"
)

// PayloadProtocols returns the sub-protocol keys of a payload object, sorted.
func PayloadProtocols(payload json.RawMessage) ([]string, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// WebRTC decodes the webrtc entry of the message's payload; ok is false when absent.
func (m *Message) WebRTC() (p WebRTCPayload, ok bool, err error) {
	ok, err = m.payloadEntry(ProtoWebRTC, &p)
	return p, ok, err
}

// Chat decodes the chat entry of the message's payload; ok is false when absent.
func (m *Message) Chat() (p ChatPayload, ok bool, err error) {
	ok, err = m.payloadEntry(ProtoChat, &p)
	return p, ok, err
}

func (m *Message) payloadEntry(key string, dst any) (bool, error) {
	if len(m.Payload) == 0 {
		return false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload, &obj); err != nil {
		return false, fmt.Errorf("payload: %w", err)
	}
	raw, ok := obj[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return true, fmt.Errorf("payload.%s: %w", key, err)
	}
	return true, nil
}

// NewPayload builds a payload object from sub-protocol entries (values are marshalled).
func NewPayload(entries map[string]any) (json.RawMessage, error) {
	b, err := json.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return b, nil
}

// WebRTCPayloadJSON is shorthand for a payload holding only a webrtc entry.
func WebRTCPayloadJSON(p WebRTCPayload) json.RawMessage {
	b, _ := json.Marshal(map[string]WebRTCPayload{ProtoWebRTC: p}) // cannot fail: plain struct
	return b
}

// CommonProtocols returns the protocols present in both lists, in a's order.
func CommonProtocols(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if strings.EqualFold(x, y) {
				out = append(out, x)
				break
			}
		}
	}
	return out
}
