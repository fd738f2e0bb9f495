package watch

import (
	"fmt"
	"strconv"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverWithin is how soon after the newcomer's CONNACK the holder's connection must close
// for the CONNECT to count as a take-over: mochi closes it before it writes the CONNACK.
const takeoverWithin = 5 * time.Second

// sessionModel is which user holds each client ID on the broker, from the CONNECTs it
// accepted and the connections that ended (ID-010, ID-011, ID-012).
type sessionModel struct {
	sessions  map[string]*heldSession // client ID -> the session the broker holds for it
	claims    map[any]*sessionClaim   // conn -> its CONNECT from OnSessionEstablish until its CONNACK
	takeovers map[any]*sessionClaim   // holder's conn -> a CONNECT of another user with its client ID
}

type heldSession struct {
	user string
	conn any // nil: persisted without a connection
	at   Observation
}

type sessionClaim struct {
	conn         any
	client, user string
	at           time.Time
	holder       *heldSession // another user's session holding the client ID at OnSessionEstablish
	holderConn   any          // its connection then (nil: persisted)
	acked, gone  time.Time    // CONNACK 0 to the newcomer; the holder's connection closed
	present      bool
}

func connectEvidence(client, user string, at time.Time, what string) Observation {
	return Observation{Client: client, Time: at, Payload: []byte(fmt.Sprintf("%s: client ID %q, user %q", what, client, user))}
}

// SessionEstablishing notes a CONNECT the broker's hooks let through (mochi's
// OnSessionEstablish: authenticated, just before the broker takes over any session with the
// client ID), as user with client ID client (after any hook assigned one).
func (b *Broker) SessionEstablishing(conn any, client, user string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.ident
	s.init()
	c := &sessionClaim{conn: conn, client: client, user: user, at: at}
	if h := s.sessions[client]; h != nil && h.user != user {
		held := *h
		c.holder, c.holderConn = &held, h.conn
		if h.conn != nil {
			s.takeovers[h.conn] = c
		}
	}
	if len(s.claims) < identityKept {
		s.claims[conn] = c
	}
}

// SessionAcked judges the CONNACK written to conn for a CONNECT noted by SessionEstablishing:
// accepted (code 0) with another user's persistent session present breaks ID-011; accepted
// while another user's connection held the client ID breaks ID-010 (ID-012 when it was the
// connector's) once that connection closes (the take-over).
func (b *Broker) SessionAcked(conn any, code byte, present bool, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.ident
	c := s.claims[conn]
	if c == nil {
		return nil
	}
	if code != 0 {
		b.dropClaim(c)
		return nil
	}
	delete(s.claims, conn) // a holder still connected keeps it in takeovers until it goes
	c.acked, c.present = at, present
	if h := s.sessions[c.client]; present && h != nil {
		h.conn = conn // resumed: the session keeps the user that created it
	} else if len(s.sessions) < identityKept || h != nil {
		s.sessions[c.client] = &heldSession{user: c.user, conn: conn, at: connectEvidence(c.client, c.user, c.at, "CONNECT")}
	}
	var out []Finding
	if c.holder != nil && present && b.secure != nil {
		out = b.add(Finding{Requirement: "ID-011", Participant: BrokerParticipant,
			Expected: fmt.Sprintf("the persistent session of client ID %q, created by user %q, resumed by no other user", c.client, c.holder.user),
			Actual:   fmt.Sprintf("CONNACK 0 with session present to user %q: its queued messages and subscriptions are %q's", c.user, c.user),
			Time:     at, Evidence: []Observation{c.holder.at, connectEvidence(c.client, c.user, c.at, "CONNECT resuming it")}})
	}
	return append(out, b.takenOver(c)...)
}

// takenOver judges a CONNECT accepted while another user's connection held its client ID.
func (b *Broker) takenOver(c *sessionClaim) []Finding {
	if c.holderConn == nil || c.acked.IsZero() || c.gone.IsZero() || b.secure == nil || c.gone.Sub(c.acked) > takeoverWithin {
		return nil
	}
	req, whose := "ID-010", "user "+strconv.Quote(c.holder.user)
	if *b.secure != "" && c.holder.user == *b.secure {
		req, whose = "ID-012", "the connector (user "+strconv.Quote(c.holder.user)+")"
	}
	return b.add(Finding{Requirement: req, Participant: BrokerParticipant,
		Expected: fmt.Sprintf("the CONNECT of user %q with client ID %q, held by a live session of %s, refused (or given a session of its own) with no effect on %s", c.user, c.client, whose, whose),
		Actual:   fmt.Sprintf("CONNACK 0 and %s's connection closed: its session taken over", whose), Time: c.acked,
		Evidence: []Observation{c.holder.at, connectEvidence(c.client, c.user, c.at, "CONNECT taking it over")}})
}

func (b *Broker) dropClaim(c *sessionClaim) {
	delete(b.ident.claims, c.conn)
	if c.holderConn != nil && b.ident.takeovers[c.holderConn] == c {
		delete(b.ident.takeovers, c.holderConn)
	}
}

// SessionEnded notes a connection's end (mochi's OnDisconnect; expire: its session ends with
// it) and returns a take-over it completes (SessionAcked).
func (b *Broker) SessionEnded(conn any, client string, expire bool, at time.Time) []Finding {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.ident
	if s.sessions == nil {
		return nil
	}
	var out []Finding
	if c := s.takeovers[conn]; c != nil {
		delete(s.takeovers, conn)
		c.gone = at
		if !c.acked.IsZero() {
			out = b.takenOver(c)
		}
	}
	if c := s.claims[conn]; c != nil {
		b.dropClaim(c) // closed before its CONNACK
	}
	if h := s.sessions[client]; h != nil && h.conn == conn {
		if expire {
			delete(s.sessions, client)
		} else {
			h.conn = nil
		}
	}
	return out
}

// SessionExpired forgets a persisted session the broker expired (mochi's OnClientExpired).
func (b *Broker) SessionExpired(client string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.ident.sessions[client]; h != nil && h.conn == nil {
		delete(b.ident.sessions, client)
	}
}

// OnSessionEstablish tells the broker judge of a CONNECT every hook before it let through.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if h.Broker != nil && cl != nil {
		h.Broker.SessionEstablishing(cl, cl.ID, string(cl.Properties.Username), time.Now())
	}
}

// OnClientExpired tells the broker judge a persisted session went.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	if h.Broker != nil && cl != nil {
		h.Broker.SessionExpired(cl.ID)
	}
}
