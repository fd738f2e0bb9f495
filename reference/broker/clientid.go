package broker

import (
	"fmt"
	"strings"
)

// ClientIDRule is how secure mode binds MQTT client IDs to users. Without a binding,
// a CONNECT with another user's client ID takes over that user's session: the broker
// disconnects the victim (firing the victim's will) and hands a persistent session's
// queued messages and subscriptions to the newcomer (MQTT-3.1.4-3).
type ClientIDRule string

const (
	// ClientIDsBound (the default): a client ID that names a user (see ClientIDRuleUser)
	// is that user's alone; any other client ID (rtcomm.js generates 22 random
	// characters) belongs to the user whose session holds it, connected or persisted,
	// and is refused to every other user while that session exists.
	ClientIDsBound ClientIDRule = "bound"
	// ClientIDsUser: every client ID must name the connecting user: equal to the user,
	// start with "<user>:", or equal "<topic path><user>" (rtcomm.js configured with
	// myTopic = its inbox, which it also uses as client ID). Where several users match,
	// the longest one names the client ID.
	ClientIDsUser ClientIDRule = "user"
)

// ParseClientIDRule checks a rule name ("" is the default, ClientIDsBound).
func ParseClientIDRule(s string) (ClientIDRule, error) {
	switch r := ClientIDRule(s); r {
	case "":
		return ClientIDsBound, nil
	case ClientIDsBound, ClientIDsUser:
		return r, nil
	}
	return "", fmt.Errorf("client-ID rule %q: want %q or %q", s, ClientIDsBound, ClientIDsUser)
}

// namedUser returns the user a client ID names ("" if none): the ID itself, the part
// before a ':' (longest first), or the ID without the topic path. O(len(id)) lookups,
// independent of the number of users.
func namedUser(id, path string, users map[string]string) string {
	if _, ok := users[id]; ok {
		return id
	}
	for i := strings.LastIndexByte(id, ':'); i > 0; i = strings.LastIndexByte(id[:i], ':') {
		if _, ok := users[id[:i]]; ok {
			return id[:i]
		}
	}
	if rest, ok := strings.CutPrefix(id, path); ok && rest != "" {
		if _, ok := users[rest]; ok {
			return rest
		}
	}
	return ""
}
