package watch

import (
	"fmt"
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainModel is what the secured broker retained under the path, per topic, charged to
// its user (ID-016).
type retainModel struct {
	quota    int // bytes per user; 0: quota not judged
	retained map[string]retainedBy
	perUser  map[string]int
}

type retainedBy struct {
	user string
	size int
}

// SetRetainedQuota tells the judge the retained payload bytes one user may hold on the
// secured broker (ID-016; the reference: broker.Config.RetainedQuota, serve
// --retained-quota); 0 leaves the quota unjudged.
func (b *Broker) SetRetainedQuota(bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ident.quota = bytes
}

// presenceRest reports whether rest (a topic under the path) is a presence topic where a
// secured broker may retain: sphere/<id> or sphere/<group>/<id>, no empty level
// (reference/broker/limits.go, retainedPolicy.presence).
func presenceRest(rest string) bool {
	r, ok := strings.CutPrefix(rest, "sphere/")
	if !ok || r == "" || strings.ContainsAny(r, "+#") {
		return false
	}
	first, second, two := strings.Cut(r, "/")
	return first != "" && (!two || (second != "" && !strings.Contains(second, "/")))
}

// Retained judges a message the secured broker stored as retained (mochi's OnRetainMessage,
// after every hook; wills included) for client, authenticated as user: under the path it
// keeps only presence (ID-016), and within the per-user quota (SetRetainedQuota; the
// connector's user exempt), counted as the reference's retainedPolicy counts.
func (b *Broker) Retained(client, user, topic string, payload []byte, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.secure == nil {
		return nil
	}
	rest, ok := strings.CutPrefix(topic, b.secPath)
	if !ok {
		return nil
	}
	s := &b.ident
	s.init()
	prev, had := s.retained[topic]
	if had {
		if s.perUser[prev.user] -= prev.size; s.perUser[prev.user] <= 0 {
			delete(s.perUser, prev.user)
		}
		delete(s.retained, topic)
	}
	if len(payload) == 0 {
		return nil
	}
	ev := []Observation{{Topic: shortTopic(topic), Payload: slices.Clone(payload[:min(len(payload), 160)]), Retained: true, Client: client, Time: at}}
	who := fmt.Sprintf("%q (client %s)", user, client)
	var out []Finding
	switch {
	case !presenceRest(rest):
		out = b.add(Finding{Requirement: "ID-016", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("retained messages kept only on presence topics (%ssphere/...)", b.secPath),
			Actual:   fmt.Sprintf("kept the retained message of %s at %s", who, shortTopic(topic)), Time: at, Evidence: ev})
	case s.quota > 0 && user != *b.secure && s.perUser[user]+len(payload) > s.quota:
		out = b.add(Finding{Requirement: "ID-016", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("at most %d retained bytes kept for user %q", s.quota, user),
			Actual:   fmt.Sprintf("kept %d bytes of %s at %s, %d in all", len(payload), who, shortTopic(topic), s.perUser[user]+len(payload)), Time: at, Evidence: ev})
	}
	if len(s.retained) < identityKept {
		s.retained[topic] = retainedBy{user: user, size: len(payload)}
		s.perUser[user] += len(payload)
	}
	return out
}

// OnRetainMessage judges a message the broker retained.
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if h.Broker != nil && cl != nil && !cl.Net.Inline {
		h.report(h.Broker.Retained(cl.ID, string(cl.Properties.Username), pk.TopicName, pk.Payload, time.Now()))
	}
}
