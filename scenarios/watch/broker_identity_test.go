package watch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

func finding(fs []watch.Finding, req, who string) bool {
	for _, f := range fs {
		if f.Requirement == req && f.Participant == who {
			return true
		}
	}
	return false
}

// conn stands for one MQTT connection (the hook passes *mqtt.Client).
type conn struct{ name string }

// ID-010/012: a CONNECT accepted with a client ID another user's live connection holds, and
// that connection closed, is a take-over (ID-012 when the holder is the connector's user).
// Refused, the same user's own reconnect, or a holder that stays are not.
func TestBrokerSessionTakeover(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		holder, req string
	}{{"alice", "ID-010"}, {"connector", "ID-012"}} {
		b := watch.NewBroker("/r/")
		b.SetSecure("/r/", "connector")
		h, m := &conn{"holder"}, &conn{"mallory"}
		b.SessionEstablishing(h, "cid", c.holder, now)
		b.SessionAcked(h, 0, false, now)
		b.SessionEstablishing(m, "cid", "mallory", now)
		// mochi closes the holder's connection before it writes the newcomer's CONNACK.
		fs := b.SessionEnded(h, "cid", true, now)
		fs = append(fs, b.SessionAcked(m, 0, false, now)...)
		if len(fs) != 1 || !finding(fs, c.req, watch.BrokerParticipant) || len(fs[0].Evidence) != 2 {
			t.Errorf("%s's client ID taken over: expected %s blamed on the broker with both CONNECTs as evidence, actual %v", c.holder, c.req, fs)
		}
		// The other order: CONNACK first, then the holder's end.
		h2, m2 := &conn{"holder2"}, &conn{"mallory2"}
		b.SessionEstablishing(h2, "cid2", c.holder, now)
		b.SessionAcked(h2, 0, false, now)
		b.SessionEstablishing(m2, "cid2", "mallory", now)
		fs = b.SessionAcked(m2, 0, false, now)
		fs = append(fs, b.SessionEnded(h2, "cid2", true, now)...)
		if !finding(fs, c.req, watch.BrokerParticipant) {
			t.Errorf("%s's client ID taken over (CONNACK first): expected %s, actual %v", c.holder, c.req, fs)
		}
	}

	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	a, a2, m := &conn{"a"}, &conn{"a2"}, &conn{"m"}
	b.SessionEstablishing(a, "cid", "alice", now)
	b.SessionAcked(a, 0, false, now)
	// Refused (the reference: CONNACK 2 from its identity hook; mochi never reaches
	// OnSessionEstablish then, but a refusal after it is judged the same).
	b.SessionEstablishing(m, "cid", "mallory", now)
	if fs := b.SessionAcked(m, 2, false, now); len(fs) > 0 {
		t.Errorf("refused: expected no finding, actual %v", fs)
	}
	if fs := b.SessionEnded(m, "cid", true, now); len(fs) > 0 {
		t.Errorf("refused connection closing: expected no finding, actual %v", fs)
	}
	// alice's own second connection takes her session over: lawful.
	b.SessionEstablishing(a2, "cid", "alice", now)
	fs := b.SessionEnded(a, "cid", true, now)
	if fs = append(fs, b.SessionAcked(a2, 0, false, now)...); len(fs) > 0 {
		t.Errorf("alice reconnecting: expected no finding, actual %v", fs)
	}
	// A holder that stays connected was not taken over (a session of its own).
	m3 := &conn{"m3"}
	b.SessionEstablishing(m3, "cid", "mallory", now)
	if fs := b.SessionAcked(m3, 0, false, now); len(fs) > 0 {
		t.Errorf("holder kept: expected no finding, actual %v", fs)
	}
	// An open broker (no SetSecure) is not held to it.
	open := watch.NewBroker("/r/")
	open.SessionEstablishing(a, "cid", "alice", now)
	open.SessionAcked(a, 0, false, now)
	open.SessionEstablishing(m, "cid", "mallory", now)
	fs = open.SessionEnded(a, "cid", true, now)
	if fs = append(fs, open.SessionAcked(m, 0, false, now)...); len(fs) > 0 {
		t.Errorf("open broker: expected no finding, actual %v", fs)
	}
}

// ID-011: a persistent session resumed (CONNACK session present) by another user than the
// one that created it; its creator resuming it, or another user given a fresh session, is not.
func TestBrokerSessionResumed(t *testing.T) {
	now := time.Now()
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	a, m, m2, a2 := &conn{"a"}, &conn{"m"}, &conn{"m2"}, &conn{"a2"}
	b.SessionEstablishing(a, "persist", "alice", now)
	b.SessionAcked(a, 0, false, now)
	b.SessionEnded(a, "persist", false, now) // persisted
	b.SessionEstablishing(m, "persist", "mallory", now)
	if fs := b.SessionAcked(m, 0, false, now); len(fs) > 0 {
		t.Errorf("mallory given a fresh session: expected no finding, actual %v", fs)
	}
	b.SessionEnded(m, "persist", true, now)
	// mallory's fresh clean session replaced alice's in the model: start again.
	b.SessionEstablishing(a2, "persist2", "alice", now)
	b.SessionAcked(a2, 0, false, now)
	b.SessionEnded(a2, "persist2", false, now)
	b.SessionEstablishing(m2, "persist2", "mallory", now)
	fs := b.SessionAcked(m2, 0, true, now)
	if len(fs) != 1 || !finding(fs, "ID-011", watch.BrokerParticipant) {
		t.Fatalf("mallory resumed alice's persistent session: expected ID-011 blamed on the broker, actual %v", fs)
	}
	b.SessionEnded(m2, "persist2", false, now)
	a3 := &conn{"a3"}
	b.SessionEstablishing(a3, "persist2", "alice", now)
	if fs := b.SessionAcked(a3, 0, true, now); len(fs) > 0 {
		t.Errorf("alice resuming her own session: expected no finding, actual %v", fs)
	}
}

// ID-016: the secured broker keeps retained messages only on presence topics and within
// the per-user quota (the connector's user exempt); a clear frees the bytes.
func TestBrokerRetainedPolicy(t *testing.T) {
	now := time.Now()
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	b.SetRetainedQuota(100)
	doc := []byte(strings.Repeat("d", 60))
	for _, c := range []struct{ user, topic string }{
		{"alice", "/r/sphere/alice"}, {"bob", "/r/sphere/grp/bob"}, {"alice", "/elsewhere/x"},
	} {
		if fs := b.Retained("c-"+c.user, c.user, c.topic, doc, now); len(fs) > 0 {
			t.Errorf("%s retained at %s: expected no finding, actual %v", c.user, c.topic, fs)
		}
	}
	for _, topic := range []string{"/r/alice/mallory", "/r/mallory/mallory", "/r/sphere/", "/r/sphere/a/b/mallory"} {
		fs := b.Retained("c-mallory", "mallory", topic, []byte("sticky"), now)
		if len(fs) != 1 || !finding(fs, "ID-016", watch.BrokerParticipant) || len(fs[0].Evidence) != 1 {
			t.Errorf("retained at %s kept: expected ID-016 blamed on the broker, actual %v", topic, fs)
		}
	}
	// Over the quota: alice's 60 bytes plus 50 more at her group presence.
	if fs := b.Retained("c-alice", "alice", "/r/sphere/g/alice", []byte(strings.Repeat("x", 50)), now); !finding(fs, "ID-016", watch.BrokerParticipant) {
		t.Errorf("alice over her 100-byte quota: expected ID-016, actual %v", fs)
	}
	// Replacing her own message counts once; a clear frees her bytes.
	b.Retained("c-alice", "alice", "/r/sphere/g/alice", nil, now)
	if fs := b.Retained("c-alice", "alice", "/r/sphere/alice", []byte(strings.Repeat("y", 90)), now); len(fs) > 0 {
		t.Errorf("alice replacing her own 60 bytes by 90: expected no finding, actual %v", fs)
	}
	if fs := b.Retained("c-conn", "connector", "/r/sphere/svc", []byte(strings.Repeat("z", 500)), now); len(fs) > 0 {
		t.Errorf("the connector's user is exempt from the quota: expected no finding, actual %v", fs)
	}
}

func pubAs(b *watch.Broker, user, topic, payload string) []watch.Finding {
	return b.PublishedBy(user, watch.Observation{Topic: topic, Payload: []byte(payload), Client: "c-" + user, Time: time.Now()})
}

// ID-013: the connector routing a call to, or sending DOCUMENT_REPLACED to, an address only
// a DOCUMENT of someone else than its inbox's owner declared is the connector's fault.
func TestBrokerRegistersForeignAddress(t *testing.T) {
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	const docFmt = `{"rtcommVer":"v1.0.0","method":"DOCUMENT","type":"ENDPOINT","appContext":"rtcomm","addressTopic":%q}`
	doc := func(addr string) string { return strings.Replace(docFmt, "%q", `"`+addr+`"`, 1) }
	pubAs(b, "alice", "/r/sphere/alice", doc("/r/alice"))
	pubAs(b, "bob", "/r/sphere/bob", doc("/r/bob/rtc1"))
	pubAs(b, "mallory", "/r/sphere/mallory", doc("/r/carol"))
	// The reference: calls to alice and bob reach their inboxes; mallory's call is refused.
	for _, c := range []struct{ topic, to string }{{"/r/alice/bob", "alice"}, {"/r/bob/rtc1/alice", "bob"}} {
		if fs := pubAs(b, "connector", c.topic, `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t","sigSessID":"s","toEndpointID":"`+c.to+`","fromTopic":"/r/connector/c1"}`); len(fs) > 0 {
			t.Errorf("call to %s at %s: expected no finding, actual %v", c.to, c.topic, fs)
		}
	}
	if fs := pubAs(b, "connector", "/r/bob/rtc1/c1", `{"rtcommVer":"v1.0.0","method":"DOCUMENT_REPLACED"}`); len(fs) > 0 {
		t.Errorf("DOCUMENT_REPLACED at bob's own address: expected no finding, actual %v", fs)
	}
	// Planted: the connector registered mallory's DOCUMENT.
	fs := pubAs(b, "connector", "/r/carol/bob", `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t2","sigSessID":"s2","toEndpointID":"mallory","fromTopic":"/r/connector/c1"}`)
	if len(fs) != 1 || !finding(fs, "ID-013", watch.ConnectorParticipant) || len(fs[0].Evidence) != 2 {
		t.Errorf("call to mallory routed to carol's inbox: expected ID-013 blamed on the connector with DOCUMENT and call as evidence, actual %v", fs)
	}
	fs = pubAs(b, "connector", "/r/carol/c1", `{"rtcommVer":"v1.0.0","method":"DOCUMENT_REPLACED"}`)
	if len(fs) != 1 || !finding(fs, "ID-013", watch.ConnectorParticipant) {
		t.Errorf("DOCUMENT_REPLACED to carol for mallory's registration: expected ID-013, actual %v", fs)
	}
	// Once mallory registers her own inbox, a call to mallory there is fine.
	pubAs(b, "mallory", "/r/sphere/mallory", doc("/r/mallory"))
	if fs := pubAs(b, "connector", "/r/mallory/bob", `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"t3","sigSessID":"s3","toEndpointID":"mallory"}`); len(fs) > 0 {
		t.Errorf("call to mallory's own inbox: expected no finding, actual %v", fs)
	}
}

// ID-015: the connector acting on a non-controller's 3PCC_PLACE_CALL (REFER, SUCCESS), or
// answering a controller's SUCCESS without the referred session, is its fault.
func TestBrokerThirdPartyCallControl(t *testing.T) {
	b := watch.NewBroker("/r/")
	b.SetSecure("/r/", "connector")
	b.SetCallControllers([]string{"ctl"})
	place := func(user, tid, sid string) {
		pubAs(b, user, "/r/callControl/"+user, `{"rtcommVer":"v1.0.0","method":"3PCC_PLACE_CALL","transID":"`+tid+`","callerEndpoint":"alice","calleeEndpoint":"bob","fromTopic":"/r/`+user+`","sessionID":"`+sid+`"}`)
	}
	refer := func(sid string) []watch.Finding {
		return pubAs(b, "connector", "/r/alice/c1", `{"rtcommVer":"v1.0.0","method":"REFER","transID":"r-`+sid+`","toEndpointID":"bob","fromTopic":"/r/connector/c1","details":{"sessionID":"`+sid+`","toEndpointID":"bob"}}`)
	}
	answer := func(user, tid, result string) []watch.Finding {
		return pubAs(b, "connector", "/r/"+user+"/c1", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"3PCC_PLACE_CALL","transID":"`+tid+`","result":"`+result+`"}`)
	}
	// The reference: mallory refused; the controller's request completed by the referred session.
	place("mallory", "tm", "")
	if fs := answer("mallory", "tm", "FAILURE"); len(fs) > 0 {
		t.Errorf("mallory refused: expected no finding, actual %v", fs)
	}
	place("ctl", "t1", "S1")
	if fs := refer("S1"); len(fs) > 0 {
		t.Errorf("REFER for the controller: expected no finding, actual %v", fs)
	}
	pubAs(b, "alice", "/r/connector/alice", `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"x","sigSessID":"S1","toEndpointID":"bob","fromTopic":"/r/alice"}`)
	pubAs(b, "bob", "/r/connector/c1/bob", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"START_SESSION","transID":"x","sigSessID":"S1","result":"SUCCESS"}`)
	if fs := answer("ctl", "t1", "SUCCESS"); len(fs) > 0 {
		t.Errorf("SUCCESS after the referred session was answered: expected no finding, actual %v", fs)
	}
	// Planted: a REFER and a SUCCESS for mallory (no call controller).
	place("mallory", "tm2", "")
	fs := refer("gen-1")
	if len(fs) != 1 || !finding(fs, "ID-015", watch.ConnectorParticipant) || len(fs[0].Evidence) != 2 {
		t.Errorf("REFER on mallory's request: expected ID-015 blamed on the connector, actual %v", fs)
	}
	if fs := answer("mallory", "tm2", "SUCCESS"); !finding(fs, "ID-015", watch.ConnectorParticipant) {
		t.Errorf("SUCCESS to mallory: expected ID-015, actual %v", fs)
	}
	// Planted: the controller's request completed by an unrelated call of alice to bob.
	place("ctl", "t2", "S2")
	refer("S2")
	pubAs(b, "alice", "/r/connector/alice", `{"rtcommVer":"v1.0.0","method":"START_SESSION","transID":"y","sigSessID":"other","toEndpointID":"bob","fromTopic":"/r/alice"}`)
	pubAs(b, "bob", "/r/connector/c1/bob", `{"rtcommVer":"v1.0.0","method":"RESPONSE","orig":"START_SESSION","transID":"y","sigSessID":"other","result":"SUCCESS"}`)
	if fs := answer("ctl", "t2", "SUCCESS"); len(fs) != 1 || !finding(fs, "ID-015", watch.ConnectorParticipant) {
		t.Errorf("SUCCESS by an unrelated session: expected ID-015, actual %v", fs)
	}
	// Without the controller list, who may place calls is not judged.
	open := watch.NewBroker("/r/")
	open.SetSecure("/r/", "connector")
	pubAs(open, "mallory", "/r/callControl/mallory", `{"rtcommVer":"v1.0.0","method":"3PCC_PLACE_CALL","transID":"tm","callerEndpoint":"alice","calleeEndpoint":"bob","fromTopic":"/r/mallory"}`)
	if fs := pubAs(open, "connector", "/r/alice/c1", `{"rtcommVer":"v1.0.0","method":"REFER","transID":"r","toEndpointID":"bob","details":{"sessionID":"g","toEndpointID":"bob"}}`); len(fs) > 0 {
		t.Errorf("no controller list: expected no finding, actual %v", fs)
	}
}

// Inside real brokers (the hook as serve --secure --check attaches it): the secured
// reference refuses mallory's CONNECTs with alice's client ID, her resume of alice's
// persistent session and her retained message in alice's inbox, and the judge finds
// nothing; the open reference broker standing in for a secured one (the fault
// lets-ids-be-spoofed) lets all three happen, and the judge blames the broker for each.
func TestHookJudgesSessionsAndRetained(t *testing.T) {
	creds := map[string]string{"alice": "pa", "mallory": "pm", "connector": "pc"}
	for _, secure := range []bool{true, false} {
		name := map[bool]string{true: "secured reference", false: "open broker as secured"}[secure]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			bj := watch.NewBroker("/r/")
			bj.SetSecure("/r/", "connector")
			bj.SetRetainedQuota(broker.DefaultRetainedQuota)
			got := make(chan watch.Finding, 16)
			h := &watch.Hook{Checker: watch.New(watch.Config{TopicPath: "/r/", FromStart: true}), Broker: bj,
				OnFinding: func(f watch.Finding) { got <- f }}
			cfg := broker.Config{TCPAddr: "127.0.0.1:0", WSAddr: broker.Off, TopicPath: "/r/", Hooks: []mqtt.Hook{h}}
			if secure {
				cfg.Secure, cfg.Credentials, cfg.ConnectorUser = true, creds, "connector"
			}
			b, err := broker.Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			dial := func(user, cid string, persistent bool, will *mqttc.Will) (*mqttc.Client, error) {
				return mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Username: user, Password: creds[user], ClientID: cid,
					Persistent: persistent, Will: will, ConnectTimeout: 3 * time.Second})
			}
			alice, err := dial("alice", "RTCJS0123456789ABCDEFG", false, &mqttc.Will{Topic: "/r/sphere/alice", Retained: true})
			if err != nil {
				t.Fatal(err)
			}
			defer alice.Close()
			if m, err := dial("mallory", "RTCJS0123456789ABCDEFG", false, nil); err == nil {
				defer m.Close()
			}
			p, err := dial("alice", "persist-alice", true, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Subscribe(ctx, "/r/alice/#", 1, func(mqttc.Message) {}); err != nil {
				t.Fatal(err)
			}
			p.Close()
			if m, err := dial("mallory", "persist-alice", true, nil); err == nil {
				defer m.Close()
			}
			m, err := dial("mallory", "", false, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Publish(ctx, "/r/alice/mallory", 1, true, []byte("sticky")); err != nil {
				t.Fatal(err)
			}
			// Settle: a round trip through the broker after the attacks.
			if err := m.Publish(ctx, "/r/mallory/mallory", 1, false, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			if !secure {
				want = map[string]bool{"ID-010": true, "ID-011": true, "ID-016": true}
			}
			seen := map[string]bool{}
			// Wanted findings may trail the attacks (a take-over completes when the holder's
			// connection ends); the secured run waits a second for any finding at all.
			deadline := time.After(map[bool]time.Duration{true: time.Second, false: 10 * time.Second}[secure])
			for done := false; !done && (secure || len(seen) < len(want)); {
				select {
				case f := <-got:
					if f.Participant != watch.BrokerParticipant {
						continue // the protocol checker on the raw payloads ("sticky")
					}
					if !want[f.Requirement] {
						t.Errorf("unexpected finding: %v", f)
					}
					seen[f.Requirement] = true
				case <-deadline:
					done = true
				}
			}
			for r := range want {
				if !seen[r] {
					t.Errorf("expected %s blamed on the broker, actual none", r)
				}
			}
		})
	}
}
