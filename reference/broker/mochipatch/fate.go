package mqtt

import (
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Patched (PATCHED.md 7): the fate of an inbound PUBLISH, for a hook that judges the
// broker from inside (rtcomm-harness's serve --check). Upstream tells no hook what became
// of a PUBLISH another hook refused (OnPacketRead, OnPublish), what the ACL hooks decided
// together (any hook's true wins, so a hook cannot ask), or which clients the topic tree
// matched: a delivery that never happens leaves no trace.

// ErrNoSuchClient is a Delivery's error when the topic tree matched a client the broker
// no longer holds (its session expired).
var ErrNoSuchClient = errors.New("no such client")

// errNotPublished stands for an exit of processPublish that published nothing and has no
// reason of its own (none today).
var errNotPublished = errors.New("not published")

// PublishFate is what the broker did with one PUBLISH it read whole from a client.
type PublishFate struct {
	// Refused is nil when the broker published the message to its subscribers; otherwise
	// why not: the error of the hook named by Hook (OnPacketRead or OnPublish; a
	// packets.CodeSuccessIgnore is acknowledged and delivered to no one),
	// packets.ErrNotAuthorized from the ACL hooks (Hook "", their aggregate verdict), a
	// validation code (malformed: Hook ""), or the error writing its acknowledgement.
	Refused error
	// Hook is the ID of the hook that refused it; "" when the broker itself did.
	Hook string
	// Deliveries, when published, are the clients the topic tree matched (shared
	// subscriptions after one member per group was selected), each with what became of
	// its copy.
	Deliveries []Delivery
}

// Delivery is one matched subscriber's copy of a published message.
type Delivery struct {
	Client string
	// Err is nil when the copy was queued for writing or kept in flight (QoS > 0 to an
	// MQTT 5 client out of send quota); otherwise why not: packets.ErrNotAuthorized (the
	// ACL hooks refused the read), packets.ErrQuotaExceeded (in-flight limit, packet IDs
	// exhausted), packets.CodeDisconnect (the client is gone; a persistent session keeps
	// QoS > 0 in flight), ErrPendingClientWritesExceeded (queue full: OnPublishDropped),
	// ErrNoSuchClient. A no-local skip (MQTT 5) is nil.
	Err error
}

// PublishFateHook is an optional interface of a Hook: the broker calls OnPublishFate
// once for every PUBLISH it read whole from a network client (never the inline client),
// after it has published or refused it, on the goroutine that read it. pk is the PUBLISH
// as the client sent it (its topic alias resolved), not as an OnPublish hook changed it.
// It must not block and must not keep pk's payload.
type PublishFateHook interface {
	OnPublishFate(cl *Client, pk packets.Packet, f PublishFate)
}

// wantFates reports whether any hook implements PublishFateHook.
func (h *Hooks) wantFates() bool { return h.fates.Load() > 0 }

// onPublishFate tells every PublishFateHook.
func (h *Hooks) onPublishFate(cl *Client, pk packets.Packet, f PublishFate) {
	for _, hook := range h.GetAll() {
		if fh, ok := hook.(PublishFateHook); ok {
			fh.OnPublishFate(cl, pk, f)
		}
	}
}
