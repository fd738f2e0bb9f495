package spec_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// obj is a message under construction; with() copies it and sets or deletes keys.
type obj map[string]any

// del as a value in with() removes the key.
var del = struct{ deleted bool }{true}

func with(base obj, kv ...any) obj {
	out := make(obj, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == del {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

func (o obj) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

const (
	tid = "b2a4247f-fafc-4d3c-a23b-822d02e8f08b"
	sid = "553eebdc-6884-47e4-a656-fd89a920bb68"
)

var (
	offer  = obj{"webrtc": obj{"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}
	answer = obj{"webrtc": obj{"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}}
	iceIn  = func(c obj) obj { return obj{"webrtc": obj{"type": "icecandidate", "candidate": c}} }
	hostC  = obj{"candidate": "candidate:1 1 udp 2122260223 192.168.1.100 56617 typ host", "sdpMid": "0", "sdpMLineIndex": 0}

	goodDocStrict = obj{"method": "DOCUMENT", "rtcommVer": "v1.0.0", "type": "ENDPOINT", "appContext": "rtcomm",
		"topic": "/rtcomm/alice", "state": "available", "alias": "Alice", "userDefines": []any{"x"}}
	goodDocClient = obj{"method": "DOCUMENT", "rtcommVer": "v1.0.0", "type": "ENDPOINT", "appContext": "rtcomm",
		"addressTopic": "/rtcomm/alice", "fromTopic": nil, "state": "available", "alias": nil, "userDefines": []any{}}
	goodQuery = obj{"method": "SERVICE_QUERY", "rtcommVer": "v1.0.0", "transID": tid, "fromTopic": "/rtcomm/alice"}
	connSvc   = obj{"topic": "/rtcomm/connector", "sphereTopic": "/rtcomm/sphere", "eventMonitoringTopic": "/rtcomm/event",
		"iceURL": "stun:stun.l.google.com:19302,turn:user@turn.example.com:3478:credential:secret,turns:[2001:db8::1]:5349"}
	goodQueryAnswer = obj{"method": "RESPONSE", "rtcommVer": "v1.0.0", "orig": "SERVICE_QUERY", "transID": tid,
		"result": "SUCCESS", "services": obj{
			"RTCOMM_CONNECTOR_SERVICE":    connSvc,
			"RTCOMM_CALL_CONTROL_SERVICE": obj{"topic": "/rtcomm/callControl"},
			"RTCOMM_CALL_QUEUE_SERVICE":   obj{"queues": []obj{{"endpointID": "support", "topic": "/rtcomm/queue/support"}}},
			"SIP_GATEWAY":                 obj{"topic": "/rtcomm/sipgw", "schemes": []string{"sip", "tel"}},
		}}
	goodStart = obj{"method": "START_SESSION", "rtcommVer": "v1.0.0", "transID": tid, "sigSessID": sid,
		"toEndpointID": "bob", "fromTopic": "/rtcomm/alice", "appContext": "rtcomm",
		"protocols": []string{"chat", "webrtc"}, "payload": offer}
	goodPranswer = obj{"method": "PRANSWER", "rtcommVer": "v1.0.0", "transID": tid, "sigSessID": sid,
		"fromTopic": "/rtcomm/bob", "protocols": []string{"webrtc"}, "holdTimeout": 60, "queuePosition": 0}
	goodAnswer = obj{"method": "RESPONSE", "rtcommVer": "v1.0.0", "orig": "START_SESSION", "transID": tid,
		"sigSessID": sid, "fromTopic": "/rtcomm/bob", "protocols": []string{"webrtc"}, "result": "SUCCESS", "payload": answer}
	goodReject = obj{"method": "RESPONSE", "rtcommVer": "v1.0.0", "orig": "START_SESSION", "transID": tid,
		"result": "FAILURE", "reason": "bob is not registered"}
	goodICE = obj{"method": "MESSAGE", "rtcommVer": "v1.0.0", "sigSessID": sid, "fromTopic": "/rtcomm/alice",
		"payload": iceIn(hostC)}
	goodChat = obj{"method": "MESSAGE", "rtcommVer": "v1.0.0", "sigSessID": sid, "fromTopic": "/rtcomm/alice",
		"transID": tid, "payload": obj{"chat": obj{"message": "hi", "from": "alice"}}}
	goodStop  = obj{"method": "STOP_SESSION", "rtcommVer": "v1.0.0", "sigSessID": sid, "reason": "hang up"}
	goodRefer = obj{"method": "REFER", "rtcommVer": "v1.0.0", "transID": tid, "fromTopic": "/rtcomm/connector",
		"toEndpointID": "bob", "details": obj{"sessionID": sid, "toEndpointID": "bob"}}
	goodReferOK = obj{"method": "RESPONSE", "rtcommVer": "v1.0.0", "orig": "REFER", "transID": tid, "result": "SUCCESS"}
	goodPlace   = obj{"method": "3PCC_PLACE_CALL", "rtcommVer": "v1.0.0", "transID": tid, "callerEndpoint": "alice",
		"calleeEndpoint": "sip:bob@example.com", "fromTopic": "svcclient1"}
	goodPlaceOK = obj{"method": "RESPONSE", "rtcommVer": "v1.0.0", "orig": "3PCC_PLACE_CALL", "transID": tid, "result": "SUCCESS"}
	goodEvent   = obj{"method": "RTCOMM_EVENT_FIRED", "rtcommVer": "v1.0.0", "timestamp": "2024-05-01T10:00:00Z",
		"appContext": "rtcomm", "sigSessID": sid}
	goodReplaced = obj{"method": "DOCUMENT_REPLACED", "rtcommVer": "v1.0.0"}
)

type vcase struct {
	name    string
	profile spec.Profile // "" = strict
	topic   string
	payload any // obj, string (raw) or []byte (raw)
	want    []string
}

func (c vcase) raw(t *testing.T) []byte {
	switch p := c.payload.(type) {
	case obj:
		return p.bytes(t)
	case string:
		return []byte(p)
	case []byte:
		return p
	case nil:
		return nil
	}
	t.Fatalf("payload type %T", c.payload)
	return nil
}

const strict, client = spec.ProfileStrict, spec.ProfileClient

var validateCases = []vcase{
	// Transport and common fields.
	{name: "empty at sphere is the will", topic: "/rtcomm/sphere/alice", payload: nil},
	{name: "empty at sphere, client", profile: client, topic: "/rtcomm/sphere/John Smith", payload: nil},
	{name: "empty elsewhere", topic: "/rtcomm/connector/alice", payload: nil, want: []string{"REG-002"}},
	{name: "empty at sphere root", topic: "/rtcomm/sphere", payload: nil, want: []string{"REG-002"}},
	{name: "empty at sphere with empty ID", topic: "/rtcomm/sphere/", payload: nil, want: []string{"ID-001"}},
	{name: "white space only", topic: "/rtcomm/sphere/alice", payload: "  \n", want: []string{"FMT-001"}},
	{name: "not JSON", topic: "/rtcomm/connector/alice", payload: "hello", want: []string{"FMT-001"}},
	{name: "truncated JSON", topic: "/rtcomm/connector/alice", payload: `{"method":"START_SESSION"`, want: []string{"FMT-001"}},
	{name: "JSON array", topic: "/rtcomm/connector/alice", payload: `[1,2]`, want: []string{"FMT-001"}},
	{name: "JSON null", topic: "/rtcomm/connector/alice", payload: `null`, want: []string{"FMT-001"}},
	{name: "invalid UTF-8", topic: "/rtcomm/connector/alice", payload: []byte("{\"method\":\"\xff\"}"), want: []string{"FMT-001"}},
	{name: "no method", topic: "/rtcomm/alice/bob", payload: obj{"rtcommVer": "v1.0.0"}, want: []string{"FMT-002"}},
	{name: "unknown method", topic: "/rtcomm/alice/bob", payload: obj{"method": "ICE_CANDIDATE", "rtcommVer": "v1.0.0"}, want: []string{"FMT-002"}},
	{name: "method not a string", topic: "/rtcomm/alice/bob", payload: obj{"method": 7, "rtcommVer": "v1.0.0"}, want: []string{"FMT-004"}},
	{name: "no rtcommVer", topic: "/rtcomm/alice/connector", payload: with(goodReplaced, "rtcommVer", del), want: []string{"FMT-003"}},
	{name: "old rtcommVer", topic: "/rtcomm/alice/connector", payload: with(goodReplaced, "rtcommVer", "v0.3.0"), want: []string{"FMT-003"}},
	{name: "fromTopic with wildcard", topic: "/rtcomm/management/alice", payload: with(goodQuery, "fromTopic", "/rtcomm/#"), want: []string{"FMT-006"}},
	{name: "DOCUMENT_REPLACED", topic: "/rtcomm/alice/connector", payload: goodReplaced},

	// Identity rule on topics.
	{name: "no sender level", topic: "/rtcomm/bob", payload: with(goodICE), want: []string{"ID-004"}},
	{name: "sender with wildcard", topic: "/rtcomm/bob/al+ce", payload: goodICE, want: []string{"ID-003"}},
	{name: "empty sender", topic: "/rtcomm/bob/", payload: goodICE, want: []string{"ID-001"}},
	{name: "sender with spaces and scheme", topic: "/rtcomm/bob/sip:John Smith@example.com", payload: goodICE},
	{name: "outside the topic path: no sender rule", topic: "svcclient1", payload: goodPlaceOK},

	// DOCUMENT: the address field is where the profiles differ.
	{name: "DOCUMENT strict good", topic: "/rtcomm/sphere/alice", payload: goodDocStrict},
	{name: "DOCUMENT client good", profile: client, topic: "/rtcomm/sphere/alice", payload: goodDocClient},
	{name: "DOCUMENT both fields, strict", topic: "/rtcomm/sphere/alice", payload: with(goodDocClient, "topic", "/rtcomm/alice")},
	{name: "DOCUMENT both fields, client", profile: client, topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "addressTopic", "/rtcomm/alice")},
	{name: "DOCUMENT addressTopic only, strict", topic: "/rtcomm/sphere/alice", payload: goodDocClient, want: []string{"REG-003"}},
	{name: "DOCUMENT topic only, client", profile: client, topic: "/rtcomm/sphere/alice", payload: goodDocStrict, want: []string{"REG-004"}},
	{name: "DOCUMENT no address, strict", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "topic", del), want: []string{"REG-003"}},
	{name: "DOCUMENT no address, client", profile: client, topic: "/rtcomm/sphere/alice", payload: with(goodDocClient, "addressTopic", del), want: []string{"REG-004"}},
	{name: "DOCUMENT off the sphere", topic: "/rtcomm/connector/alice", payload: goodDocStrict, want: []string{"REG-001"}},
	{name: "DOCUMENT in a presence group", profile: client, topic: "/rtcomm/sphere/agents/alice", payload: goodDocClient},
	{name: "DOCUMENT in a nested presence group", topic: "/rtcomm/sphere/us/agents/alice", payload: goodDocStrict},
	{name: "DOCUMENT in an empty group", topic: "/rtcomm/sphere//alice", payload: goodDocStrict, want: []string{"REG-001"}},
	{name: "unregister in a presence group", profile: client, topic: "/rtcomm/sphere/agents/alice", payload: []byte{}},
	{name: "DOCUMENT bad type", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "type", "USER"), want: []string{"REG-001"}},
	{name: "DOCUMENT no type, no appContext", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "type", del, "appContext", del), want: []string{"REG-001", "REG-001"}},
	{name: "DOCUMENT userDefines object", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "userDefines", obj{"a": 1}), want: []string{"FMT-004"}},
	{name: "DOCUMENT address with wildcard", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "topic", "/rtcomm/+"), want: []string{"FMT-006"}},
	{name: "DOCUMENT numeric state", topic: "/rtcomm/sphere/alice", payload: with(goodDocStrict, "state", 1), want: []string{"FMT-004"}},

	// SERVICE_QUERY and its answer.
	{name: "SERVICE_QUERY good", topic: "/rtcomm/management/alice", payload: goodQuery},
	{name: "SERVICE_QUERY to the connector topic", topic: "/rtcomm/connector/alice", payload: goodQuery, want: []string{"SQ-001"}},
	{name: "SERVICE_QUERY no transID, no fromTopic", topic: "/rtcomm/management/alice", payload: with(goodQuery, "transID", del, "fromTopic", del), want: []string{"SQ-001", "SQ-001"}},
	{name: "SERVICE_QUERY transID a number", topic: "/rtcomm/management/alice", payload: with(goodQuery, "transID", 12), want: []string{"FMT-004"}},
	{name: "answer good", topic: "/rtcomm/alice/connector", payload: goodQueryAnswer},
	{name: "answer good, client", profile: client, topic: "/rtcomm/alice/connector", payload: goodQueryAnswer},
	{name: "answer minimal, client", profile: client, topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": obj{"topic": "connector"}})},
	{name: "answer minimal, strict", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": obj{"topic": "connector"}}),
		want:    []string{"SQ-006", "SQ-006", "SQ-006"}},
	{name: "answer without connector service", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CALL_CONTROL_SERVICE": obj{"topic": "/rtcomm/callControl"}}), want: []string{"SQ-005"}},
	{name: "answer without services", profile: client, topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", del), want: []string{"SQ-005"}},
	{name: "answer services wrong type", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", []string{"x"}), want: []string{"FMT-004"}},
	{name: "answer connector service without topic", profile: client, topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc, "topic", del)}), want: []string{"SQ-005"}},
	{name: "answer FAILURE, strict", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "result", "FAILURE", "reason", "busy", "services", del)},
	{name: "answer FAILURE, client", profile: client, topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "result", "FAILURE", "reason", "busy", "services", del), want: []string{"SQ-004"}},
	{name: "answer bad iceURL", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc,
			"iceURL", "stun:ok.example.com,http://x,turn:,stun:host:99999,turn:h:3478?transport=sctp,stun:[zz]:1")}),
		want: []string{"SQ-007", "SQ-007", "SQ-007", "SQ-007", "SQ-007"}},
	{name: "answer schemes without topic", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": connSvc,
			"SIP_GATEWAY": obj{"schemes": []string{"sip", "tel:"}}}), want: []string{"SQ-008", "SQ-008"}},
	{name: "answer call control without topic", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": connSvc,
			"RTCOMM_CALL_CONTROL_SERVICE": obj{}}), want: []string{"REF-007"}},
	{name: "answer bad queue", topic: "/rtcomm/alice/connector",
		payload: with(goodQueryAnswer, "services", obj{"RTCOMM_CONNECTOR_SERVICE": connSvc,
			"RTCOMM_CALL_QUEUE_SERVICE": obj{"queues": []obj{{"endpointID": "a/b", "topic": ""}}}}), want: []string{"QUE-001", "QUE-001"}},

	// RESPONSE, any orig.
	{name: "RESPONSE no orig", topic: "/rtcomm/alice/bob", payload: with(goodReferOK, "orig", del), want: []string{"FMT-005"}},
	{name: "RESPONSE unknown orig", topic: "/rtcomm/alice/bob", payload: with(goodReferOK, "orig", "MESSAGE"), want: []string{"FMT-005"}},
	{name: "RESPONSE no transID", topic: "/rtcomm/alice/bob", payload: with(goodReferOK, "transID", del), want: []string{"FMT-005"}},
	{name: "RESPONSE bad result", topic: "/rtcomm/alice/bob", payload: with(goodReferOK, "result", "OK"), want: []string{"FMT-005"}},
	{name: "RESPONSE FAILURE without reason", topic: "/rtcomm/alice/bob", payload: with(goodReferOK, "result", "FAILURE"), want: []string{"FMT-005"}},
	{name: "RESPONSE to REFER good", topic: "/rtcomm/connector/alice", payload: goodReferOK},

	// START_SESSION.
	{name: "START_SESSION to connector", topic: "/rtcomm/connector/alice", payload: goodStart},
	{name: "START_SESSION forwarded, no toEndpointID", topic: "/rtcomm/bob/alice", payload: with(goodStart, "toEndpointID", del)},
	{name: "START_SESSION chat only, no payload", profile: client, topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "protocols", []string{"chat"}, "payload", nil)},
	{name: "START_SESSION to connector without toEndpointID", topic: "/rtcomm/connector/alice", payload: with(goodStart, "toEndpointID", del), want: []string{"SESS-001"}},
	{name: "START_SESSION without transID, sigSessID", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "transID", del, "sigSessID", ""), want: []string{"SESS-001", "SESS-001"}},
	{name: "START_SESSION without fromTopic, protocols", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "fromTopic", del, "protocols", del), want: []string{"SESS-001", "SESS-001"}},
	{name: "START_SESSION empty protocols", topic: "/rtcomm/connector/alice", payload: with(goodStart, "protocols", []string{})},
	{name: "START_SESSION empty protocol name", topic: "/rtcomm/connector/alice", payload: with(goodStart, "protocols", []string{""}), want: []string{"FMT-007"}},
	{name: "START_SESSION protocols a string", topic: "/rtcomm/connector/alice", payload: with(goodStart, "protocols", "webrtc"), want: []string{"FMT-004"}},
	{name: "START_SESSION callee with slash", topic: "/rtcomm/connector/alice", payload: with(goodStart, "toEndpointID", "bob/x"), want: []string{"ID-002"}},
	{name: "START_SESSION offer without sdp", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "payload", obj{"webrtc": obj{"type": "offer"}}), want: []string{"FMT-007"}},
	{name: "START_SESSION offer with empty sdp", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "payload", obj{"webrtc": obj{"type": "offer", "sdp": " "}}), want: []string{"FMT-007"}},
	{name: "START_SESSION unknown webrtc type", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "payload", obj{"webrtc": obj{"type": "rollback"}}), want: []string{"FMT-007"}},
	{name: "START_SESSION payload an array", topic: "/rtcomm/connector/alice", payload: with(goodStart, "payload", []int{1}), want: []string{"FMT-004"}},
	{name: "START_SESSION third-party payload key", topic: "/rtcomm/connector/alice",
		payload: with(goodStart, "protocols", []string{"webrtc", "x-whiteboard"}, "payload", obj{"x-whiteboard": []int{1}, "webrtc": offer["webrtc"]})},

	// PRANSWER and the answer to START_SESSION.
	{name: "PRANSWER good", topic: "/rtcomm/alice/bob", payload: goodPranswer},
	{name: "PRANSWER with pranswer sdp", topic: "/rtcomm/alice/bob",
		payload: with(goodPranswer, "payload", obj{"webrtc": obj{"type": "pranswer", "sdp": "v=0\r\n"}})},
	{name: "PRANSWER missing fields", topic: "/rtcomm/alice/bob",
		payload: with(goodPranswer, "transID", del, "sigSessID", del, "fromTopic", del, "protocols", del),
		want:    []string{"SESS-010", "SESS-010", "SESS-010", "SESS-010"}},
	{name: "PRANSWER negative hold and position", topic: "/rtcomm/alice/bob",
		payload: with(goodPranswer, "holdTimeout", -1, "queuePosition", -2), want: []string{"SESS-010", "SESS-010"}},
	{name: "PRANSWER holdTimeout a string", topic: "/rtcomm/alice/bob", payload: with(goodPranswer, "holdTimeout", "60"), want: []string{"FMT-004"}},
	{name: "answer SUCCESS good", topic: "/rtcomm/alice/bob", payload: goodAnswer},
	{name: "reject FAILURE good", topic: "/rtcomm/alice/connector", payload: goodReject},
	{name: "answer SUCCESS missing fields", topic: "/rtcomm/alice/bob",
		payload: with(goodAnswer, "sigSessID", del, "fromTopic", del, "protocols", del, "payload", del),
		want:    []string{"SESS-010", "SESS-010", "SESS-014"}},
	{name: "answer SUCCESS without fromTopic, client", profile: client, topic: "/rtcomm/alice/bob", payload: with(goodAnswer, "fromTopic", nil)},
	{name: "answer SUCCESS without payload", topic: "/rtcomm/alice/bob", payload: with(goodAnswer, "payload", del)},
	{name: "answer without sdp", topic: "/rtcomm/alice/bob",
		payload: with(goodAnswer, "payload", obj{"webrtc": obj{"type": "answer", "sdp": nil}}), want: []string{"FMT-007"}},

	// MESSAGE and ICE.
	{name: "ICE good", topic: "/rtcomm/bob/alice", payload: goodICE},
	{name: "ICE IPv6 relay TCP mDNS", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(obj{
		"candidate": "candidate:7 1 tcp 1518280447 2001:db8::7 9 typ relay raddr 4f2e.local rport 0 tcptype active", "sdpMid": "audio"}))},
	{name: "ICE end-of-candidates", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(obj{"candidate": ""}))},
	{name: "ICE index only", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(obj{"candidate": hostC["candidate"], "sdpMLineIndex": 1}))},
	{name: "ICE no candidate object", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(nil)), want: []string{"ICE-001"}},
	{name: "ICE candidate a string", topic: "/rtcomm/bob/alice",
		payload: with(goodICE, "payload", obj{"webrtc": obj{"type": "icecandidate", "candidate": hostC["candidate"]}}), want: []string{"ICE-001"}},
	{name: "ICE no candidate line", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(obj{"sdpMid": "0"})), want: []string{"ICE-001"}},
	{name: "ICE a= prefix", topic: "/rtcomm/bob/alice",
		payload: with(goodICE, "payload", iceIn(with(hostC, "candidate", "a=candidate:1 1 udp 1 10.0.0.1 1 typ host\r\n")))},
	{name: "ICE not a candidate line", topic: "/rtcomm/bob/alice",
		payload: with(goodICE, "payload", iceIn(with(hostC, "candidate", "typ host 10.0.0.1"))), want: []string{"ICE-001"}},
	{name: "ICE no media line", topic: "/rtcomm/bob/alice",
		payload: with(goodICE, "payload", iceIn(with(hostC, "sdpMid", nil, "sdpMLineIndex", del))), want: []string{"ICE-001"}},
	{name: "ICE negative index", topic: "/rtcomm/bob/alice", payload: with(goodICE, "payload", iceIn(with(hostC, "sdpMLineIndex", -1))), want: []string{"ICE-001"}},
	{name: "chat good", topic: "/rtcomm/bob/alice", payload: goodChat},
	{name: "chat message a number", topic: "/rtcomm/bob/alice",
		payload: with(goodChat, "payload", obj{"chat": obj{"message": 5}}), want: []string{"FMT-007"}},
	{name: "MESSAGE missing fields", topic: "/rtcomm/bob/alice",
		payload: with(goodICE, "sigSessID", del, "fromTopic", del, "payload", del), want: []string{"MSG-001", "MSG-001", "MSG-001"}},

	// STOP_SESSION: rtcomm.js sends no reason, the written spec wants one.
	{name: "STOP good", topic: "/rtcomm/bob/alice", payload: goodStop},
	{name: "STOP without reason, strict", topic: "/rtcomm/bob/alice", payload: with(goodStop, "reason", del), want: []string{"SESS-012"}},
	{name: "STOP without reason, client", profile: client, topic: "/rtcomm/bob/alice", payload: with(goodStop, "reason", del, "payload", nil)},
	{name: "STOP without sigSessID", profile: client, topic: "/rtcomm/bob/alice", payload: with(goodStop, "sigSessID", del), want: []string{"SESS-011"}},

	// REFER and 3PCC.
	{name: "REFER good", topic: "/rtcomm/alice/connector", payload: goodRefer},
	{name: "REFER good, client", profile: client, topic: "/rtcomm/alice/connector", payload: goodRefer},
	{name: "REFER missing fields", topic: "/rtcomm/alice/connector",
		payload: with(goodRefer, "transID", del, "fromTopic", del, "toEndpointID", del, "details", del),
		want:    []string{"REF-003", "REF-003", "REF-003", "REF-003"}},
	{name: "REFER details a string", topic: "/rtcomm/alice/connector", payload: with(goodRefer, "details", "bob"), want: []string{"FMT-004"}},
	{name: "REFER thin details, strict", topic: "/rtcomm/alice/connector",
		payload: with(goodRefer, "details", obj{}, "fromTopic", "connector")},
	{name: "REFER thin details, client", profile: client, topic: "/rtcomm/alice/connector",
		payload: with(goodRefer, "details", obj{"sessionID": 3}, "fromTopic", "connector"), want: []string{"REF-004", "REF-004", "REF-004"}},
	{name: "3PCC strict with sender", topic: "/rtcomm/callControl/svc", payload: goodPlace},
	{name: "3PCC client exact topic", profile: client, topic: "/rtcomm/callControl", payload: goodPlace},
	{name: "3PCC strict exact topic", topic: "/rtcomm/callControl", payload: goodPlace, want: []string{"ID-004"}},
	{name: "3PCC missing fields", profile: client, topic: "/rtcomm/callControl",
		payload: with(goodPlace, "transID", del, "callerEndpoint", del, "calleeEndpoint", del, "fromTopic", del),
		want:    []string{"REF-001", "REF-001", "REF-001", "REF-001"}},
	{name: "3PCC bad endpoints", profile: client, topic: "/rtcomm/callControl",
		payload: with(goodPlace, "callerEndpoint", "a#", "calleeEndpoint", "x/y"), want: []string{"ID-002", "ID-003"}},
	{name: "3PCC lib.rtcomm.node v0.0.1, client", profile: client, topic: "/rtcomm/callControl", payload: with(goodPlace, "rtcommVer", "v0.0.1")},
	{name: "3PCC lib.rtcomm.node v0.0.1, strict", topic: "/rtcomm/callControl/svc", payload: with(goodPlace, "rtcommVer", "v0.0.1"), want: []string{"FMT-003"}},
	{name: "START_SESSION v0.0.1, client", profile: client, topic: "/rtcomm/connector/alice", payload: with(goodStart, "rtcommVer", "v0.0.1"), want: []string{"FMT-003"}},
	{name: "PRANSWER empty pranswer sdp, client", profile: client, topic: "/rtcomm/alice/bob",
		payload: with(goodPranswer, "payload", obj{"webrtc": obj{"type": "pranswer", "sdp": ""}}, "holdTimeout", nil, "queuePosition", nil)},
	{name: "answer with empty sdp", topic: "/rtcomm/alice/bob",
		payload: with(goodAnswer, "payload", obj{"webrtc": obj{"type": "answer", "sdp": ""}}), want: []string{"FMT-007"}},
	{name: "iceURL RFC 7065 TURN, strict", topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc, "iceURL", "turn:turn.example.com:3478?transport=tcp")})},
	{name: "iceURL RFC 7065 TURN, client", profile: client, topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc, "iceURL", "stun:s.example.com,turn:turn.example.com")}), want: []string{"SQ-009"}},
	{name: "iceURL spec TURN form, strict", topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc, "iceURL", "stun:stun.juberti.com:3478,turn:test@stun.juberti.com:3478:credential:test")})},
	{name: "iceURL garbage, client", profile: client, topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": with(connSvc, "iceURL", "turn")}), want: []string{"SQ-007"}},
	{name: "queue topic a shared filter", profile: client, topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": connSvc, "RTCOMM_CALL_QUEUE_SERVICE": obj{"queues": []obj{{"endpointID": "support", "topic": "$share/rtcomm-queue//rtcomm/support/#"}}}})},
	{name: "queue topic a bad filter", topic: "/rtcomm/alice/x", payload: with(goodQueryAnswer, "services",
		obj{"RTCOMM_CONNECTOR_SERVICE": connSvc, "RTCOMM_CALL_QUEUE_SERVICE": obj{"queues": []obj{{"endpointID": "support", "topic": "/rtcomm/#/support"}}}}), want: []string{"QUE-001"}},
	{name: "3PCC answer FAILURE", topic: "svcclient1", payload: with(goodPlaceOK, "result", "FAILURE", "reason", "no answer")},

	// Events.
	{name: "event good", topic: "/rtcomm/event/session/started/alice/bob", payload: goodEvent},
	{name: "event failed with reason", topic: "/rtcomm/event/session/failed/alice/bob", payload: with(goodEvent, "reason", "timeout")},
	{name: "event failed without reason", topic: "/rtcomm/event/session/failed/alice/bob", payload: goodEvent, want: []string{"EVT-001"}},
	{name: "event epoch timestamp", topic: "/rtcomm/event/session/stopped/alice/bob", payload: with(goodEvent, "timestamp", 1714557600000)},
	{name: "event missing fields", topic: "/rtcomm/event/session/modified/alice/bob",
		payload: with(goodEvent, "timestamp", del, "appContext", del), want: []string{"EVT-002", "EVT-002"}},
	{name: "event bad action", topic: "/rtcomm/event/session/ringing/alice/bob", payload: goodEvent, want: []string{"EVT-002"}},
	{name: "event short topic", topic: "/rtcomm/event/session/started/alice", payload: goodEvent, want: []string{"EVT-002"}},
	{name: "event off the event tree", topic: "/rtcomm/alice/connector", payload: goodEvent, want: []string{"EVT-002"}},
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, c := range validateCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := spec.Validator{Profile: c.profile}.Validate(c.topic, c.raw(t))
			assertIDs(t, got, c.want)
		})
	}
}

func assertIDs(t *testing.T, got []spec.Violation, want []string) {
	t.Helper()
	ids := make([]string, len(got))
	for i, v := range got {
		ids[i] = v.Requirement
	}
	w := slices.Clone(want)
	slices.Sort(w)
	s := slices.Clone(ids)
	slices.Sort(s)
	if !slices.Equal(s, w) {
		t.Errorf("violations: expected %v, actual %v", w, got)
	}
	for _, v := range got {
		if v.Expected == "" || v.Actual == "" {
			t.Errorf("violation %s: expected Expected and Actual filled, actual %+v", v.Requirement, v)
		}
	}
}

// TestValidateDefaultIsStrict: the package function and the zero Validator use /rtcomm/ and strict.
func TestValidateDefaultIsStrict(t *testing.T) {
	t.Parallel()
	p := goodDocClient.bytes(t)
	assertIDs(t, spec.Validate("/rtcomm/sphere/alice", p), []string{"REG-003"})
	assertIDs(t, spec.Validator{}.Validate("/rtcomm/sphere/alice", p), []string{"REG-003"})
	assertIDs(t, spec.Validator{Profile: "bogus"}.Validate("/rtcomm/sphere/alice", p), []string{"REG-003"})
	assertIDs(t, spec.Validator{Profile: client}.Validate("/rtcomm/sphere/alice", p), nil)
}

// TestValidateTopicPath: topic rules follow the configured path, not the default.
func TestValidateTopicPath(t *testing.T) {
	t.Parallel()
	v := spec.Validator{Topics: spec.NewTopics("/t-x1/"), Profile: strict}
	assertIDs(t, v.Validate("/t-x1/sphere/alice", goodDocStrict.bytes(t)), nil)
	assertIDs(t, v.Validate("/t-x1/sphere/alice", nil), nil)
	assertIDs(t, v.Validate("/rtcomm/sphere/alice", nil), []string{"REG-002"})
	assertIDs(t, v.Validate("/rtcomm/sphere/alice", goodDocStrict.bytes(t)), []string{"REG-001"})
	assertIDs(t, v.Validate("/t-x1/management/alice", goodQuery.bytes(t)), nil)
	assertIDs(t, v.Validate("/t-x1/event/session/started/a/b", goodEvent.bytes(t)), nil)
	// A path without the trailing slash means the same layout.
	v.Topics = spec.Topics{Path: "/t-x1"}
	assertIDs(t, v.Validate("/t-x1/connector/alice", goodStart.bytes(t)), nil)
	assertIDs(t, v.Validate("/t-x1/connector/alice", with(goodStart, "toEndpointID", del).bytes(t)), []string{"SESS-001"})
}

func TestViolationString(t *testing.T) {
	t.Parallel()
	v := spec.Violation{Requirement: "SESS-001", Expected: "transID", Actual: "absent"}
	const want = "SESS-001: expected transID, actual absent"
	if v.Error() != want || v.String() != want {
		t.Fatalf("Violation text: expected %q, actual %q / %q", want, v.Error(), v.String())
	}
	got := spec.Validate("/rtcomm/management/alice", with(goodQuery, "transID", del).bytes(t))
	if len(got) != 1 || got[0].Error() != "SQ-001: expected transID, actual absent" {
		t.Fatalf("Validate: expected one SQ-001 about transID, actual %v", got)
	}
}

// TestValidatorIDsInCatalog: every ID the validator can name (its source) and did name (the cases) exists.
func TestValidatorIDsInCatalog(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("validate.go")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"([A-Z]+-\d{3})"`)
	found := map[string]bool{}
	for _, m := range lit.FindAllSubmatch(src, -1) {
		found[string(m[1])] = true
	}
	if len(found) < 20 {
		t.Fatalf("IDs in validate.go: expected many, actual %d", len(found))
	}
	for _, c := range validateCases {
		for _, p := range []spec.Profile{strict, client} {
			for _, v := range (spec.Validator{Profile: p}).Validate(c.topic, c.raw(t)) {
				found[v.Requirement] = true
			}
		}
	}
	for id := range found {
		if _, ok := spec.Lookup(id); !ok {
			t.Errorf("%s: expected in the catalog, actual unknown", id)
		}
	}
}

// TestValidateProfileRespectsCatalog: a violation is reported only under a profile that holds targets to it.
func TestValidateProfileRespectsCatalog(t *testing.T) {
	t.Parallel()
	for _, c := range validateCases {
		for _, p := range []spec.Profile{strict, client} {
			for _, v := range (spec.Validator{Profile: p}).Validate(c.topic, c.raw(t)) {
				if r, _ := spec.Lookup(v.Requirement); !r.InProfile(p) {
					t.Errorf("%s: %s reported under profile %s, which the catalog does not bind", c.name, v.Requirement, p)
				}
			}
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("/rtcomm/connector/alice", []byte(`{"method":"START_SESSION","payload":{"webrtc":{"type":"icecandidate","candidate":{"candidate":1}}}}`))
	f.Add("/rtcomm/sphere/", []byte{})
	f.Add("/rtcomm/alice", []byte(`{"method":"RESPONSE","orig":"SERVICE_QUERY","result":"SUCCESS","services":{"X":{"schemes":[""],"iceURL":"turn:@:"}}}`))
	f.Add("/rtcomm/event/session", []byte(`{"method":"RTCOMM_EVENT_FIRED","userDefines":1,"details":{}}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, p := range []spec.Profile{strict, client} {
			for _, v := range (spec.Validator{Profile: p}).Validate(topic, payload) {
				if _, ok := spec.Lookup(v.Requirement); !ok || !strings.Contains(v.Error(), v.Requirement+": expected ") {
					t.Fatalf("violation %q: expected a catalog ID", v)
				}
			}
		}
	})
}
