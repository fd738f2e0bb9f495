// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2026 rtcomm-harness

package mqtt

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Patched (rtcomm-harness, PATCHED.md): upstream mochi queues a client's pending writes in a
// `chan *packets.Packet` of Capabilities.MaximumClientWritesPending slots, allocated whole at
// connect (8,192 pointers = 64 KB per client by default) and scanned by every GC cycle
// whether the client ever has a backlog or not. outboundQueue holds the same FIFO with the
// same limit but starts small, grows by doubling only while a backlog lasts, and lets a large
// ring go once it is drained, so an idle client costs a few pointers and a burst may still
// use the whole limit.

const (
	// outboundQueueMin is the ring allocated at a client's first delivery.
	outboundQueueMin = 8
	// outboundQueueKeep is the largest ring kept once drained; a larger one is released so a
	// client that had one burst does not hold its peak for the rest of its connection.
	outboundQueueKeep = 256
)

// outboundQueue is a bounded FIFO of packets waiting for a client's WriteLoop. Any number of
// goroutines push; one (WriteLoop) pops.
type outboundQueue struct {
	mu    sync.Mutex
	ring  []*packets.Packet // ring[head], ..., ring[(head+n-1) % len(ring)] are queued
	head  int
	n     int
	limit int
	// ready holds a token when something was pushed since WriteLoop last emptied the queue
	// (capacity 1, so a push never blocks and a wake-up is never lost: the token is sent
	// after the packet is in the ring).
	ready chan struct{}
}

// newOutboundQueue returns an empty queue that holds at most limit packets.
func newOutboundQueue(limit int) *outboundQueue {
	if limit < 1 {
		limit = 1
	}
	return &outboundQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push appends pk, growing the ring if needed; it reports false, queueing nothing, when the
// queue already holds limit packets (mochi then counts a dropped message, as it did for a
// full channel).
func (q *outboundQueue) push(pk *packets.Packet) bool {
	q.mu.Lock()
	if q.n == q.limit {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = pk
	q.n++
	first := q.n == 1
	q.mu.Unlock()
	if first { // otherwise WriteLoop has not yet found the queue empty, so it will pop this one too
		select {
		case q.ready <- struct{}{}:
		default: // a token is already waiting
		}
	}
	return true
}

// grow doubles the ring (at least outboundQueueMin, at most limit), keeping the order.
func (q *outboundQueue) grow() {
	size := 2 * len(q.ring)
	if size < outboundQueueMin {
		size = outboundQueueMin
	}
	if size > q.limit {
		size = q.limit
	}
	ring := make([]*packets.Packet, size)
	if q.n > 0 {
		k := copy(ring, q.ring[q.head:])
		if k < q.n {
			copy(ring[k:], q.ring[:q.n-k])
		}
	}
	q.ring, q.head = ring, 0
}

// pop removes and returns the oldest packet, or nil when the queue is empty.
func (q *outboundQueue) pop() *packets.Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	pk := q.ring[q.head]
	q.ring[q.head] = nil // the written packet must not stay reachable from the ring
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > outboundQueueKeep {
			q.ring = nil
		}
	}
	return pk
}

// len returns the number of queued packets (what len(chan) was to upstream's WritePacket:
// more than zero means more writes follow, so the write may be buffered).
func (q *outboundQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
