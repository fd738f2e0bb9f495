package watch

import (
	"slices"
	"testing"
)

// The judge's subscription index matches exactly as TopicMatches (MQTT's rules), and
// removing a filter prunes it.
func TestSubIndexMatchesAsTopicMatches(t *testing.T) {
	filters := []string{"/r/a/#", "/r/a/+", "/r/a", "#", "+/r/#", "/r/a b/+", "/r/+/c", "+", "/+", "/r/#", "$SYS/#", "+/+/+", "/r//x", "/r/+/+/#"}
	topics := []string{"/r/a", "/r/a/b", "/r/a/b/c", "/r", "/r/", "$SYS/x", "/r/a b/c", "/r/x/c", "a", "/", "/r//x", ""}
	var x subIndex
	for i, f := range filters {
		x.add(f, f, uint64(i))
	}
	for _, topic := range topics {
		var got, want []string
		x.match(topic, func(filter, client string, _ uint64) {
			if filter != client {
				t.Errorf("%q: filter %q reported for client %q", topic, filter, client)
			}
			got = append(got, filter)
		})
		for _, f := range filters {
			if TopicMatches(f, topic) {
				want = append(want, f)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q: expected %q (TopicMatches), actual %q", topic, want, got)
		}
	}
	for _, f := range filters {
		x.remove(f, f)
	}
	if len(x.root.kids) != 0 || len(x.root.subs) != 0 {
		t.Errorf("every filter removed: expected an empty index, actual %d nodes left at the root", len(x.root.kids))
	}
}
