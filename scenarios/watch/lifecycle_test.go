package watch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// feed is a scripted run: publishes at offsets from t0, by MQTT client (the hook's view).
type feed struct {
	t  *testing.T
	c  *watch.Checker
	t0 time.Time
}

func newFeed(t *testing.T) *feed {
	return &feed{t: t, c: watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true}), t0: time.Unix(1_700_000_000, 0)}
}

func (f *feed) pub(at time.Duration, client, topic, payload string) []watch.Finding {
	return f.c.Observe(watch.Observation{Topic: topic, Payload: []byte(payload), Client: client, Time: f.t0.Add(at)})
}

func (f *feed) doc(at time.Duration, client, id, app, addr string) {
	f.pub(at, client, "/rtcomm/sphere/"+id,
		fmt.Sprintf(`{"rtcommVer":"v1.0.0","method":"DOCUMENT","type":"ENDPOINT","appContext":%q,"addressTopic":%q,"state":"available","fromTopic":null}`, app, addr))
}

// dueAfter5s: what the connector owes since 1 s is no finding at 3 s, and one against req,
// blamed on the connector, at 7 s.
func dueAfter5s(t *testing.T, f *feed, req string) {
	t.Helper()
	if fs := f.c.Finish(f.t0.Add(3 * time.Second)); len(fs) != 0 {
		t.Fatalf("expected no finding before 5 s, actual %v", fs)
	}
	if fs := f.c.Finish(f.t0.Add(7 * time.Second)); !hasFinding(fs, req, watch.ConnectorParticipant) {
		t.Fatalf("expected %s against the connector, actual %v", req, fs)
	}
}

const replacedMsg = `{"rtcommVer":"v1.0.0","method":"DOCUMENT_REPLACED"}`

// REG-007: a replacement owes the older address a DOCUMENT_REPLACED at <old>/<connector ID>,
// without transID; none, one elsewhere, or one without a replacement is a finding.
func TestDocumentReplaced(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		f := newFeed(t)
		f.doc(0, "a1", "alice", "rtcomm", "/rtcomm/a1")
		f.doc(time.Second, "a2", "alice", "rtcomm", "/rtcomm/a2")
		f.pub(1100*time.Millisecond, "conn", "/rtcomm/a1/rtcconn", replacedMsg)
		if fs := f.c.Finish(f.t0.Add(time.Minute)); len(fs) != 0 || len(f.c.Findings()) != 0 {
			t.Fatalf("expected no finding, actual %v", f.c.Findings())
		}
		if f.c.Passes()["a2"]["REG-007"]+f.c.Passes()["conn"]["REG-007"]+f.c.Passes()[watch.ConnectorParticipant+" (conn)"]["REG-007"] == 0 {
			t.Errorf("expected the REG-007 check to have held, passes %v", f.c.Passes())
		}
	})
	t.Run("missing", func(t *testing.T) {
		f := newFeed(t)
		f.doc(0, "a1", "alice", "rtcomm", "/rtcomm/a1")
		f.doc(time.Second, "a2", "alice", "rtcomm", "/rtcomm/a2")
		dueAfter5s(t, f, "REG-007")
	})
	t.Run("same address is no replacement", func(t *testing.T) {
		f := newFeed(t)
		f.doc(0, "a1", "alice", "rtcomm", "/rtcomm/a1")
		f.doc(time.Second, "a1", "alice", "rtcomm", "/rtcomm/a1")
		if fs := f.c.Finish(f.t0.Add(time.Minute)); len(fs) != 0 {
			t.Fatalf("expected no finding, actual %v", fs)
		}
	})
	t.Run("unregistered first", func(t *testing.T) {
		f := newFeed(t)
		f.doc(0, "a1", "alice", "rtcomm", "/rtcomm/a1")
		f.pub(500*time.Millisecond, "", "/rtcomm/sphere/alice", "") // the will
		f.doc(time.Second, "a2", "alice", "rtcomm", "/rtcomm/a2")
		if fs := f.c.Finish(f.t0.Add(time.Minute)); len(fs) != 0 {
			t.Fatalf("expected no finding, actual %v", fs)
		}
	})
	for _, tc := range []struct{ name, topic, payload, req string }{
		{"at the address itself", "/rtcomm/a1", replacedMsg, "REG-007"},
		{"with a transID", "/rtcomm/a1/rtcconn", `{"rtcommVer":"v1.0.0","method":"DOCUMENT_REPLACED","transID":"t1"}`, "REG-007"},
		{"without a replacement", "/rtcomm/b1/rtcconn", replacedMsg, "REG-007"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t)
			f.doc(0, "a1", "alice", "rtcomm", "/rtcomm/a1")
			f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
			f.doc(time.Second, "a2", "alice", "rtcomm", "/rtcomm/a2")
			if fs := f.pub(1100*time.Millisecond, "conn", tc.topic, tc.payload); !hasFinding(fs, tc.req, watch.ConnectorParticipant) {
				t.Fatalf("expected %s against the connector, actual %v", tc.req, fs)
			}
		})
	}
	t.Run("across appContexts", func(t *testing.T) {
		f := newFeed(t)
		f.doc(0, "b1", "bob", "app-a", "/rtcomm/b1")
		f.doc(time.Second, "b2", "bob", "app-b", "/rtcomm/b2")
		if fs := f.pub(1100*time.Millisecond, "conn", "/rtcomm/b1/rtcconn", replacedMsg); !hasFinding(fs, "REG-010", watch.ConnectorParticipant) {
			t.Fatalf("expected REG-010 against the connector, actual %v", fs)
		}
	})
}

const (
	startMsg = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/alice","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
	relayMsg = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/connector","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
	failMsg  = `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/connector","result":"FAILURE","reason":"timeout"}`
)

func event(action string) string {
	return fmt.Sprintf(`{"rtcommVer":"v1.0.0","method":"RTCOMM_EVENT_FIRED","timestamp":"2026-12-02T12:00:00.000Z","appContext":"rtcomm","sigSessID":"s1"%s}`,
		map[bool]string{true: `,"reason":"declined"`}[action == spec.EventFailed])
}

// EVT-001: an event names a session that happened, caller then callee.
func TestEventsMatchSessions(t *testing.T) {
	f := newFeed(t)
	f.pub(0, "alice", "/rtcomm/connector/alice", startMsg)
	f.pub(10*time.Millisecond, "conn", "/rtcomm/bob/alice", relayMsg)
	if fs := f.pub(time.Second, "conn", "/rtcomm/event/session/started/alice/bob", event(spec.EventStarted)); len(fs) != 0 {
		t.Fatalf("expected no finding on the right event, actual %v", fs)
	}
	if fs := f.pub(2*time.Second, "conn", "/rtcomm/event/session/stopped/bob/alice", event(spec.EventStopped)); !hasFinding(fs, "EVT-001", watch.ConnectorParticipant) {
		t.Fatalf("expected EVT-001 on from and to swapped, actual %v", fs)
	}
	other := `{"rtcommVer":"v1.0.0","method":"RTCOMM_EVENT_FIRED","timestamp":"2026-12-02T12:00:00.000Z","appContext":"rtcomm"}`
	if fs := f.pub(3*time.Second, "conn", "/rtcomm/event/session/started/carol/dave", other); !hasFinding(fs, "EVT-001", watch.ConnectorParticipant) {
		t.Fatalf("expected EVT-001 on an event of no session, actual %v", fs)
	}
}

// SESS-009: the connector's own FAILURE to an unanswered session before its timeout is
// early reaping, unless the connector is shutting down (its client goes at once).
func TestEarlyReaping(t *testing.T) {
	run := func(failAt time.Duration, pranswerHold int, disconnect bool) []watch.Finding {
		f := newFeed(t)
		f.pub(0, "alice", "/rtcomm/connector/alice", startMsg)
		f.pub(10*time.Millisecond, "conn", "/rtcomm/bob/alice", relayMsg)
		if pranswerHold > 0 {
			pr := `{"rtcommVer":"v1.0.0","method":"PRANSWER","transID":"t1","sigSessID":"s1","fromTopic":%q,"protocols":["webrtc"],"holdTimeout":%d}`
			f.pub(100*time.Millisecond, "bob", "/rtcomm/connector/bob", fmt.Sprintf(pr, "/rtcomm/bob", pranswerHold))
			f.pub(110*time.Millisecond, "conn", "/rtcomm/alice/bob", fmt.Sprintf(pr, "/rtcomm/connector", pranswerHold))
		}
		f.pub(failAt, "conn", "/rtcomm/alice/bob", failMsg)
		if disconnect {
			f.c.Disconnected("conn", f.t0.Add(failAt+20*time.Millisecond))
		}
		f.c.Finish(f.t0.Add(failAt + 5*time.Second))
		return f.c.Findings()
	}
	if fs := run(3*time.Second, 0, false); !hasFinding(fs, "SESS-009", watch.ConnectorParticipant) {
		t.Errorf("reaped after 3 s of a 30 s timeout: expected SESS-009 against the connector, actual %v", fs)
	}
	if fs := run(3*time.Second, 0, true); len(fs) != 0 {
		t.Errorf("a shutdown: expected no finding, actual %v", fs)
	}
	if fs := run(30*time.Second, 0, false); len(fs) != 0 {
		t.Errorf("reaped at 30 s: expected no finding, actual %v", fs)
	}
	if fs := run(3200*time.Millisecond, 3, false); len(fs) != 0 {
		t.Errorf("reaped after the PRANSWER's 3 s holdTimeout: expected no finding, actual %v", fs)
	}
	if fs := run(time.Second, 3, false); !hasFinding(fs, "SESS-009", watch.ConnectorParticipant) {
		t.Errorf("reaped 1 s into a 3 s holdTimeout: expected SESS-009, actual %v", fs)
	}
}

// A call in the hook's view: alice calls bob through the connector ("conn" relays with its
// own fromTopic), bob answers, both trickle a candidate.
func callFeed(t *testing.T) *feed {
	f := newFeed(t)
	f.c.Subscribed("conn", "/rtcomm/management/#")
	f.pub(0, "alice", "/rtcomm/connector/alice", startMsg)
	f.pub(10*time.Millisecond, "conn", "/rtcomm/bob/alice", relayMsg)
	return f
}

func cand(from, n string) string {
	return fmt.Sprintf(`{"rtcommVer":"v1.0.0","method":"MESSAGE","sigSessID":"s1","fromTopic":%q,"payload":{"webrtc":{"type":"icecandidate","candidate":{"candidate":"candidate:%s 1 udp 1 192.0.2.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}}`, from, n)
}

// Relays: each original relayed once (ICE-003), at its sender's level (MSG-002, ID-004),
// within 5 s (SESS-008 for STOP_SESSION); the connector retains nothing but presence (ROB-003).
func TestRelayRules(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		f := callFeed(t)
		f.pub(20*time.Millisecond, "alice", "/rtcomm/connector/alice", cand("/rtcomm/alice", "1"))
		f.pub(30*time.Millisecond, "conn", "/rtcomm/bob/alice", cand("/rtcomm/connector", "1"))
		stop := `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","sigSessID":"s1","fromTopic":%q,"reason":"done"}`
		f.pub(time.Second, "alice", "/rtcomm/connector/alice", fmt.Sprintf(stop, "/rtcomm/alice"))
		f.pub(time.Second+10*time.Millisecond, "conn", "/rtcomm/bob/alice", fmt.Sprintf(stop, "/rtcomm/connector"))
		if fs := f.c.Finish(f.t0.Add(time.Minute)); len(f.c.Findings()) != 0 {
			t.Fatalf("expected no finding, actual %v %v", fs, f.c.Findings())
		}
	})
	t.Run("duplicated candidate", func(t *testing.T) {
		f := callFeed(t)
		f.pub(20*time.Millisecond, "alice", "/rtcomm/connector/alice", cand("/rtcomm/alice", "1"))
		f.pub(30*time.Millisecond, "conn", "/rtcomm/bob/alice", cand("/rtcomm/connector", "1"))
		if fs := f.pub(40*time.Millisecond, "conn", "/rtcomm/bob/alice", cand("/rtcomm/connector", "1")); !hasFinding(fs, "ICE-003", watch.ConnectorParticipant) {
			t.Fatalf("expected ICE-003 against the connector, actual %v", fs)
		}
	})
	t.Run("lost stop", func(t *testing.T) {
		f := callFeed(t)
		f.pub(time.Second, "alice", "/rtcomm/connector/alice", `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","sigSessID":"s1","fromTopic":"/rtcomm/alice","reason":"done"}`)
		dueAfter5s(t, f, "SESS-008")
	})
	t.Run("reordered, and lost", func(t *testing.T) {
		f := callFeed(t)
		f.pub(20*time.Millisecond, "alice", "/rtcomm/connector/alice", cand("/rtcomm/alice", "1"))
		f.pub(21*time.Millisecond, "alice", "/rtcomm/connector/alice", cand("/rtcomm/alice", "2"))
		f.pub(22*time.Millisecond, "alice", "/rtcomm/connector/alice", cand("/rtcomm/alice", "3"))
		if fs := f.pub(30*time.Millisecond, "conn", "/rtcomm/bob/alice", cand("/rtcomm/connector", "2")); len(fs) != 0 {
			t.Fatalf("a candidate not relayed (yet) is no reordering: expected no finding, actual %v", fs)
		}
		if fs := f.pub(40*time.Millisecond, "conn", "/rtcomm/bob/alice", cand("/rtcomm/connector", "1")); !hasFinding(fs, "ICE-005", watch.ConnectorParticipant) {
			t.Fatalf("expected ICE-005, actual %v", fs)
		}
		if fs := f.c.Finish(f.t0.Add(10 * time.Second)); !hasFinding(fs, "ICE-003", watch.ConnectorParticipant) {
			t.Fatalf("candidate 3 never relayed: expected ICE-003, actual %v", fs)
		}
	})
	for _, tc := range []struct {
		name   string
		stopAt time.Duration
		lost   bool
	}{{"lost before the connector went", time.Second, true}, {"sent as the connector went", 2500 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := callFeed(t)
			f.pub(tc.stopAt, "alice", "/rtcomm/connector/alice", `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","sigSessID":"s1","fromTopic":"/rtcomm/alice","reason":"done"}`)
			f.c.Disconnected("conn", f.t0.Add(3*time.Second))
			fs := f.c.Finish(f.t0.Add(3100 * time.Millisecond))
			if got := hasFinding(fs, "SESS-008", watch.ConnectorParticipant); got != tc.lost {
				t.Fatalf("expected SESS-008 %v, actual %v", tc.lost, fs)
			}
		})
	}
	t.Run("message at the connector's level", func(t *testing.T) {
		f := callFeed(t)
		chat := `{"rtcommVer":"v1.0.0","method":"MESSAGE","sigSessID":"s1","fromTopic":%q,"payload":{"chat":{"message":"hi","from":"alice"}}}`
		f.pub(20*time.Millisecond, "alice", "/rtcomm/connector/alice", fmt.Sprintf(chat, "/rtcomm/alice"))
		if fs := f.pub(30*time.Millisecond, "conn", "/rtcomm/bob/rtcomm-connector", fmt.Sprintf(chat, "/rtcomm/connector")); !hasFinding(fs, "MSG-002", watch.ConnectorParticipant) {
			t.Fatalf("expected MSG-002 against the connector, actual %v", fs)
		}
	})
	t.Run("start without the sender level", func(t *testing.T) {
		f := newFeed(t)
		f.pub(0, "alice", "/rtcomm/connector/alice", startMsg)
		if fs := f.pub(10*time.Millisecond, "conn", "/rtcomm/bob", relayMsg); !hasFinding(fs, "ID-004", watch.ConnectorParticipant) {
			t.Fatalf("expected ID-004 against the connector, actual %v", fs)
		}
	})
	t.Run("retained session message", func(t *testing.T) {
		f := newFeed(t)
		f.c.Subscribed("conn", "$share/g/rtcomm/management/#") // not under this path: not learned
		f.c.Subscribed("conn", "$share/g//rtcomm/management/#")
		f.pub(0, "alice", "/rtcomm/connector/alice", startMsg)
		fs := f.c.Observe(watch.Observation{Topic: "/rtcomm/bob/alice", Payload: []byte(relayMsg), Client: "conn", Retained: true, Time: f.t0.Add(time.Millisecond)})
		if !hasFinding(fs, "ROB-003", watch.ConnectorParticipant) {
			t.Fatalf("expected ROB-003 against the connector, actual %v", fs)
		}
	})
}

// Calls follow the registry: to the newest address (REG-006), refused once the callee
// unregistered (REG-008), never refused while it is registered (REG-005 by `topic`, REG-009
// after the replaced client's goodbye).
func TestRoutingFollowsRegistry(t *testing.T) {
	const (
		start = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/carol","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
		relay = `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t1","sigSessID":"s1","fromTopic":"/rtcomm/connector","toEndpointID":"bob","protocols":["webrtc"],"payload":{}}`
		fail  = `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"START_SESSION","transID":"t1","sigSessID":"s1","result":"FAILURE","reason":"bob is not registered"}`
	)
	call := func(f *feed, at time.Duration, topic, payload string) []watch.Finding {
		f.pub(at, "carol", "/rtcomm/connector/carol", start)
		return f.pub(at+10*time.Millisecond, "conn", topic, payload)
	}
	newFeedIn := func(p spec.Profile) *feed {
		f := newFeed(t)
		f.c = watch.New(watch.Config{Profile: p, FromStart: true})
		f.c.Subscribed("conn", "/rtcomm/management/#")
		return f
	}
	t.Run("to the newest address", func(t *testing.T) {
		f := newFeedIn(spec.ProfileClient)
		f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
		if fs := call(f, time.Second, "/rtcomm/b1/carol", relay); len(fs) != 0 {
			t.Fatalf("expected no finding, actual %v", fs)
		}
		f = newFeedIn(spec.ProfileClient)
		f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
		f.doc(time.Second, "b2", "bob", "rtcomm", "/rtcomm/b2")
		f.pub(1100*time.Millisecond, "conn", "/rtcomm/b1/conn", replacedMsg)
		if fs := call(f, 2*time.Second, "/rtcomm/b1/carol", relay); !hasFinding(fs, "REG-006", watch.ConnectorParticipant) {
			t.Fatalf("expected REG-006, actual %v", fs)
		}
	})
	t.Run("unregistered", func(t *testing.T) {
		f := newFeedIn(spec.ProfileClient)
		f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
		f.pub(time.Second, "", "/rtcomm/sphere/bob", "")
		if fs := call(f, 2*time.Second, "/rtcomm/b1/carol", relay); !hasFinding(fs, "REG-008", watch.ConnectorParticipant) {
			t.Fatalf("expected REG-008, actual %v", fs)
		}
	})
	t.Run("registered by topic", func(t *testing.T) {
		f := newFeedIn(spec.ProfileClient)
		f.pub(0, "b1", "/rtcomm/sphere/bob", `{"rtcommVer":"v1.0.0","method":"DOCUMENT","type":"ENDPOINT","appContext":"rtcomm","topic":"/rtcomm/b1"}`)
		if fs := call(f, time.Second, "/rtcomm/carol/bob", fail); !hasFinding(fs, "REG-005", watch.ConnectorParticipant) {
			t.Fatalf("expected REG-005, actual %v", fs)
		}
	})
	for _, p := range []spec.Profile{spec.ProfileClient, spec.ProfileStrict} {
		t.Run("after the goodbye, "+string(p), func(t *testing.T) {
			f := newFeedIn(p)
			f.doc(0, "b1", "bob", "rtcomm", "/rtcomm/b1")
			f.doc(time.Second, "b2", "bob", "rtcomm", "/rtcomm/b2")
			f.pub(1100*time.Millisecond, "conn", "/rtcomm/b1/conn", replacedMsg)
			f.pub(1500*time.Millisecond, "b1", "/rtcomm/sphere/bob", "") // the replaced client's goodbye
			fs := call(f, 2*time.Second, "/rtcomm/carol/bob", fail)
			if p == spec.ProfileClient && !hasFinding(fs, "REG-009", watch.ConnectorParticipant) {
				t.Fatalf("expected REG-009, actual %v", fs)
			}
			if p == spec.ProfileStrict && len(fs) != 0 {
				t.Fatalf("under strict a connector may take it as an unregistration: expected no finding, actual %v", fs)
			}
		})
	}
}
