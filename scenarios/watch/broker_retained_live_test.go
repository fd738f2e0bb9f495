package watch_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// retainFault is a planted broker bug after the judge's hook, as scenarios/faulty plants
// forgets-retained (clear: false) and empty-retained-does-not-clear (clear: true).
type retainFault struct {
	mqtt.HookBase
	clear bool
}

func (h *retainFault) ID() string           { return "test-retain-fault" }
func (h *retainFault) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *retainFault) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && (len(pk.Payload) == 0) == h.clear {
		pk.FixedHeader.Retain = false
	}
	return pk, nil
}

// retainedJudgeHook is a hook (serve --check's) with a broker judge of the retained store under
// path; findings returns what it blamed on the broker so far.
func retainedJudgeHook(path string, r watch.Retention, secure bool) (h *watch.Hook, findings func() []watch.Finding) {
	var mu sync.Mutex
	var found []watch.Finding
	bj := watch.NewBroker(path)
	if secure {
		bj.SetSecure(path, "connector")
	}
	bj.SetRetention(r)
	h = &watch.Hook{Checker: watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, TopicPath: path}), Broker: bj,
		OnFinding: func(f watch.Finding) {
			if f.Participant == watch.BrokerParticipant {
				mu.Lock()
				found = append(found, f)
				mu.Unlock()
			}
		}}
	return h, func() []watch.Finding { mu.Lock(); defer mu.Unlock(); return slices.Clone(found) }
}

// The hook (serve --check's) judges the reference broker's retained store: the
// reference's own call traffic (presence is retained, the connector subscribes to the
// sphere) and late subscribers give no finding; each planted fault gives BRK-001 on the
// broker.
func TestHookJudgesRetainedStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault mqtt.Hook
	}{{"reference", nil}, {"forgets-retained", &retainFault{}}, {"empty-retained-does-not-clear", &retainFault{clear: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var h *watch.Hook
			var findings func() []watch.Finding
			url, path := stackWith(t, "", func(path string) []mqtt.Hook {
				h, findings = retainedJudgeHook(path, watch.Retention{Quota: broker.DefaultRetainedQuota, Total: broker.DefaultRetainedTotal}, false)
				if tc.fault != nil {
					return []mqtt.Hook{h, tc.fault}
				}
				return []mqtt.Hook{h}
			})
			if tc.fault == nil {
				call(t, url, path, true)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pub, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			doc := []byte(`{"method":"DOCUMENT","rtcommVer":"v1.0.0","type":"ENDPOINT","appContext":"rtcomm","state":"available"}`)
			for _, p := range []struct {
				topic   string
				payload []byte
			}{{path + "sphere/kept", doc}, {path + "sphere/cleared", doc}, {path + "sphere/cleared", nil}} {
				if err := pub.Publish(ctx, p.topic, 1, true, p.payload); err != nil {
					t.Fatal(err)
				}
			}
			late, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url})
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan mqttc.Message, 16)
			if err := late.Subscribe(ctx, path+"sphere/#", 1, func(m mqttc.Message) { got <- m }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			late.Close() // after SUBACK: judged (the retained messages came before its DISCONNECT)
			h.FinishBroker(time.Now().Add(6 * time.Second))

			brk := findings()
			if tc.fault == nil {
				// The protocol checker's findings are on the synthetic DOCUMENTs (no
				// addressTopic); TestReferenceCallHasNoFindings holds the call to none.
				for _, f := range brk {
					t.Errorf("broker finding on the reference's traffic: %s", f)
				}
				if len(got) == 0 {
					t.Errorf("expected the late subscriber to get the retained presence, actual none")
				}
				return
			}
			if len(brk) == 0 || brk[0].Requirement != "BRK-001" {
				t.Fatalf("%s: expected BRK-001 blamed on the broker, actual %v", tc.name, brk)
			}
			t.Logf("%s: %s", tc.name, brk[0])
		})
	}
}

// serve --secure --check: the secured reference broker keeps retained messages only on
// presence topics (ID-016). A retained publish into an inbox is lawfully not kept, alice's
// presence is sent to a later subscriber: no finding; with the planted fault, BRK-001.
func TestHookJudgesSecuredRetainedStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault mqtt.Hook
	}{{"reference", nil}, {"forgets-retained", &retainFault{}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := "/ws-" + uuid.NewString()[:8] + "/"
			h, findings := retainedJudgeHook(path, watch.Retention{PresencePath: path, Quota: broker.DefaultRetainedQuota,
				Total: broker.DefaultRetainedTotal, Exempt: "connector"}, true)
			hooks := []mqtt.Hook{h}
			if tc.fault != nil {
				hooks = append(hooks, tc.fault)
			}
			b, err := broker.Start(context.Background(), broker.Config{Secure: true, TopicPath: path, ConnectorUser: "connector",
				Credentials: map[string]string{"alice": "pw-alice", "bob": "pw-bob", "connector": "pw-conn"}, Hooks: hooks})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			alice, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Username: "alice", Password: "pw-alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer alice.Close()
			doc := []byte(`{"method":"DOCUMENT","rtcommVer":"v1.0.0","type":"ENDPOINT","appContext":"rtcomm","addressTopic":"` + path + `alice","state":"available"}`)
			for _, topic := range []string{path + "sphere/alice", path + "bob/alice"} {
				if err := alice.Publish(ctx, topic, 1, true, doc); err != nil {
					t.Fatal(err)
				}
			}
			bob, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: b.TCPURL(), Username: "bob", Password: "pw-bob"})
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan mqttc.Message, 16)
			for _, f := range []string{path + "sphere/#", path + "bob/#"} {
				if err := bob.Subscribe(ctx, f, 1, func(m mqttc.Message) { got <- m }); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond)
			bob.Close()
			h.FinishBroker(time.Now().Add(6 * time.Second))

			brk := findings()
			if tc.fault == nil {
				for _, f := range brk {
					t.Errorf("broker finding on the secured reference: %s", f)
				}
				// Only what bob got as retained counts: mochi acknowledges alice's QoS 1
				// publish before it fans it out, so bob's new subscription may lawfully get the
				// inbox message live (retain flag clear) in a slow run (-race).
				var retained []string
				for len(got) > 0 {
					if m := <-got; m.Retained {
						retained = append(retained, m.Topic)
					}
				}
				if len(retained) != 1 || retained[0] != path+"sphere/alice" {
					t.Errorf("expected bob to get alice's retained presence only, actual retained %v", retained)
				}
				return
			}
			if len(brk) != 1 || brk[0].Requirement != "BRK-001" || !strings.Contains(brk[0].Expected, path+"sphere/alice") {
				t.Fatalf("expected one BRK-001 on alice's presence blamed on the broker, actual %v", brk)
			}
		})
	}
}
