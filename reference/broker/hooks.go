package broker

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// compatHook makes mochi accept what rtcomm clients send: CONNECTs with an empty will
// payload or an empty password, and it enforces the exact PUBLISH payload limit.
type compatHook struct {
	mqtt.HookBase
	srv        *mqtt.Server
	sentinel   []byte // stands in for an empty will payload between CONNECT and OnWill
	maxPayload int
}

// ID names the hook in mochi's logs.
func (h *compatHook) ID() string { return "rtcomm-compat" }

// Provides declares exactly the hook methods compatHook implements.
func (h *compatHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnWill
}

// OnPacketRead runs on every decoded packet before mochi validates it.
func (h *compatHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		// mochi's ConnectValidate refuses a will flag with a zero-length will message,
		// but MQTT-3.1.2-9 only requires the field to be present, and rtcomm's
		// unregister will is exactly that. Carry a private sentinel until OnWill.
		if pk.Connect.WillFlag && len(pk.Connect.WillPayload) == 0 {
			pk.Connect.WillPayload = h.sentinel // BRK-002
		}
		// Same misreading for passwords (MQTT 3.1.1 §3.1.3.5 allows zero bytes): an
		// empty password with the flag set means the same as no password.
		if pk.Connect.PasswordFlag && len(pk.Connect.Password) == 0 {
			pk.Connect.PasswordFlag = false
		}
	case packets.Publish:
		if len(pk.Payload) > h.maxPayload {
			h.Log.Warn("publish payload over limit: disconnecting client",
				"client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload), "limit", h.maxPayload)
			if cl.Properties.ProtocolVersion == 5 {
				_ = h.srv.DisconnectClient(cl, packets.ErrPacketTooLarge) // DISCONNECT 0x95; 3.1.x has no server DISCONNECT
			}
			// ErrRejectPacket ends the read loop with an error: the connection closes
			// and, as for any abnormal end, the client's will is published.
			return pk, fmt.Errorf("publish payload of %d bytes exceeds %d: %w", len(pk.Payload), h.maxPayload, packets.ErrRejectPacket)
		}
	}
	return pk, nil
}

// OnWill turns the sentinel back into the empty payload the client asked for, so the
// retained registration is cleared and subscribers receive an empty PUBLISH.
func (h *compatHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if bytes.Equal(will.Payload, h.sentinel) {
		will.Payload = []byte{} // BRK-002
	}
	return will, nil
}

// identityHook is secure mode: authentication from Credentials and ACLs enforcing the
// identity rule (ID-005). The ConnectorUser may do everything.
type identityHook struct {
	mqtt.HookBase
	srv      *mqtt.Server
	rule     identityRule
	creds    map[string]string
	super    string // ConnectorUser; "" for none
	clientID ClientIDRule
}

// ID names the hook in mochi's logs.
func (h *identityHook) ID() string { return "rtcomm-identity" }

// Provides declares exactly the hook methods identityHook implements. The will is
// checked at CONNECT (OnConnect) rather than in OnWill, because mochi cannot suppress
// a will from OnWill and a client should learn at once that its will is not allowed.
func (h *identityHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSessionEstablish:
		return true
	}
	return false
}

// authenticated checks username (= endpoint ID) and password; anonymous is refused.
func (h *identityHook) authenticated(pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	want, ok := h.creds[user]
	if user == "" || !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
}

// OnConnectAuthenticate refuses unknown users, wrong passwords and anonymous clients;
// mochi answers CONNACK 0x05 "not authorized" (MQTT 3.1/3.1.1) or 0x86 (MQTT 5).
func (h *identityHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.authenticated(pk) {
		return true
	}
	h.Log.Info("connect refused: bad credentials", "client", pk.Connect.ClientIdentifier,
		"user", string(pk.Connect.Username), "remote", cl.Net.Remote)
	return false
}

// OnConnect refuses an authenticated client whose client ID belongs to another user
// (CONNACK "identifier rejected") or whose will breaks the identity rule (a will is a
// publish on the client's behalf; CONNACK "not authorized"). mochi runs it before
// authentication and, above all, before it looks for an existing session with that
// client ID: a refusal here leaves the holder of the ID untouched (no takeover, no
// will fired, no queued messages handed over).
func (h *identityHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !h.authenticated(pk) {
		return nil // bad credentials are refused by OnConnectAuthenticate
	}
	id := string(pk.Connect.Username)
	if why := h.clientIDRefusal(id, pk.Connect.ClientIdentifier); why != "" {
		h.Log.Info("connect refused: client ID", "user", id, "client", pk.Connect.ClientIdentifier, "why", why,
			"remote", cl.Net.Remote)
		if err := h.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil); err != nil { // ID-010
			return fmt.Errorf("client ID %q refused for %q: %s; send connack: %w", pk.Connect.ClientIdentifier, id, why, err)
		}
		return fmt.Errorf("client ID %q refused for %q: %s: %w", pk.Connect.ClientIdentifier, id, why, packets.ErrClientIdentifierNotValid)
	}
	if !pk.Connect.WillFlag {
		return nil
	}
	if id == h.super || h.rule.mayPublish(id, pk.Connect.WillTopic) {
		return nil
	}
	h.Log.Info("connect refused: will breaks the identity rule", "user", id, "will_topic", pk.Connect.WillTopic)
	code := packets.ErrNotAuthorized
	if pk.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized
	}
	if err := h.srv.SendConnack(cl, code, false, nil); err != nil { // ID-005
		return fmt.Errorf("will topic %q not allowed for %q; send connack: %w", pk.Connect.WillTopic, id, err)
	}
	return fmt.Errorf("will topic %q not allowed for %q: %w", pk.Connect.WillTopic, id, packets.ErrNotAuthorized)
}

// clientIDRefusal says why user may not connect with client ID cid ("" = it may).
func (h *identityHook) clientIDRefusal(user, cid string) string {
	if cid == "" {
		if h.clientID == ClientIDsUser {
			return "an empty client ID names no user; this broker wants <user> or <user>:<suffix>"
		}
		return "" // mochi assigns a fresh random ID
	}
	switch owner := namedUser(cid, h.rule.path, h.creds); {
	case owner == user:
		return ""
	case owner != "":
		return "the client ID names user " + owner // ID-010 ID-012
	case h.clientID == ClientIDsUser:
		return "the client ID names no user; this broker wants <user> or <user>:<suffix>" // ID-010
	}
	// Not a named ID: bound to the user of the session holding it, if any.
	if held, ok := h.srv.Clients.Get(cid); ok {
		if holder := string(held.Properties.Username); holder != user {
			return "a session of another user holds this client ID" // ID-010 ID-011
		}
	}
	return ""
}

// OnSessionEstablish runs after authentication, just before mochi hands an existing
// session (same client ID) to the new connection. The client-ID rule already makes
// that session the same user's; as a second line, every queued message and every
// subscription it would inherit is checked again against this user's ACL, and what
// fails is discarded instead of delivered (ID-011).
func (h *identityHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, ok := h.srv.Clients.Get(cl.ID)
	if !ok {
		return
	}
	user := string(cl.Properties.Username)
	if user == h.super && h.super != "" {
		return
	}
	if string(old.Properties.Username) != user {
		// Unreachable while the client-ID rule holds; never hand another user's state over.
		h.Log.Error("session of another user about to be inherited: discarding its state",
			"client", cl.ID, "user", user, "holder", string(old.Properties.Username))
		old.ClearInflights()
		h.srv.UnsubscribeClient(old)
		return
	}
	recheckInherited(h.srv, old, func(topic string) bool { return h.rule.mayRead(user, topic) })
}

// recheckInherited discards the queued messages and subscriptions of a session about
// to be resumed that mayRead refuses (ID-011).
func recheckInherited(srv *mqtt.Server, old *mqtt.Client, mayRead func(string) bool) {
	for _, pk := range old.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish && !mayRead(pk.TopicName) {
			old.State.Inflight.Delete(pk.PacketID) // ID-011
		}
	}
	for filter := range old.State.Subscriptions.GetAll() {
		if !mayRead(filter) {
			old.State.Subscriptions.Delete(filter) // ID-011
			srv.Topics.Unsubscribe(filter, old.ID)
		}
	}
}

// OnACLCheck decides subscriptions (and every delivery) by the identity rule.
// Publishes (write) are let through here and decided in OnPublish: a refusal here
// makes mochi disconnect a 3.1.1 QoS 1 publisher, and topic aliases (MQTT 5) are
// resolved only after this check.
func (h *identityHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id := string(cl.Properties.Username)
	if write || (h.super != "" && id == h.super) {
		return true
	}
	return h.rule.mayRead(id, topic) // ID-005
}

// OnPublish drops publishes that break the identity rule. MQTT 3.1/3.1.1 have no
// negative PUBACK: a denied QoS 1 publish is acknowledged as usual and discarded
// (MQTT-3.3.5-2 allows exactly that); QoS 0 is discarded; MQTT 5 gets PUBACK 0x87.
func (h *identityHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	id := string(cl.Properties.Username)
	if (h.super != "" && id == h.super) || h.rule.mayPublish(id, pk.TopicName) {
		return pk, nil
	}
	h.Log.Info("publish dropped: identity rule", "client", cl.ID, "user", id, "topic", pk.TopicName)
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return pk, packets.ErrNotAuthorized // ID-005
	}
	return pk, packets.CodeSuccessIgnore // ID-005
}

// identityRule is rtcomm's identity rule under one topic path.
type identityRule struct {
	path string // ends in "/"
}

// mayPublish: only to topics under the path whose last level is the client's own ID:
// <path>sphere/<id>, <path>connector/<id>, <path>management/<id>, <path><peer>/<id>.
// Presence is exactly <path>sphere/<id> (no deeper level a presence monitor could
// misread), and the event tree is the connector's alone: an event topic ends in the
// *callee's* ID, so the last-level rule would let a callee forge events about its caller.
func (r identityRule) mayPublish(id, topic string) bool {
	rest, ok := strings.CutPrefix(topic, r.path)
	if !ok || id == "" || spec.Sender(rest) != id {
		return false
	}
	switch first, _, _ := strings.Cut(rest, "/"); first {
	case levelEvent:
		return false // ID-009
	case levelSphere:
		return rest == levelSphere+"/"+id // ID-008
	case levelConnector:
		// <path>connector/~<group>/... carries the replicas' own records (3PCC claims,
		// session ownership, liveness): a client ID in its last level must not forge them.
		return !strings.HasPrefix(rest, levelConnector+"/~")
	}
	return true // ID-005
}

// mayRead: a subscription filter (or a delivered topic) within the client's own inbox
// <path><id>[/...], the presence sphere <path>sphere[/...] or the events
// <path>event[/...]. A shared subscription is judged by the filter inside it.
func (r identityRule) mayRead(id, filter string) bool {
	filter, ok := unshare(filter)
	if !ok || id == "" {
		return false
	}
	rest, ok := strings.CutPrefix(filter, r.path)
	if !ok {
		return false
	}
	for _, own := range [...]string{id, levelSphere, levelEvent} {
		if rest == own || strings.HasPrefix(rest, own+"/") {
			return true
		}
	}
	return false
}

// unshare returns the filter inside "$share/<group>/<filter>" (or the filter itself);
// ok is false for a malformed shared filter.
func unshare(filter string) (string, bool) {
	first, after, found := strings.Cut(filter, "/")
	if !strings.EqualFold(first, "$share") {
		return filter, true
	}
	group, inner, found2 := strings.Cut(after, "/")
	if !found || !found2 || group == "" || inner == "" {
		return "", false
	}
	return inner, true
}

// Topic levels right under the topic path that belong to rtcomm itself.
var (
	levelSphere    = firstLevel(spec.NewTopics("").SphereRoot())
	levelEvent     = firstLevel(spec.NewTopics("").Events())
	levelConnector = firstLevel(spec.NewTopics("").Connector())
	reservedLevels = map[string]bool{
		levelSphere: true,
		levelEvent:  true,
		firstLevel(spec.NewTopics("").Management()):  true,
		firstLevel(spec.NewTopics("").Connector()):   true,
		firstLevel(spec.NewTopics("").CallControl()): true,
	}
)

func firstLevel(topic string) string {
	rest, _ := strings.CutPrefix(topic, spec.NewTopics("").Path)
	first, _, _ := strings.Cut(rest, "/")
	return first
}
