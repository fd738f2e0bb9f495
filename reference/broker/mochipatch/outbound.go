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
//
// Upstream also parks one WriteLoop goroutine per client for the whole connection, whose stack
// every GC cycle scans (with thousands of mostly idle clients, the scan of those stacks was
// the largest GC cost left once the channels were gone). Here WriteLoop runs only while the
// client has something queued: the push that finds no writer running starts one (push
// reports it), and the writer ends when it finds the queue empty, both decided under the
// queue's lock, so a packet is never left without a writer.

const (
	// outboundQueueMin is the ring allocated at a client's first delivery.
	outboundQueueMin = 8
	// outboundQueueKeep is the largest ring kept once drained; a larger one is released so a
	// client that had one burst does not hold its peak for the rest of its connection.
	outboundQueueKeep = 256
)

// outboundQueue is a bounded FIFO of packets waiting for a client's WriteLoop. Any number of
// goroutines push; the one writer running at a time pops.
type outboundQueue struct {
	mu      sync.Mutex
	ring    []*packets.Packet // ring[head], ..., ring[(head+n-1) % len(ring)] are queued
	head    int
	n       int
	limit   int
	writing bool // a WriteLoop is running and will pop until it finds the queue empty
}

// newOutboundQueue returns an empty queue that holds at most limit packets.
func newOutboundQueue(limit int) *outboundQueue {
	if limit < 1 {
		limit = 1
	}
	return &outboundQueue{limit: limit}
}

// push appends pk, growing the ring if needed. It reports ok false, queueing nothing, when the
// queue already holds limit packets (mochi then counts a dropped message, as it did for a
// full channel), and start true when no writer is running: the caller must start one.
func (q *outboundQueue) push(pk *packets.Packet) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == q.limit {
		return false, false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = pk
	q.n++
	start = !q.writing
	q.writing = true
	return true, start
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

// pop removes and returns the oldest packet; when the queue is empty it returns nil and the
// writer that called it must end (a later push starts a new one).
func (q *outboundQueue) pop() *packets.Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		q.writing = false
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
