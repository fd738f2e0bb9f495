package watch_test

import (
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// A subscription that joins during a call (check --broker started 12 s into a load run on
// mosquitto with two replicas, 2 December 2026): the relay of a candidate sent before it
// subscribed arrived next to the original of the following one. It was taken for an altered
// relay of that one (ICE-004) and that one's own relay for a second relay (ICE-003). Having
// seen the START_SESSION, the same traffic is an alteration, and is found.
func TestSubscriptionJoinsMidCall(t *testing.T) {
	relayed := func(n string) string { return cand("/rtcomm/connector/rtcconn-1", n) }
	for _, sawStart := range []bool{false, true} {
		c := watch.New(watch.Config{Profile: spec.ProfileClient})
		t0 := time.Unix(1_700_000_000, 0)
		pub := func(at time.Duration, topic, payload string) []watch.Finding {
			return c.Observe(watch.Observation{Topic: topic, Payload: []byte(payload), Time: t0.Add(at)})
		}
		if sawStart {
			pub(0, "/rtcomm/connector/rtcconn-1/alice", startMsg)
		}
		pub(time.Second, "/rtcomm/connector/rtcconn-1/alice", cand("/rtcomm/alice", "2"))
		fs := pub(time.Second+time.Millisecond, "/rtcomm/bob/alice", relayed("1")) // candidate 1's original: before the checker
		fs = append(fs, pub(time.Second+2*time.Millisecond, "/rtcomm/bob/alice", relayed("2"))...)
		fs = append(fs, c.Finish(t0.Add(10*time.Second))...)
		if got := hasFinding(fs, "ICE-004", watch.ConnectorParticipant); got != sawStart {
			t.Fatalf("START_SESSION seen %v: expected ICE-004 %v, actual %v", sawStart, sawStart, fs)
		}
		if !sawStart && len(fs) != 0 {
			t.Fatalf("joined mid-call: expected no finding, actual %v", fs)
		}
	}
}
