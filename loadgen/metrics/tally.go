package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Outcome is how one call attempt ended; every attempt ends in exactly one.
type Outcome uint8

// Call outcomes. Everything but Success and Aborted counts as an error.
const (
	Success  Outcome = iota // RESPONSE SUCCESS with an answer
	Failure                 // RESPONSE FAILURE from the connector, or a local error (reason says which)
	Timeout                 // no PRANSWER or RESPONSE before the client timeout
	Rejected                // the callee answered RESPONSE FAILURE
	NoAnswer                // PRANSWER came but no final RESPONSE within the hold timeout
	Aborted                 // still in flight when the run ended; not an error
)

// NumOutcomes is the number of outcomes; Outcome values are 0..NumOutcomes-1.
const NumOutcomes = int(Aborted) + 1

var outcomeNames = [NumOutcomes]string{"success", "failure", "timeout", "rejected", "no_answer", "aborted"}

// String returns the outcome's name as used in summaries.
func (o Outcome) String() string {
	if int(o) < NumOutcomes {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Outcomes counts attempts per outcome; it encodes as a JSON object keyed by outcome name.
type Outcomes [NumOutcomes]uint64

// MarshalJSON writes {"success": n, ...} with every outcome present.
func (o Outcomes) MarshalJSON() ([]byte, error) {
	m := make(map[string]uint64, NumOutcomes)
	for i, n := range o {
		m[outcomeNames[i]] = n
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the object MarshalJSON writes and rejects unknown outcomes.
func (o *Outcomes) UnmarshalJSON(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*o = Outcomes{}
	for k, n := range m {
		i := indexOf(outcomeNames[:], k)
		if i < 0 {
			return fmt.Errorf("unknown outcome %q", k)
		}
		o[i] = n
	}
	return nil
}

func indexOf(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}

// Tally is a point-in-time copy of a run's accounting. Counts add across shards; ratios are
// derived, never stored, so merged tallies stay exact.
type Tally struct {
	Attempts uint64            `json:"attempts"`          // call attempts begun
	Outcomes Outcomes          `json:"outcomes"`          // attempts ended, by outcome
	Reasons  map[string]uint64 `json:"reasons,omitempty"` // "<outcome>: <reason>" for non-success ends

	Sent      uint64 `json:"sent"`      // messages sent that the harness expects to see arrive (checked)
	Delivered uint64 `json:"delivered"` // of those, seen intact at their receiver
	Lost      uint64 `json:"lost"`      // of those, not seen intact within the loss timeout of their send
	// InFlight: of those, neither delivered nor lost (yet, or at the end). Counted from the
	// messages' own states by the tracker that holds them (Recorder.TrackInFlight), not as
	// the difference of the other three, so the balance can fail.
	InFlight uint64 `json:"in_flight"`

	// Deliveries that did not deliver a checked message as sent. Each is matched to its
	// cause by method, transID, sigSessID, sender level and content digest.
	Duplicated uint64 `json:"duplicated"`   // a second (or later) copy of a delivered message
	Misrouted  uint64 `json:"misrouted"`    // a message of ours at the wrong inbox or with the wrong sender level
	Altered    uint64 `json:"altered"`      // a message of ours whose content or transID changed on the way
	Unexpected uint64 `json:"unexpected"`   // a message nothing of ours caused (made up by the target)
	OutOfOrder uint64 `json:"out_of_order"` // an ICE candidate delivered after a later one of the same session and direction
	Malformed  uint64 `json:"malformed"`    // payloads that are not valid rtcomm JSON

	LateStarts   uint64 `json:"late_starts"`     // calls the generator started later than the threshold
	MaxLateLagUS int64  `json:"max_late_lag_us"` // largest lateness of a late start, µs
	Clamped      uint64 `json:"clamped"`         // latencies outside the histogram range, clamped
}

// Ended returns the number of attempts that have an outcome.
func (t Tally) Ended() uint64 {
	var n uint64
	for _, c := range t.Outcomes {
		n += c
	}
	return n
}

// Active returns the attempts begun but not yet ended (calls in progress).
func (t Tally) Active() uint64 {
	if e := t.Ended(); t.Attempts > e {
		return t.Attempts - e
	}
	return 0
}

// Completed returns the attempts that ended in a verdict on the target (all but aborted).
func (t Tally) Completed() uint64 { return t.Ended() - t.Outcomes[Aborted] }

// Errors returns the completed attempts that did not succeed.
func (t Tally) Errors() uint64 { return t.Completed() - t.Outcomes[Success] }

// ErrorRatio returns Errors/Completed; ok is false when nothing completed.
func (t Tally) ErrorRatio() (ratio float64, ok bool) { return ratio2(t.Errors(), t.Completed()) }

// TimeoutRatio returns timeouts/Completed; ok is false when nothing completed.
func (t Tally) TimeoutRatio() (ratio float64, ok bool) {
	return ratio2(t.Outcomes[Timeout], t.Completed())
}

// LostRatio returns Lost/Sent; ok is false when nothing was sent.
func (t Tally) LostRatio() (ratio float64, ok bool) { return ratio2(t.Lost, t.Sent) }

// LateRatio returns LateStarts/Attempts; ok is false when nothing was attempted.
func (t Tally) LateRatio() (ratio float64, ok bool) { return ratio2(t.LateStarts, t.Attempts) }

func ratio2(n, d uint64) (float64, bool) {
	if d == 0 {
		return 0, false
	}
	return float64(n) / float64(d), true
}

// MaxLateLag returns the largest lateness among late starts.
func (t Tally) MaxLateLag() time.Duration { return time.Duration(t.MaxLateLagUS) * time.Microsecond }

// Settled returns a copy in which every active attempt is counted as Aborted, as at the end
// of a run (used when a run stopped without closing its recorder, e.g. after a crash).
func (t Tally) Settled() Tally {
	s := t.clone()
	s.Outcomes[Aborted] += s.Active()
	return s
}

// Check verifies the accounting invariants of a closed tally: every attempt has exactly one
// outcome (attempts == sum of outcomes) and every message is accounted for
// (sent == delivered + lost + in-flight, three counts kept by different parties: the
// senders, the receivers and the loss sweep, and the tracker's count of open messages).
func (t Tally) Check() error {
	var errs []error
	if e := t.Ended(); e != t.Attempts {
		errs = append(errs, fmt.Errorf("attempts %d != sum of outcomes %d (%v)", t.Attempts, e, t.outcomeMap()))
	}
	if sum := t.Delivered + t.Lost + t.InFlight; sum != t.Sent {
		errs = append(errs, fmt.Errorf("sent %d != delivered %d + lost %d + in-flight %d", t.Sent, t.Delivered, t.Lost, t.InFlight))
	}
	var reasons uint64
	for _, n := range t.Reasons {
		reasons += n
	}
	if nonSuccess := t.Ended() - t.Outcomes[Success]; reasons > nonSuccess {
		errs = append(errs, fmt.Errorf("%d reasons for %d non-success outcomes", reasons, nonSuccess))
	}
	if t.LateStarts > t.Attempts {
		errs = append(errs, fmt.Errorf("late starts %d > attempts %d", t.LateStarts, t.Attempts))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tally: %w", err)
	}
	return nil
}

func (t Tally) outcomeMap() map[string]uint64 {
	m := make(map[string]uint64, NumOutcomes)
	for i, n := range t.Outcomes {
		if n != 0 {
			m[outcomeNames[i]] = n
		}
	}
	return m
}

// Add returns the sum of two tallies (counts added, max lag maxed), for merging shards.
func (t Tally) Add(o Tally) Tally {
	s := t.clone()
	s.Attempts += o.Attempts
	for i := range s.Outcomes {
		s.Outcomes[i] += o.Outcomes[i]
	}
	for k, n := range o.Reasons {
		if s.Reasons == nil {
			s.Reasons = make(map[string]uint64)
		}
		s.Reasons[k] += n
	}
	s.Sent += o.Sent
	s.Delivered += o.Delivered
	s.Lost += o.Lost
	s.InFlight += o.InFlight
	s.Duplicated += o.Duplicated
	s.Misrouted += o.Misrouted
	s.Altered += o.Altered
	s.Unexpected += o.Unexpected
	s.OutOfOrder += o.OutOfOrder
	s.Malformed += o.Malformed
	s.LateStarts += o.LateStarts
	s.MaxLateLagUS = max(s.MaxLateLagUS, o.MaxLateLagUS)
	s.Clamped += o.Clamped
	return s
}

func (t Tally) clone() Tally {
	c := t
	c.Reasons = maps.Clone(t.Reasons)
	return c
}
