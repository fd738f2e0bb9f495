package sim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// States of a checked message. A message moves from inFlight to delivered or lost exactly
// once (compare-and-swap: the receiver and the loss sweep race for it), or back to unsent
// when its publish failed before it went out.
const (
	unsent uint32 = iota
	inFlight
	delivered
	lost
	unchecked // sent, but its arrival is not checked (see sendICE)
)

// check is one message a call sends. sent is written under the call's mutex before the
// message is queued in the ledger (whose mutex publishes it to the sweep).
type check struct {
	sent  time.Time
	state atomic.Uint32
}

// ledger holds a step's checked messages in send order. It declares each lost that is not
// delivered within the loss timeout of its own send (sweep), and counts the messages in
// flight from their states, independently of the sent/delivered/lost counters, so the
// accounting balance can fail.
type ledger struct {
	timeout time.Duration
	rec     *metrics.Recorder

	mu   sync.Mutex
	q    []entry // q[head:] are the messages not yet past their loss timeout
	head int

	sending atomic.Int64 // publishes of checked messages in progress
}

type entry struct {
	ck   *check
	sent time.Time
}

// open marks ck in flight from now and queues it for the loss sweep; the caller holds the
// call's mutex and counts the send (or withdraws it) with closeSend once the publish returned.
func (l *ledger) open(ck *check) {
	now := time.Now()
	ck.sent = now
	ck.state.Store(inFlight)
	l.sending.Add(1)
	l.mu.Lock()
	l.q = append(l.q, entry{ck: ck, sent: now})
	l.mu.Unlock()
}

// closeSend ends a publish open started: counted as sent, or withdrawn when it failed
// before the message went out.
func (l *ledger) closeSend(ck *check, err error) {
	defer l.sending.Add(-1)
	if err != nil && !mayHaveGoneOut(err) {
		if ck.state.CompareAndSwap(inFlight, unsent) {
			return
		}
		// It arrived (or was declared lost) although the publish reported an error: it
		// went out after all.
	}
	l.rec.Add(metrics.Sent, 1)
}

// sweep declares lost every message sent more than the loss timeout before now and still
// in flight, and drops settled messages from the queue.
func (l *ledger) sweep(now time.Time) {
	var n uint64
	l.mu.Lock()
	for l.head < len(l.q) && now.Sub(l.q[l.head].sent) >= l.timeout {
		if l.q[l.head].ck.state.CompareAndSwap(inFlight, lost) {
			n++
		}
		l.q[l.head] = entry{}
		l.head++
	}
	if l.head > 4096 && l.head*2 > len(l.q) {
		l.q = append(l.q[:0], l.q[l.head:]...)
		l.head = 0
	}
	l.mu.Unlock()
	if n > 0 {
		l.rec.Add(metrics.Lost, n)
	}
}

// inFlight counts the queued messages whose state is in flight.
func (l *ledger) inFlight() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n uint64
	for _, e := range l.q[l.head:] {
		if e.ck.state.Load() == inFlight {
			n++
		}
	}
	return n
}

// lastSend returns the send time of the newest queued message (zero when none).
func (l *ledger) lastSend() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == len(l.q) {
		return time.Time{}
	}
	return l.q[len(l.q)-1].sent
}

// digester computes content digests of messages: the result, reason and payload, with the
// payload in canonical JSON (keys sorted, no insignificant space), so a target that
// re-encodes a payload without changing it does not alter it. Canonical forms are cached
// by the raw payload: a faithful target sends the same few payloads (the fixtures) over and
// over.
type digester struct {
	seed  maphash.Seed
	mu    sync.Mutex
	cache map[string]uint64
}

const maxDigestCache = 1024

func newDigester() *digester {
	return &digester{seed: maphash.MakeSeed(), cache: make(map[string]uint64)}
}

// message returns the digest of m's result, reason and payload.
func (d *digester) message(m *spec.Message) uint64 {
	return d.parts(string(m.Result), m.Reason, m.Payload)
}

// parts returns the digest of a result, a reason and a payload.
func (d *digester) parts(result, reason string, payload json.RawMessage) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(result)
	h.WriteByte(0)
	h.WriteString(reason)
	h.WriteByte(0)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], d.payload(payload))
	h.Write(b[:])
	return h.Sum64()
}

// payload returns the digest of a payload's canonical JSON; an absent or null payload and
// one that is not JSON each digest as their raw bytes.
func (d *digester) payload(raw json.RawMessage) uint64 {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0
	}
	d.mu.Lock()
	v, ok := d.cache[string(raw)]
	d.mu.Unlock()
	if ok {
		return v
	}
	canon := raw
	var x any
	if json.Unmarshal(raw, &x) == nil {
		if b, err := json.Marshal(x); err == nil {
			canon = b
		}
	}
	v = maphash.Bytes(d.seed, canon) | 1 // never 0, the absent payload's digest
	d.mu.Lock()
	if len(d.cache) < maxDigestCache {
		d.cache[string(raw)] = v
	}
	d.mu.Unlock()
	return v
}

// sessionIDs issues the sigSessIDs of a pool's calls: version-4-shaped UUIDs that carry the
// pool's random 48-bit nonce and a sequence number, so a delivery for a session this pool
// never created is recognized as made up even after the call it names has been forgotten.
type sessionIDs struct {
	nonce [6]byte
	seq   atomic.Uint64
}

func (s *sessionIDs) init() {
	r := uuid.New()
	copy(s.nonce[:], r[:6])
}

// next returns a new session ID.
func (s *sessionIDs) next() string {
	var u uuid.UUID
	copy(u[:6], s.nonce[:])
	u[6] = 0x40 // version 4
	binary.BigEndian.PutUint64(u[8:], s.seq.Add(1))
	u[8] = 0x80 | u[8]&0x3f // RFC 4122 variant
	return u.String()
}

// issued reports whether id is one this pool created.
func (s *sessionIDs) issued(id string) bool {
	u, err := uuid.Parse(id)
	if err != nil || !bytes.Equal(u[:6], s.nonce[:]) || u[6] != 0x40 || u[7] != 0 {
		return false
	}
	n := binary.BigEndian.Uint64(u[8:]) &^ (0xc0 << 56)
	return n >= 1 && n <= s.seq.Load()
}
