package watch_test

import (
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
)

// retainedJudge is a broker judge with the reference's open-mode policy and a subscriber
// and two publishers connected.
type retainedJudge struct {
	t        *testing.T
	b        *watch.Broker
	sub      *int
	pub, pb2 *int
}

func newRetainedJudge(t *testing.T, r watch.Retention) *retainedJudge {
	b := watch.NewBroker("/r/")
	b.SetRetention(r)
	j := &retainedJudge{t: t, b: b, sub: new(int), pub: new(int), pb2: new(int)}
	b.Connected(j.sub, "sub", true, nil)
	b.Connected(j.pub, "pub", true, nil)
	b.Connected(j.pb2, "pub2", true, nil)
	return j
}

var openRetention = watch.Retention{Quota: 256 << 10, Total: 64 << 20}

// publish is a PUBLISH read with retain asked as asked, let through by every hook, and
// accepted with the retain flag kept (what the broker's hooks left of it).
func (j *retainedJudge) publish(conn *int, client, user, topic, payload string, asked, kept bool) {
	j.b.PublishRead(conn, client, user, topic, len(payload), asked)
	j.b.PublishAccepted(conn, user, watch.Observation{Topic: topic, Payload: []byte(payload), Retained: kept, Client: client, Time: time.Now()}, false)
}

func (j *retainedJudge) subscribe(filter string, opt watch.RetainOption) {
	j.b.Subscribing("sub", []string{filter})
	j.b.SubscribeOptions("sub", []watch.RetainOption{opt})
	j.b.Subscribed("sub", []string{filter}, []byte{1})
}

func (j *retainedJudge) delivered(topic, payload string) {
	j.b.RetainedDelivered("sub", topic, []byte(payload), time.Now())
}

// due judges the subscriptions as of after their 5 s.
func (j *retainedJudge) due() []watch.Finding {
	return j.b.Finish(time.Now().Add(6 * time.Second))
}

func (j *retainedJudge) none(why string) {
	j.t.Helper()
	if fs := j.due(); len(fs) > 0 {
		j.t.Errorf("%s: expected no finding, actual %v", why, fs)
	}
}

func (j *retainedJudge) found(why string) watch.Finding {
	j.t.Helper()
	fs := j.due()
	if len(fs) != 1 || !brokerFinding(fs, "BRK-001") {
		j.t.Fatalf("%s: expected one BRK-001 finding blamed on the broker, actual %v", why, fs)
	}
	return fs[0]
}

// BRK-001 (forgets-retained): a retained publish the broker delivered live but did not keep
// is missing for a later subscriber.
func TestRetainedMissing(t *testing.T) {
	j := newRetainedJudge(t, openRetention)
	j.publish(j.pub, "pub", "", "/r/sphere/alice", `{"doc":1}`, true, false) // flag dropped by a fault
	j.subscribe("/r/sphere/#", watch.RetainOption{})
	f := j.found("retained message not kept")
	if len(f.Evidence) < 2 || f.Evidence[0].Topic != "/r/sphere/alice" {
		t.Errorf("expected the retained publish as evidence, actual %v", f.Evidence)
	}
	// Right: kept and sent.
	j = newRetainedJudge(t, openRetention)
	j.publish(j.pub, "pub", "", "/r/sphere/alice", `{"doc":1}`, true, true)
	j.subscribe("/r/sphere/#", watch.RetainOption{})
	j.delivered("/r/sphere/alice", `{"doc":1}`)
	j.none("kept and sent")
	// Planted: kept but never sent, to an exact filter and to one whose # stands for the
	// parent level.
	j.subscribe("/r/sphere/+", watch.RetainOption{})
	j.found("kept but not sent")
	j.subscribe("/r/sphere/alice", watch.RetainOption{})
	j.found("kept but not sent (exact filter)")
	j.subscribe("/r/sphere/alice/#", watch.RetainOption{})
	j.found("kept but not sent (parent level)")
	// A subscriber that sent another packet (here DISCONNECT) and went had been sent all
	// the broker meant to send: still judged. One gone without is not (TestRetainedLawful).
	j.subscribe("/r/sphere/+", watch.RetainOption{})
	j.b.PacketRead(j.sub, "sub")
	j.b.Disconnected(j.sub, "sub")
	j.found("not sent before the subscriber's next packet")
}

// BRK-001 (empty-retained-does-not-clear): after an empty retained publish the old
// message is sent to a later subscriber.
func TestRetainedNotCleared(t *testing.T) {
	j := newRetainedJudge(t, openRetention)
	j.publish(j.pub, "pub", "", "/r/sphere/alice", `{"doc":1}`, true, true)
	j.publish(j.pub, "pub", "", "/r/sphere/alice", ``, true, false) // flag dropped by a fault
	j.subscribe("/r/sphere/#", watch.RetainOption{})
	j.delivered("/r/sphere/alice", `{"doc":1}`)
	j.found("cleared message sent")
	// Right: cleared, nothing sent.
	j.subscribe("/r/sphere/#", watch.RetainOption{})
	j.none("cleared, nothing sent")
	// Planted: a message the topic never held.
	j.publish(j.pub, "pub", "", "/r/sphere/bob", `{"doc":2}`, true, true)
	j.subscribe("/r/sphere/bob", watch.RetainOption{})
	j.delivered("/r/sphere/bob", `{"doc":3}`)
	if fs := j.due(); len(fs) != 2 || !brokerFinding(fs[:1], "BRK-001") || !brokerFinding(fs[1:], "BRK-001") {
		t.Errorf("a message never held, the one held not sent: expected two BRK-001 findings, actual %v", fs)
	}
}

// ID-016: what the policy drops on purpose is lawful: outside presence in secure mode,
// over a quota; a drop within every bound is not.
func TestRetainedPolicy(t *testing.T) {
	secure := watch.Retention{PresencePath: "/r/", Quota: 100, Total: 1000, Exempt: "connector"}
	j := newRetainedJudge(t, secure)
	j.publish(j.pub, "pub", "alice", "/r/bob/alice", `{"session":1}`, true, false) // not presence: dropped
	j.subscribe("/r/bob/#", watch.RetainOption{})
	j.none("secure mode, retained outside presence dropped")
	// Over alice's quota (100 bytes): dropped lawfully, and the topic is no longer judged.
	big := string(make([]byte, 150))
	j.publish(j.pub, "pub", "alice", "/r/sphere/alice", big, true, false)
	j.subscribe("/r/sphere/#", watch.RetainOption{})
	j.none("over the quota")
	// The connector's user is exempt from the quota: a drop is the broker's.
	j.publish(j.pb2, "pub2", "connector", "/r/sphere/conn", big, true, false)
	j.subscribe("/r/sphere/conn", watch.RetainOption{})
	j.found("exempt user's retained message dropped")
	// Within the quota: a drop is the broker's.
	j.publish(j.pub, "pub", "carol", "/r/sphere/carol", `{"doc":1}`, true, false)
	j.subscribe("/r/sphere/carol", watch.RetainOption{})
	j.found("dropped within the quota")
	// A clear frees the quota (and settles the topic): alice may retain again.
	j.publish(j.pub, "pub", "alice", "/r/sphere/alice", ``, true, true)
	j.publish(j.pub, "pub", "alice", "/r/sphere/alice", `{"doc":2}`, true, false)
	j.subscribe("/r/sphere/alice", watch.RetainOption{})
	j.found("dropped after the clear freed the quota")
	// Bytes of a publish the broker is still processing count: near the quota, not judged.
	j = newRetainedJudge(t, secure)
	j.b.PublishRead(j.pb2, "pub2", "dave", "/r/sphere/dave2", 60, true) // another client of dave, in flight
	j.publish(j.pub, "pub", "dave", "/r/sphere/dave", string(make([]byte, 60)), true, false)
	j.subscribe("/r/sphere/dave", watch.RetainOption{})
	j.none("within the quota only without the publish in flight")
}

// The lawful races and cases: a newer message or a clear while the subscription waits, the
// store ahead of the model, a subscriber gone, shared subscriptions and retain handling,
// a refused publish, concurrent publishers of one topic, the end of the run.
func TestRetainedLawful(t *testing.T) {
	j := newRetainedJudge(t, openRetention)
	j.publish(j.pub, "pub", "", "/r/sphere/a", `A`, true, true)
	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.publish(j.pub, "pub", "", "/r/sphere/a", `B`, true, true)
	j.delivered("/r/sphere/a", `B`)
	j.none("replaced while the subscription waited")

	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.delivered("/r/sphere/a", `C`) // the broker stored C before it reported the publish
	j.publish(j.pub, "pub", "", "/r/sphere/a", `C`, true, true)
	j.none("store ahead of the model")

	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.publish(j.pub, "pub", "", "/r/sphere/a", ``, true, true)
	j.none("cleared while the subscription waited")

	j.publish(j.pub, "pub", "", "/r/sphere/a", `D`, true, true)
	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.b.Disconnected(j.sub, "sub")
	j.none("subscriber gone")
	j.b.Connected(j.sub, "sub", true, nil)

	for _, f := range []struct {
		filter string
		opt    watch.RetainOption
	}{{"$share/g/r/sphere/a", watch.RetainOption{}}, {"/r/sphere/a", watch.RetainOption{Handling: 2}},
		{"/r/sphere/a", watch.RetainOption{Handling: 1}}} {
		j.subscribe(f.filter, f.opt)
		j.none("no retained messages asked: " + f.filter)
	}
	j.subscribe("/r/sphere/a", watch.RetainOption{NoLocal: true})
	j.b.Subscribing("pub", []string{"/r/sphere/a"})
	j.b.SubscribeOptions("pub", []watch.RetainOption{{NoLocal: true}})
	j.b.Subscribed("pub", []string{"/r/sphere/a"}, []byte{0})
	j.found("No Local: sub is owed pub's message") // sub is owed D; pub is not
	j.publish(j.pb2, "pub2", "", "/r/sphere/a", `D2`, true, true)
	j.b.Subscribing("pub", []string{"/r/sphere/a"})
	j.b.SubscribeOptions("pub", []watch.RetainOption{{NoLocal: true}})
	j.b.Subscribed("pub", []string{"/r/sphere/a"}, []byte{0})
	j.publish(j.pub, "pub", "", "/r/sphere/a", `D3`, true, true) // pub's own while it waits
	j.none("No Local: pub's own message replaced the one it was owed")
	j.publish(j.pub, "pub", "", "/r/sphere/a", `D`, true, true)
	j.b.Subscribing("sub", []string{"/r/sphere/a"})
	j.b.SubscribeOptions("sub", nil)
	j.b.Subscribed("sub", []string{"/r/sphere/a"}, []byte{0x80})
	j.none("refused subscription")

	// A publish read but refused by a hook (no OnPublished) changes nothing.
	j.b.PublishRead(j.pub, "pub", "", "/r/sphere/a", 0, true)
	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.delivered("/r/sphere/a", `D`)
	j.none("refused clear")

	// Two connections retain on one topic at once: which one the broker stored last is unknown.
	j.b.PublishRead(j.pb2, "pub2", "", "/r/sphere/a", 1, true)
	j.publish(j.pub, "pub", "", "/r/sphere/a", `E`, true, true)
	j.b.PublishAccepted(j.pb2, "", watch.Observation{Topic: "/r/sphere/a", Payload: []byte(`F`), Retained: true, Client: "pub2", Time: time.Now()}, false)
	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.delivered("/r/sphere/a", `E`)
	j.none("concurrent publishers")
	j.publish(j.pub, "pub", "", "/r/sphere/a", ``, true, true) // a clear settles it again
	j.subscribe("/r/sphere/a", watch.RetainOption{})
	j.delivered("/r/sphere/a", `E`)
	j.found("settled by a clear")

	// The end of the run cuts a subscription that is not due yet.
	j.publish(j.pub, "pub", "", "/r/sphere/b", `G`, true, false)
	j.subscribe("/r/sphere/b", watch.RetainOption{})
	if fs := j.b.Finish(time.Now().Add(time.Second)); len(fs) > 0 {
		t.Errorf("not due at the end: expected no finding, actual %v", fs)
	}
	if due := j.b.Due(); time.Until(due) < 4*time.Second {
		t.Errorf("Due: expected the waiting subscription's due time, actual %s", due)
	}
	j.found("due later")

	// A topic the model never saw (older than the judge) and topics outside the path.
	j.subscribe("#", watch.RetainOption{})
	j.delivered("/r/sphere/b", `G`)
	j.delivered("/r/sphere/old", `H`)
	j.delivered("/other/x", `I`)
	j.none("never seen, outside the path")

	// No policy set: nothing modelled.
	b := watch.NewBroker("/r/")
	b.Connected(j.sub, "sub", true, nil)
	b.PublishRead(j.pub, "pub", "", "/r/sphere/a", 1, true)
	b.PublishAccepted(j.pub, "", watch.Observation{Topic: "/r/sphere/a", Payload: []byte(`J`), Client: "pub"}, false)
	b.Subscribing("sub", []string{"/r/sphere/a"})
	b.Subscribed("sub", []string{"/r/sphere/a"}, []byte{0})
	if fs := b.Finish(time.Now().Add(6 * time.Second)); len(fs) > 0 {
		t.Errorf("without SetRetention: expected no finding, actual %v", fs)
	}
}

// A Last Will published retained sets or clears the topic; one published without the flag
// it declared may be the policy's or BRK-002's: not judged.
func TestRetainedWills(t *testing.T) {
	j := newRetainedJudge(t, openRetention)
	j.publish(j.pub, "pub", "", "/r/sphere/w", `{"doc":1}`, true, true)
	time.Sleep(5 * time.Millisecond)
	w := &watch.Will{Topic: "/r/sphere/w", Retained: true}
	will := new(int)
	j.b.Connected(will, "w", true, w)
	j.b.WillRetained(will, "w", "", watch.Will{Topic: "/r/sphere/w", Retained: true}, time.Now().Add(2*time.Second))
	j.subscribe("/r/sphere/w", watch.RetainOption{})
	j.delivered("/r/sphere/w", `{"doc":1}`)
	j.found("cleared by the retained empty will")

	j.publish(j.pub, "pub", "", "/r/sphere/w", `{"doc":2}`, true, true)
	j.b.Connected(will, "w", true, w)
	j.b.WillRetained(will, "w", "", watch.Will{Topic: "/r/sphere/w"}, time.Now().Add(2*time.Second))
	j.subscribe("/r/sphere/w", watch.RetainOption{})
	j.delivered("/r/sphere/w", `{"doc":2}`)
	j.none("empty will published without its retain flag (BRK-002's)")

	// A will right after another connection's publish on its topic: not judged.
	j.publish(j.pub, "pub", "", "/r/sphere/x", `{"doc":3}`, true, true)
	j.b.Connected(will, "w", true, &watch.Will{Topic: "/r/sphere/x", Retained: true})
	j.b.WillRetained(will, "w", "", watch.Will{Topic: "/r/sphere/x", Retained: true}, time.Now())
	j.subscribe("/r/sphere/x", watch.RetainOption{})
	j.delivered("/r/sphere/x", `{"doc":3}`)
	j.none("will racing a publish")
}
