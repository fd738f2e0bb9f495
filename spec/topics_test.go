package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

func TestValidateEndpointID(t *testing.T) {
	t.Parallel()
	good := []string{"alice", "sip:alice@example.com", "John Smith", "a.b-c_d", "ü"}
	for _, id := range good {
		if err := spec.ValidateEndpointID(id); err != nil {
			t.Errorf("ValidateEndpointID(%q): expected nil, actual %v", id, err)
		}
	}
	bad := map[string]error{
		"":         spec.ErrIDEmpty,
		"a/b":      spec.ErrIDSlash,
		"a+b":      spec.ErrIDWildcard,
		"a#":       spec.ErrIDWildcard,
		"\xff\xfe": spec.ErrIDUTF8,
		"a\x00b":   spec.ErrIDControl,
		strings.Repeat("x", spec.MaxEndpointIDLen+1): spec.ErrIDTooLong,
	}
	for id, want := range bad {
		if err := spec.ValidateEndpointID(id); !errors.Is(err, want) {
			t.Errorf("ValidateEndpointID(%q): expected %v, actual %v", id, want, err)
		}
	}
}

func TestTopics(t *testing.T) {
	t.Parallel()
	tp := spec.NewTopics("")
	if tp.Path != "/rtcomm/" {
		t.Fatalf("default path: expected /rtcomm/, actual %q", tp.Path)
	}
	if got := spec.NewTopics("/x").Path; got != "/x/" {
		t.Errorf("trailing slash: expected /x/, actual %q", got)
	}
	checks := map[string]string{
		tp.Inbox("alice"):                          "/rtcomm/alice",
		tp.InboxFilter("alice"):                    "/rtcomm/alice/#",
		tp.Sphere("alice"):                         "/rtcomm/sphere/alice",
		spec.Join(tp.Management(), "alice"):        "/rtcomm/management/alice",
		spec.Join(tp.Connector()+"/", "alice"):     "/rtcomm/connector/alice",
		tp.SessionEvent("started", "alice", "bob"): "/rtcomm/event/session/started/alice/bob",
		tp.CallControl():                           "/rtcomm/callControl",
		tp.Resolve("connector"):                    "/rtcomm/connector",
		tp.Resolve("/rtcomm/connector"):            "/rtcomm/connector",
	}
	for got, want := range checks {
		if got != want {
			t.Errorf("expected %q, actual %q", want, got)
		}
	}
	if s := spec.Sender("/rtcomm/bob/sip:alice@example.com"); s != "sip:alice@example.com" {
		t.Errorf("Sender: expected sip:alice@example.com, actual %q", s)
	}
	if rest, ok := tp.Under("/rtcomm/sphere/a"); !ok || rest != "sphere/a" {
		t.Errorf("Under: expected sphere/a, actual %q %v", rest, ok)
	}
	if _, ok := tp.Under("/other/a"); ok {
		t.Error("Under: expected false outside the path")
	}
}

func TestValidateFilterAndQueueTopics(t *testing.T) {
	t.Parallel()
	for f, ok := range map[string]bool{
		"/rtcomm/q/#": true, "$share/g//rtcomm/q/#": true, "$SharedSubscription/g//rtcomm/q/#": true, "+/x/+": true, "#": true,
		"": false, "/rtcomm/#/q": false, "/rtcomm/q#": false, "/rtcomm/a+b": false, "a\x00b": false,
	} {
		if err := spec.ValidateFilter(f); (err == nil) != ok {
			t.Errorf("ValidateFilter(%q): expected ok=%v, actual %v", f, ok, err)
		}
	}
	for in, want := range map[string]string{
		"$share/rtcomm-queue//rtcomm/support/#":     "/rtcomm/support",
		"$SharedSubscription/grp//rtcomm/support/#": "/rtcomm/support",
		"/rtcomm/support":                           "/rtcomm/support",
		"/rtcomm/support/":                          "/rtcomm/support",
		"/rtcomm/support/#":                         "/rtcomm/support",
	} {
		if got := spec.QueueTopic(in); got != want {
			t.Errorf("QueueTopic(%q): expected %q, actual %q", in, want, got)
		}
	}
	for in, want := range map[string]string{"/rtcomm/q": "/rtcomm/q/#", "/rtcomm/q/": "/rtcomm/q/#", "$share/g//rtcomm/q/#": "$share/g//rtcomm/q/#"} {
		if got := spec.QueueFilter(in); got != want {
			t.Errorf("QueueFilter(%q): expected %q, actual %q", in, want, got)
		}
	}
	tp := spec.NewTopics("")
	if got := tp.SphereIn("agents", "bob"); got != "/rtcomm/sphere/agents/bob" {
		t.Errorf("SphereIn: actual %q", got)
	}
	if got := tp.SphereIn("", "bob"); got != "/rtcomm/sphere/bob" {
		t.Errorf("SphereIn without group: actual %q", got)
	}
}
