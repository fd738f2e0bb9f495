package spec

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultTopicPath is the root every rtcomm topic lives under (note the leading slash:
// MQTT treats the empty first level as a real level).
const DefaultTopicPath = "/rtcomm/"

// MaxEndpointIDLen bounds endpoint IDs so topics stay well inside MQTT's 65535-byte limit.
const MaxEndpointIDLen = 1024

// Endpoint-ID errors, for errors.Is.
var (
	ErrIDEmpty    = errors.New("endpoint ID is empty")
	ErrIDSlash    = errors.New("endpoint ID contains '/'")
	ErrIDWildcard = errors.New("endpoint ID contains an MQTT wildcard '+' or '#'")
	ErrIDUTF8     = errors.New("endpoint ID is not valid UTF-8")
	ErrIDControl  = errors.New("endpoint ID contains a NUL or control character")
	ErrIDTooLong  = errors.New("endpoint ID is too long")
)

// ValidateEndpointID checks the identity rule: any UTF-8 string without '/', '+', '#'
// (and without NUL, which MQTT forbids in topic names). Spaces, '@', ':' are allowed.
func ValidateEndpointID(id string) error {
	switch {
	case id == "":
		return ErrIDEmpty // ID-001
	case !utf8.ValidString(id):
		return fmt.Errorf("%q: %w", id, ErrIDUTF8) // ID-001
	case len(id) > MaxEndpointIDLen:
		return fmt.Errorf("%d bytes: %w", len(id), ErrIDTooLong)
	case strings.Contains(id, "/"):
		return fmt.Errorf("%q: %w", id, ErrIDSlash) // ID-002
	case strings.ContainsAny(id, "+#"):
		return fmt.Errorf("%q: %w", id, ErrIDWildcard) // ID-003
	case strings.ContainsRune(id, 0) || strings.ContainsRune(id, '\uFFFD'):
		return fmt.Errorf("%q: %w", id, ErrIDControl)
	}
	return nil
}

// Join appends the sender's ID as the last topic level: "<topic>/<senderID>".
// This is the identity rule: the sender is never named in the JSON.
func Join(topic, senderID string) string {
	return strings.TrimSuffix(topic, "/") + "/" + senderID
}

// Sender returns the last level of a topic: the sender's ID under the identity rule.
func Sender(topic string) string {
	if i := strings.LastIndexByte(topic, '/'); i >= 0 {
		return topic[i+1:]
	}
	return topic
}

// Parent returns the topic without its last level.
func Parent(topic string) string {
	if i := strings.LastIndexByte(topic, '/'); i >= 0 {
		return topic[:i]
	}
	return ""
}

// Topics is the default topic layout under one topic path.
type Topics struct {
	Path string // always ends in "/"
}

// NewTopics returns the layout under path ("" means DefaultTopicPath); a missing
// trailing slash is added.
func NewTopics(path string) Topics {
	if path == "" {
		path = DefaultTopicPath
	}
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	return Topics{Path: path}
}

// Inbox is an endpoint's address topic, "<path><id>"; it subscribes to Inbox(id)+"/#".
func (t Topics) Inbox(id string) string { return t.Path + id }

// InboxFilter is the subscription filter for an endpoint's inbox.
func (t Topics) InboxFilter(id string) string { return t.Path + id + "/#" }

// Management is where SERVICE_QUERY goes (sender ID appended).
func (t Topics) Management() string { return t.Path + "management" }

// Connector is the call-routing topic (sender ID appended).
func (t Topics) Connector() string { return t.Path + "connector" }

// SphereRoot is the presence root; DOCUMENTs are retained at SphereRoot()+"/"+id.
func (t Topics) SphereRoot() string { return t.Path + "sphere" }

// Sphere is an endpoint's presence topic.
func (t Topics) Sphere(id string) string { return t.Path + "sphere/" + id }

// Events is the event-monitoring root.
func (t Topics) Events() string { return t.Path + "event" }

// SessionEvent is the topic of one session event: <events>/session/<action>/<from>/<to>.
func (t Topics) SessionEvent(action, from, to string) string {
	return t.Events() + "/session/" + action + "/" + from + "/" + to
}

// CallControl is the third-party call-control service topic.
func (t Topics) CallControl() string { return t.Path + "callControl" }

// Under reports whether topic lies below the topic path, and returns the rest.
func (t Topics) Under(topic string) (rest string, ok bool) {
	if !strings.HasPrefix(topic, t.Path) {
		return "", false
	}
	return topic[len(t.Path):], true
}

// Resolve makes a topic from a service answer absolute: one not starting with the
// topic path is taken as relative to it (rtcomm.js accepts both).
func (t Topics) Resolve(topic string) string {
	if topic == "" || strings.HasPrefix(topic, t.Path) {
		return topic
	}
	return t.Path + strings.TrimPrefix(topic, "/")
}

// Session event actions.
const (
	EventStarted  = "started"
	EventModified = "modified"
	EventStopped  = "stopped"
	EventFailed   = "failed"
)

// ErrBadFilter is wrapped by ValidateFilter's errors.
var ErrBadFilter = errors.New("invalid MQTT topic filter")

// ValidateFilter checks an MQTT subscription filter (MQTT 3.1.1 §4.7.1): non-empty, no NUL,
// '+' only as a whole level, '#' only as the whole last level. A shared subscription
// ("$share/<group>/<filter>", "$SharedSubscription/<group>/<filter>") is a filter too.
func ValidateFilter(f string) error {
	switch {
	case f == "":
		return fmt.Errorf("empty: %w", ErrBadFilter)
	case len(f) > 65535:
		return fmt.Errorf("%d bytes: %w", len(f), ErrBadFilter)
	case strings.ContainsRune(f, 0):
		return fmt.Errorf("NUL: %w", ErrBadFilter)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("'#' before the last level: %w", ErrBadFilter)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("wildcard inside level %q: %w", l, ErrBadFilter)
		}
	}
	return nil
}

// Shared-subscription prefixes a queue's advertised filter may carry.
var sharedPrefixes = []string{"$share/", "$SharedSubscription/"}

// QueueTopic is the topic behind a call queue's advertised subscription filter: the
// shared-subscription prefix ("$share/<group>/", MessageSight's "$SharedSubscription/<group>/")
// and the trailing wildcard removed. A caller or connector publishes a queued START_SESSION
// at QueueTopic(filter)+"/<callerID>".
func QueueTopic(filter string) string {
	for _, p := range sharedPrefixes {
		if rest, ok := strings.CutPrefix(filter, p); ok {
			if _, f, ok := strings.Cut(rest, "/"); ok {
				filter = f
			}
			break
		}
	}
	filter = strings.TrimSuffix(filter, "#")
	return strings.TrimSuffix(filter, "/")
}

// QueueFilter is the filter an agent subscribes to for an advertised queue topic, as
// rtcomm.js does (src/rtcomm/EndpointProvider/Queues.js Queue): the topic as given,
// with "#" appended after a trailing "/", or "/#" appended when it has no "#".
func QueueFilter(advertised string) string {
	switch {
	case strings.HasSuffix(advertised, "#"):
		return advertised
	case strings.HasSuffix(advertised, "/"):
		return advertised + "#"
	default:
		return advertised + "/#"
	}
}

// SphereIn is the presence topic of id in a presence group ("" means no group):
// <path>sphere/<group>/<id>, as rtcomm.js builds it when configured with presence.topic.
func (t Topics) SphereIn(group, id string) string {
	group = strings.Trim(group, "/")
	if group == "" {
		return t.Sphere(id)
	}
	return t.Path + "sphere/" + group + "/" + id
}
