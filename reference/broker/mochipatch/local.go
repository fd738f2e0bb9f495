// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2026 rtcomm-harness

package mqtt

import (
	"errors"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Patched (rtcomm-harness, PATCHED.md item 8): in-process clients. A client of the embedding
// program (the reference connector inside `serve`) that would otherwise reach the broker over a
// loopback socket, paying an encode, a write and a read syscall and a decode in each direction
// for every message, connects here instead: its packets go through the same steps as a
// connection's (OnPacketRead, processPacket with every hook: authentication, ACLs, OnPublish),
// under its own client ID and username, and what the broker writes to it goes to a LocalSink
// instead of a socket: PUBLISH through the client's outbound queue and its writer goroutine (one
// at a time, in order; a full queue drops, counted, as for any client), everything else at once.
// Unlike upstream's inline client (Options.InlineClient) it is an ordinary client: no ACL or
// validity check is skipped, it has a will, shared subscriptions, QoS 1 in flight, and it can be
// taken over by a CONNECT with its client ID like any other session.

// LocalSink receives what the broker writes to an in-process client.
type LocalSink interface {
	// Deliver receives a PUBLISH for the client: one at a time, in the order queued, on the
	// client's writer goroutine (so a Deliver that publishes into the broker cannot deadlock
	// it: the broker only queues what that publish delivers). pk.Payload is shared with the
	// other subscribers' deliveries and must not be written to.
	Deliver(cl *Client, pk packets.Packet)
	// Control receives every other packet the broker writes to the client (CONNACK, PUBACK,
	// SUBACK, UNSUBACK, PINGRESP, DISCONNECT), synchronously in the goroutine whose packet
	// caused it (InjectLocal, ConnectLocal) or that disconnects the client (a takeover).
	Control(cl *Client, pk packets.Packet)
}

// ErrLocalRefused wraps the CONNACK code of an in-process CONNECT the broker refused.
var ErrLocalRefused = errors.New("in-process connect refused")

// ConnectLocal attaches an in-process client, as attachClient does for a connection: pk is its
// CONNECT (ProtocolVersion and Connect fields set). It returns the client and a channel closed
// once the session has ended (the client stopped by DISCONNECT, a takeover, a refused packet,
// Stop or the server closing) and the broker has done what a connection's end does: the will
// unless it was a clean DISCONNECT, OnDisconnect, and a clean session's subscriptions removed.
func (s *Server) ConnectLocal(listener string, pk packets.Packet, sink LocalSink) (*Client, <-chan struct{}, error) {
	cl := s.NewClient(nil, listener, "", false)
	cl.Net.local = sink
	cl.Net.wake = make(chan struct{}, 1)
	cl.Net.Remote = listener
	pk.FixedHeader.Type = packets.Connect
	atomic.AddInt64(&s.Info.PacketsReceived, 1)
	pk, err := s.hooks.OnPacketRead(cl, pk) // as ReadPacket does for a connection's CONNECT
	if err != nil {
		cl.Stop(err)
		return nil, nil, err
	}
	cl.ParseConnect(listener, pk)
	if atomic.LoadInt64(&s.Info.ClientsConnected) >= s.Options.Capabilities.MaximumClients {
		_ = s.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		cl.Stop(packets.ErrServerBusy)
		return nil, nil, errors.Join(ErrLocalRefused, packets.ErrServerBusy)
	}
	if code := s.validateConnect(cl, pk); code != packets.CodeSuccess {
		_ = s.SendConnack(cl, code, false, nil)
		cl.Stop(code)
		return nil, nil, errors.Join(ErrLocalRefused, code)
	}
	if err := s.hooks.OnConnect(cl, pk); err != nil {
		cl.Stop(err)
		return nil, nil, errors.Join(ErrLocalRefused, err)
	}
	if !s.hooks.OnConnectAuthenticate(cl, pk) {
		_ = s.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil)
		cl.Stop(packets.ErrBadUsernameOrPassword)
		return nil, nil, errors.Join(ErrLocalRefused, packets.ErrBadUsernameOrPassword)
	}
	atomic.AddInt64(&s.Info.ClientsConnected, 1)
	s.hooks.OnSessionEstablish(cl, pk)
	present := s.inheritClientSession(pk, cl)
	s.Clients.Add(cl)
	if err := s.SendConnack(cl, packets.CodeSuccess, present, nil); err != nil {
		cl.Stop(err)
	}
	s.loop.willDelayed.Delete(cl.ID)
	if present {
		_ = cl.ResendInflightMessages(true)
	}
	s.hooks.OnSessionEstablished(cl, pk)

	done := make(chan struct{})
	go func() {
		defer close(done)
		<-cl.State.open.Done()
		s.endLocal(cl)
	}()
	go cl.localWriter()
	return cl, done, nil
}

// startWriter makes sure a writer pops what was just pushed (the push reported that none was
// running): a new WriteLoop for a connection; for an in-process client, a wake-up of its one
// long-lived writer. A goroutine started per backlog, as for connections, would start with a
// small stack and grow it (copystack) through the deep handler chain of every message: 14 % of
// the reference's CPU in the first profile of the in-process link.
func (cl *Client) startWriter() {
	if cl.Net.local == nil {
		go cl.WriteLoop()
		return
	}
	select {
	case cl.Net.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// localWriter is an in-process client's writer: it delivers the queue until it is empty, then
// parks until startWriter wakes it, until the session ends.
func (cl *Client) localWriter() {
	done := cl.State.open.Done()
	for {
		select {
		case <-cl.Net.wake:
		case <-done:
			return
		}
		cl.WriteLoop() // returns once the queue is empty (the next push wakes us) or the client closed
	}
}

// endLocal is the end of attachClient for an in-process client whose session has stopped.
func (s *Server) endLocal(cl *Client) {
	defer atomic.AddInt64(&s.Info.ClientsConnected, -1)
	err := cl.StopCause()
	if code, ok := err.(packets.Code); ok && code == packets.CodeDisconnect {
		err = nil                   // a clean DISCONNECT: the read loop would have returned nil
		cl.Properties.Will = Will{} // [MQTT-3.14.4-3] [MQTT-3.1.2-10]
	} else {
		s.sendLWT(cl)
	}
	s.Log.Debug("in-process client disconnected", "error", err, "client", cl.ID, "listener", cl.Net.Listener)
	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) || (cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	s.hooks.OnDisconnect(cl, err, expire)
	if expire && !cl.IsTakenOver() {
		cl.ClearInflights()
		s.UnsubscribeClient(cl)
		s.Clients.Delete(cl.ID)
	}
}

// InjectLocal hands the broker one packet from an in-process client, as a connection's read loop
// does: OnPacketRead, then processPacket. As for a connection, an error ends the session (the
// will is published). Callers serialise their packets as one read loop would.
func (s *Server) InjectLocal(cl *Client, pk packets.Packet) error {
	if cl.Closed() {
		return ErrConnectionClosed
	}
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	atomic.AddInt64(&s.Info.PacketsReceived, 1)
	if pk.FixedHeader.Type == packets.Publish {
		atomic.AddInt64(&s.Info.MessagesReceived, 1)
	}
	pk, err := s.hooks.OnPacketRead(cl, pk)
	if err == nil {
		err = s.receivePacket(cl, pk)
	}
	if err != nil {
		cl.Stop(err)
		return err
	}
	return nil
}

// IsLocal reports whether the client is an in-process one (ConnectLocal).
func (cl *Client) IsLocal() bool { return cl.Net.local != nil }

// writeLocal is WritePacket for an in-process client: a PUBLISH joins the outbound queue (so
// Deliver stays one at a time and in order), anything else goes to the sink at once.
func (cl *Client) writeLocal(pk packets.Packet) error {
	if pk.FixedHeader.Type == packets.Publish {
		if ok, start := cl.State.outbound.push(&pk); ok {
			atomic.AddInt32(&cl.State.outboundQty, 1)
			if start {
				cl.startWriter()
			}
			return nil
		}
		atomic.AddInt64(&cl.ops.info.MessagesDropped, 1)
		cl.ops.hooks.OnPublishDropped(cl, pk)
		return packets.ErrPendingClientWritesExceeded
	}
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	pk = cl.ops.hooks.OnPacketEncode(cl, pk)
	atomic.AddInt64(&cl.ops.info.PacketsSent, 1)
	cl.Net.local.Control(cl, pk)
	cl.ops.hooks.OnPacketSent(cl, pk, nil) // no encoded bytes: nothing was encoded
	return nil
}

// deliverLocal is WriteLoop's write for an in-process client: the PUBLISH goes to the sink.
func (cl *Client) deliverLocal(pk packets.Packet) {
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	pk = cl.ops.hooks.OnPacketEncode(cl, pk)
	atomic.AddInt64(&cl.ops.info.PacketsSent, 1)
	atomic.AddInt64(&cl.ops.info.MessagesSent, 1)
	// OnPacketSent before Deliver: on a socket the write comes before the client reads it.
	cl.ops.hooks.OnPacketSent(cl, pk, nil)
	cl.Net.local.Deliver(cl, pk)
}
