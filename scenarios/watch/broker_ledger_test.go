package watch_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

// ledgerJudge is a broker judge of path as serve --check sets it up for the reference's
// defaults (topic limits, payload limit).
func ledgerJudge(path string) *watch.Broker {
	bj := watch.NewBroker(path)
	bj.SetLimits(watch.TopicLimits{MaxLength: broker.DefaultMaxTopicLength, MaxLevels: broker.DefaultMaxTopicLevels})
	bj.SetMaxPayload(broker.DefaultMaxPayload)
	return bj
}

// ledgerBroker is a judge of /r/ held to the reference's limits (1,024 bytes, 32 levels,
// 1 MiB payloads).
func ledgerBroker() *watch.Broker {
	b := watch.NewBroker("/r/")
	b.SetLimits(watch.TopicLimits{MaxLength: 1024, MaxLevels: 32})
	b.SetMaxPayload(1 << 20)
	return b
}

// subscribe gives client a granted plain subscription as it asked for it.
func subscribe(b *watch.Broker, client, filter string) {
	b.Connected("conn-"+client, client, true, nil)
	b.Subscribing(client, []string{filter})
	b.Subscribed(client, []string{filter}, []byte{1})
}

var hookRefusal = watch.Fate{Refused: errors.New("refused"), By: "faulty"}

// A PUBLISH read whole and refused by a hook is a finding against the broker, named by
// the requirement whose domain it falls in (BRK-005 large, BRK-004 a space, else BRK-007);
// a refusal by the ACL hooks too, on an open broker.
func TestLedgerRefusedPublish(t *testing.T) {
	for _, c := range []struct {
		name, topic string
		payload     []byte
		fate        watch.Fate
		want        string
	}{
		{"hook ignores a space", "/r/a b/c", []byte("x"), watch.Fate{Refused: packets.CodeSuccessIgnore, By: "faulty"}, "BRK-004"},
		{"hook rejects 60 KB", "/r/bob/alice", bytes.Repeat([]byte("x"), 60<<10), hookRefusal, "BRK-005"},
		{"hook rejects 64 KB exactly", "/r/bob/alice", bytes.Repeat([]byte("x"), 64<<10), hookRefusal, "BRK-005"},
		{"hook rejects 100 KB under the configured 1 MiB", "/r/bob/alice", bytes.Repeat([]byte("x"), 100<<10), hookRefusal, "BRK-005"},
		{"hook rejects a plain message", "/r/bob/alice", []byte("{}"), hookRefusal, "BRK-007"},
		{"open broker's ACL refuses", "/r/bob/alice", []byte("{}"), watch.Fate{Refused: packets.ErrNotAuthorized, ACL: true}, "BRK-007"},
	} {
		b := ledgerBroker()
		b.StampRead("c1")
		fs := b.PublishFate("c1", "alice", c.topic, c.payload, 1, c.fate, time.Now())
		if len(fs) != 1 || fs[0].Requirement != c.want || fs[0].Participant != watch.BrokerParticipant || len(fs[0].Evidence) != 1 {
			t.Errorf("%s: expected one %s finding blamed on the broker with the publish as evidence, actual %v", c.name, c.want, fs)
		}
	}
}

// Refusals the judge knows to be lawful give no finding.
func TestLedgerLawfulRefusals(t *testing.T) {
	long := "/r/" + string(bytes.Repeat([]byte("a/"), 40)) + "x"
	for _, c := range []struct {
		name, topic string
		payload     []byte
		fate        watch.Fate
		secure      bool
	}{
		{"malformed (the broker itself)", "/r/bob/alice", []byte("{}"), watch.Fate{Refused: packets.ErrProtocolViolationNoPacketID}, false},
		{"invalid topic name", "/r/bob/#", []byte("{}"), watch.Fate{Refused: packets.ErrTopicNameInvalid}, false},
		{"beyond the topic limits", long, []byte("{}"), hookRefusal, false},
		{"over the configured payload limit", "/r/bob/alice", bytes.Repeat([]byte("x"), 1<<20+1), hookRefusal, false},
		{"secured broker's identity rule", "/r/bob/alice", []byte("{}"), watch.Fate{Refused: packets.CodeSuccessIgnore, By: "rtcomm-identity"}, true},
		{"secured broker's ACL", "/r/bob/alice", []byte("{}"), watch.Fate{Refused: packets.ErrNotAuthorized, ACL: true}, true},
		{"outside the path", "/other/a b", []byte("{}"), hookRefusal, false},
	} {
		b := ledgerBroker()
		if c.secure {
			b.SetSecure("/r/", "connector")
		}
		b.StampRead("c1")
		if fs := b.PublishFate("c1", "alice", c.topic, c.payload, 1, c.fate, time.Now()); len(fs) > 0 {
			t.Errorf("%s: expected no finding, actual %v", c.name, fs)
		}
	}
	// Without a configured payload limit, only payloads over 64 KB may be refused.
	b := watch.NewBroker("/r/")
	b.StampRead("c1")
	if fs := b.PublishFate("c1", "alice", "/r/bob/alice", bytes.Repeat([]byte("x"), 64<<10+1), 1, hookRefusal, time.Now()); len(fs) > 0 {
		t.Errorf("over 64 KB, no limit configured: expected no finding, actual %v", fs)
	}
}

// A published message the broker's topic tree did not match for a client subscribed
// (as it asked) before the PUBLISH was read is a missing delivery: BRK-003 for a wildcard
// subscription, BRK-004 for a literal one at a topic with a space.
func TestLedgerMissingDelivery(t *testing.T) {
	b := ledgerBroker()
	subscribe(b, "hash", "/r/bob/#")
	subscribe(b, "space", "/r/a b/c")
	subscribe(b, "got", "/r/bob/+/c")
	b.StampRead("c1")
	fs := b.PublishFate("c1", "alice", "/r/bob/x/c", []byte("{}"), 1,
		watch.Fate{Matched: []watch.MatchedClient{{Client: "got"}}}, time.Now())
	if len(fs) != 1 || fs[0].Requirement != "BRK-003" || fs[0].Participant != watch.BrokerParticipant {
		t.Fatalf("# subscriber not matched: expected one BRK-003 finding blamed on the broker, actual %v", fs)
	}
	b.StampRead("c1")
	fs = b.PublishFate("c1", "alice", "/r/bob", []byte("{}"), 0, watch.Fate{}, time.Now())
	if len(fs) != 1 || fs[0].Requirement != "BRK-003" {
		t.Fatalf("# subscriber not matched at its parent level: expected BRK-003, actual %v", fs)
	}
	b.StampRead("c1")
	fs = b.PublishFate("c1", "alice", "/r/a b/c", []byte("{}"), 0, watch.Fate{}, time.Now())
	if len(fs) != 1 || fs[0].Requirement != "BRK-004" {
		t.Fatalf("literal subscriber at a topic with a space not matched: expected BRK-004, actual %v", fs)
	}
	// Every match tried: nothing missing.
	b.StampRead("c1")
	if fs := b.PublishFate("c1", "alice", "/r/bob/x/c", []byte("{}"), 1,
		watch.Fate{Matched: []watch.MatchedClient{{Client: "got"}, {Client: "hash"}}}, time.Now()); len(fs) > 0 {
		t.Fatalf("every subscriber matched: expected no finding, actual %v", fs)
	}
	// On an open broker the ACL hooks refusing a subscriber the read is a miss too.
	b.StampRead("c1")
	if fs := b.PublishFate("c1", "alice", "/r/bob/x/c", []byte("{}"), 1,
		watch.Fate{Matched: []watch.MatchedClient{{Client: "got"}, {Client: "hash", ReadDenied: true}}}, time.Now()); len(fs) != 1 {
		t.Fatalf("open broker refused a read: expected a finding, actual %v", fs)
	}
}

// Misses the broker may lawfully have: no finding.
func TestLedgerLawfulMisses(t *testing.T) {
	none := watch.Fate{}
	for _, c := range []struct {
		name  string
		setup func(b *watch.Broker) // runs after the judge saw the PUBLISH read
		pre   func(b *watch.Broker) // runs before
		fate  watch.Fate
		sec   bool
	}{
		{name: "subscribed after the PUBLISH was read", setup: func(b *watch.Broker) { subscribe(b, "late", "/r/bob/#") }, fate: none},
		{name: "unsubscribing meanwhile", pre: func(b *watch.Broker) { subscribe(b, "s", "/r/bob/#") },
			setup: func(b *watch.Broker) { b.Unsubscribing("s", []string{"/r/bob/#"}) }, fate: none},
		{name: "clean session gone meanwhile", pre: func(b *watch.Broker) { subscribe(b, "s", "/r/bob/#") },
			setup: func(b *watch.Broker) { b.Disconnected("conn-s", "s") }, fate: none},
		{name: "session ended (MQTT 5, no expiry)", pre: func(b *watch.Broker) {
			b.Connected("conn-s", "s", false, nil)
			b.Subscribing("s", []string{"/r/bob/#"})
			b.Subscribed("s", []string{"/r/bob/#"}, []byte{1})
		}, setup: func(b *watch.Broker) { b.SessionExpiring("conn-s", "s") }, fate: none},
		{name: "clean session taking over", pre: func(b *watch.Broker) { subscribe(b, "s", "/r/bob/#") },
			setup: func(b *watch.Broker) { b.Connected("conn-s2", "s", true, nil) }, fate: none},
		{name: "share group (the broker picks one member)", pre: func(b *watch.Broker) { subscribe(b, "s", "$share/g/r/bob/#") }, fate: none},
		{name: "queue full, client gone, in-flight quota, no-local: tried", pre: func(b *watch.Broker) { subscribe(b, "s", "/r/bob/#") },
			fate: watch.Fate{Matched: []watch.MatchedClient{{Client: "s"}}}},
		{name: "secured broker refused the read", pre: func(b *watch.Broker) { subscribe(b, "s", "/r/bob/#") },
			fate: watch.Fate{Matched: []watch.MatchedClient{{Client: "s", ReadDenied: true}}}, sec: true},
		{name: "refused subscription", pre: func(b *watch.Broker) {
			b.Subscribing("s", []string{"/r/bob/#"})
			b.Subscribed("s", []string{"/r/bob/#"}, []byte{0x80})
		}, fate: none},
	} {
		b := ledgerBroker()
		if c.sec {
			b.SetSecure("/r/", "connector")
		}
		if c.pre != nil {
			c.pre(b)
		}
		b.StampRead("c1")
		if c.setup != nil {
			c.setup(b)
		}
		if fs := b.PublishFate("c1", "alice", "/r/bob/x", []byte("{}"), 1, c.fate, time.Now()); len(fs) > 0 {
			t.Errorf("%s: expected no finding, actual %v", c.name, fs)
		}
	}
	// A publish the judge did not see read (before it started) is not judged.
	b := ledgerBroker()
	subscribe(b, "s", "/r/bob/#")
	if fs := b.PublishFate("c1", "alice", "/r/bob/x", []byte("{}"), 1, none, time.Now()); len(fs) > 0 {
		t.Errorf("publish not seen read: expected no finding, actual %v", fs)
	}
}

// ledgerStack is an embedded broker (the reference's, or one of the fault catalogue's
// broker faults) carrying the checker hook with a broker judge of path, as serve --check.
func ledgerStack(t *testing.T, fault, path string) (string, func() []watch.Finding) {
	return ledgerStackHooks(t, fault, path, nil)
}

// ledgerStackHooks is ledgerStack with extra broker hooks after the checker's (planted bugs).
func ledgerStackHooks(t *testing.T, fault, path string, hooks []func() mqtt.Hook) (string, func() []watch.Finding) {
	t.Helper()
	bj := ledgerJudge(path)
	var mu sync.Mutex
	var got []watch.Finding
	h := &watch.Hook{Checker: watch.New(watch.Config{TopicPath: path, FromStart: true}), Broker: bj,
		OnFinding: func(f watch.Finding) {
			if f.Participant == watch.BrokerParticipant { // the traffic is not rtcomm's: the protocol checker's findings are not the point
				mu.Lock()
				got = append(got, f)
				mu.Unlock()
			}
		}}
	tg := &scenarios.Target{Decl: scenarios.Declaration{Name: "ledger", Mode: scenarios.ModeEmbedded, TopicPath: path}}
	t.Cleanup(tg.Close)
	var err error
	if fault == "" {
		err = faulty.Observe(tg, []mqtt.Hook{h}, hooks, nil)
	} else {
		var f faulty.Fault
		if f, err = faulty.ByName(fault); err == nil {
			err = f.ApplyObserved(tg, h)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return tg.TCP, func() []watch.Finding { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// ledgerTraffic is what BRK-003/004/005's scenarios do, briefly: subscriptions with #
// and + and at a topic with a space, publishes at the parent level, deeper levels, a space,
// and a 64 KB payload. Each subscriber waits for its messages, so every delivery is in.
func ledgerTraffic(t *testing.T, url, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(id string) *mqttc.Client {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, ClientID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	var n atomic.Int64
	count := func(mqttc.Message) { n.Add(1) }
	sub := dial("ledger-sub")
	for _, f := range []string{path + "a/#", path + "b/+", path + "sp ace/x", path + "big"} {
		if err := sub.Subscribe(ctx, f, 1, count); err != nil {
			t.Fatal(err)
		}
	}
	// mochi writes the SUBACK before its OnSubscribed hooks run, so another client's PUBLISH
	// can be read before the judge saw the grant; such a publish is not owed (the ledger errs
	// on the lawful side), so give the judge time to see it, or the faults could go unseen.
	time.Sleep(200 * time.Millisecond)
	pub := dial("ledger-pub")
	for _, p := range []struct {
		topic   string
		payload []byte
	}{{path + "a", []byte("parent")}, {path + "a/x/y", []byte("deep")}, {path + "b/x", []byte("plus")},
		{path + "sp ace/x", []byte("space")}, {path + "big", bytes.Repeat([]byte("x"), 64<<10)}} {
		// A fault may close the connection on a refused PUBLISH: the rest is then not sent.
		_ = pub.Publish(ctx, p.topic, 1, false, p.payload)
	}
	deadline := time.Now().Add(time.Second)
	for n.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// End to end through the patched mochi (reference/broker/mochipatch/fate.go): the
// reference's handling of the traffic gives no finding; each of the broker faults that
// drop messages gives a finding blamed on the broker against the requirement it breaks.
func TestLedgerCatchesBrokerFaults(t *testing.T) {
	for _, c := range []struct{ fault, want string }{
		{"", ""}, {"hash-as-plus", "BRK-003"}, {"refuses-spaces", "BRK-004"}, {"payload-limit-48k", "BRK-005"},
	} {
		t.Run(cmp.Or(c.fault, "reference"), func(t *testing.T) {
			path := "/l-" + uuid.NewString()[:8] + "/"
			url, findings := ledgerStack(t, c.fault, path)
			ledgerTraffic(t, url, path)
			fs := findings()
			if c.want == "" {
				if len(fs) > 0 {
					t.Fatalf("the reference: expected no finding, actual %v", fs)
				}
				return
			}
			if !brokerFinding(fs, c.want) {
				t.Fatalf("%s: expected a %s finding blamed on the broker, actual %v", c.fault, c.want, fs)
			}
			for _, f := range fs {
				if f.Requirement != c.want {
					t.Errorf("%s: expected only %s findings, actual %v", c.fault, c.want, f)
				}
			}
			t.Logf("%s: %v", c.fault, fs[0])
		})
	}
}

// rewritesTopic is a planted broker bug: an OnPublish hook that moves every message under
// the path to another topic (delivered, but to no subscriber of the topic it was sent at).
type rewritesTopic struct{ mqtt.HookBase }

func (h *rewritesTopic) ID() string           { return "planted-rewrites-topic" }
func (h *rewritesTopic) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *rewritesTopic) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pk.TopicName += "/moved"
	return pk, nil
}

// The fate names the PUBLISH as its client sent it: a hook that rewrites the topic loses
// the message for the subscribers of the topic it was sent at, which is a missing delivery.
func TestLedgerSeesPublishAsSent(t *testing.T) {
	path := "/l-" + uuid.NewString()[:8] + "/"
	url, findings := ledgerStackHooks(t, "", path, []func() mqtt.Hook{func() mqtt.Hook { return new(rewritesTopic) }})
	ledgerTraffic(t, url, path)
	if fs := findings(); !brokerFinding(fs, "BRK-003") || !brokerFinding(fs, "BRK-004") {
		t.Fatalf("topics rewritten by a hook: expected BRK-003 (the # and + subscribers) and BRK-004 (the topic with a space) findings, actual %v", fs)
	}
}
