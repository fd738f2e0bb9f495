package connector

import (
	"bytes"
	"errors"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// regEntry is one registration: endpoint ID + appContext -> address topic.
type regEntry struct {
	id, appContext string
	address        string
	sphereTopic    string // where the DOCUMENT was retained
	doc            []byte // the DOCUMENT as received, republished after an ignored unregister
	gen            uint64 // registry generation that last confirmed it
	registered     time.Time
	// graceUntil: this entry just replaced an older registrant, whose empty
	// retained message (rtcomm.js sends one on DOCUMENT_REPLACED) is expected
	// on the same sphere topic until then and must not remove this entry.
	graceUntil time.Time
}

// registry indexes registrations by endpoint ID; an ID normally has one entry,
// several only when it registered under several appContexts.
type registry struct {
	byID map[string][]*regEntry
	n    int
}

func newRegistry() registry { return registry{byID: map[string][]*regEntry{}} }

// exact returns the entry for id + appContext.
func (r *registry) exact(id, appContext string) *regEntry {
	for _, e := range r.byID[id] {
		if e.appContext == appContext {
			return e
		}
	}
	return nil
}

// lookup finds the callee for a call in appContext: the entry with the same
// appContext, else one registered without appContext (it serves every context);
// a call without appContext takes the newest registration of the ID.
func (r *registry) lookup(id, appContext string) *regEntry {
	list := r.byID[id]
	if appContext == "" {
		var newest *regEntry
		for _, e := range list {
			if newest == nil || e.registered.After(newest.registered) {
				newest = e
			}
		}
		return newest
	}
	var wildcard *regEntry
	for _, e := range list {
		switch e.appContext {
		case appContext:
			return e
		case "":
			wildcard = e
		}
	}
	return wildcard
}

// onSphere handles one presence message: a retained DOCUMENT registers, an
// empty payload (last will or clean unregister) removes. Nothing is ever
// answered on the sphere: documents are not requests.
func (c *Connector) onSphere(msg mqttc.Message) {
	id := spec.Sender(msg.Topic)
	if err := spec.ValidateEndpointID(id); err != nil {
		c.drop(msg.Topic, "presence topic does not end in a valid endpoint ID: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(msg.Payload)) == 0 {
		c.unregister(id, msg.Topic) // never rate-limited: a missed unregister would leak sessions REG-008
		return
	}
	if !c.admit(msg, id) {
		return
	}
	m, err := spec.Decode(msg.Payload)
	if errors.Is(err, spec.ErrEmpty) {
		c.unregister(id, msg.Topic) // REG-008
		return
	}
	if m == nil {
		c.drop(msg.Topic, "presence document is not a JSON object: "+err.Error())
		return
	}
	if m.Method != spec.MethodDocument {
		c.drop(msg.Topic, "presence message is not a DOCUMENT (method "+string(m.Method)+")")
		return
	}
	addr := m.Address() // addressTopic (rtcomm.js) or topic (written spec) REG-005
	if addr == "" {
		c.drop(msg.Topic, "DOCUMENT has neither addressTopic nor topic")
		return
	}
	// The registrant is the presence topic's last level, with or without a presence
	// group (<path>sphere/<id>, <path>sphere/<group>/<id>); in secure mode its address
	// must be its own inbox, or calls to it would land in another's inbox and a
	// re-registration would send that other endpoint DOCUMENT_REPLACED (ID-013).
	if err := c.partyTopic(id, addr); err != nil {
		c.drop(msg.Topic, "DOCUMENT address unusable: "+err.Error())
		return
	}
	if err != nil {
		// Lenient: the fields routing needs are sound; say what else was wrong.
		c.log.Info("DOCUMENT accepted despite bad fields", "topic", msg.Topic, "err", err)
	}
	c.register(id, m.AppContext, addr, msg.Topic, msg.Payload)
}

// register adds or refreshes id+appContext; a different address for the same
// pair replaces the older registrant, which is sent DOCUMENT_REPLACED.
func (c *Connector) register(id, appContext, addr, sphereTopic string, doc []byte) {
	now := time.Now()
	var o outbox
	var replaced string
	c.mu.Lock()
	e := c.reg.exact(id, appContext) // one address per pair REG-006 REG-010
	switch {
	case e == nil && c.cfg.MaxRegistrationsPerEndpoint > 0 && len(c.reg.byID[id]) >= c.cfg.MaxRegistrationsPerEndpoint,
		e == nil && c.cfg.MaxRegistrations > 0 && c.reg.n >= c.cfg.MaxRegistrations:
		c.countFailureLocked("registration_limit")
		n, total := len(c.reg.byID[id]), c.reg.n
		c.mu.Unlock()
		c.dropped.Add(1)
		c.log.Info("DOCUMENT ignored: registration limit", "endpoint", short(id), "appContext", short(appContext),
			"entriesOfID", n, "registrations", total)
		return
	case e == nil:
		e = &regEntry{id: id, appContext: appContext, address: addr, sphereTopic: sphereTopic,
			doc: doc, gen: c.gen, registered: now}
		c.reg.byID[id] = append(c.reg.byID[id], e)
		c.reg.n++
	case e.address == addr: // re-publication (state change, reconnect): not a new registrant
		e.doc, e.sphereTopic, e.gen = doc, sphereTopic, c.gen
	default:
		replaced = e.address
		e.address, e.doc, e.sphereTopic, e.gen, e.registered = addr, doc, sphereTopic, c.gen, now
		if c.cfg.ReplaceGrace > 0 {
			e.graceUntil = now.Add(c.cfg.ReplaceGrace)
		}
		// The replaced registrant is going away: end its sessions (not the newcomer's).
		c.endSessionsOfLocked(id, replaced, "registration replaced", &o)
		o.msg(spec.Join(replaced, c.id), 1, &spec.Message{Method: spec.MethodDocumentReplaced}) // REG-007
	}
	c.mu.Unlock()
	if replaced != "" {
		c.replacements.Add(1)
		c.log.Info("registration replaced", "endpoint", id, "appContext", appContext,
			"oldAddress", replaced, "newAddress", addr)
	} else if c.debug {
		c.log.Debug("registered", "endpoint", id, "appContext", appContext, "address", addr)
	}
	c.flush(o)
}

// unregister handles an empty retained message on one of id's presence topics. Presence
// may be grouped (<path>sphere/<group>/<id>, rtcomm.js EndpointConnection.js
// getMyPresenceTopic), so the message removes only the registrations made on that topic: a
// stale will or clear in another group must not unregister the endpoint where it lives.
func (c *Connector) unregister(id, sphereTopic string) {
	now := time.Now()
	var o outbox
	c.mu.Lock()
	list := c.reg.byID[id]
	var gone, kept []*regEntry
	for _, e := range list {
		if e.sphereTopic != sphereTopic {
			kept = append(kept, e)
			continue
		}
		if now.Before(e.graceUntil) { // REG-009
			// The replaced registrant's goodbye, not the newcomer's: keep the entry
			// and restore the newcomer's retained document, which that empty
			// message just cleared at the broker. REG-009
			e.graceUntil = time.Time{}
			topic, doc, addr := e.sphereTopic, e.doc, e.address
			c.mu.Unlock()
			c.ignoredUnrg.Add(1)
			c.log.Info("empty presence message after a replacement ignored; newcomer's document restored",
				"endpoint", id, "address", addr)
			c.publish(topic, 1, true, doc) // REG-009 ROB-003
			return
		}
		gone = append(gone, e)
	}
	n := 0
	switch {
	case len(kept) == 0:
		delete(c.reg.byID, id)
		// Every registration of id is gone (or it had none): end all its sessions. REG-008
		n = c.endSessionsOfLocked(id, "", id+" unregistered", &o)
	default:
		c.reg.byID[id] = kept
		// id stays registered elsewhere: end only the sessions at the addresses that left. REG-008
		for _, e := range gone {
			n += c.endSessionsOfLocked(id, e.address, id+" unregistered", &o)
		}
	}
	c.reg.n -= len(gone)
	c.mu.Unlock()
	if len(gone) > 0 {
		c.unregistrations.Add(1)
	}
	if len(gone) > 0 || n > 0 {
		c.log.Info("unregistered", "endpoint", id, "presenceTopic", sphereTopic, "entries", len(gone), "sessionsEnded", n)
	}
	c.flush(o)
}

// pruneRegistry drops registrations that a resubscription did not confirm:
// their unregister was missed while the connection was down.
func (c *Connector) pruneRegistry(gen uint64) {
	var o outbox
	var gone []string
	c.mu.Lock()
	for id, list := range c.reg.byID {
		kept := list[:0]
		for _, e := range list {
			if e.gen >= gen {
				kept = append(kept, e)
			}
		}
		if len(kept) == len(list) {
			continue
		}
		c.reg.n -= len(list) - len(kept)
		if len(kept) == 0 {
			delete(c.reg.byID, id)
			gone = append(gone, id)
			c.endSessionsOfLocked(id, "", id+" unregistered", &o)
		} else {
			c.reg.byID[id] = kept
		}
	}
	c.mu.Unlock()
	if len(gone) > 0 {
		c.log.Info("registrations gone while disconnected removed", "count", len(gone))
	}
	c.flush(o)
}
