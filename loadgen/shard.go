package loadgen

import (
	"fmt"
	"iter"
	"strconv"
	"strings"
)

// Shard is one of Count load generators that share a run: it owns the endpoint indices
// congruent to Index modulo Count and offers 1/Count of the rate. The zero value is invalid;
// Whole is the single shard of an unsharded run.
type Shard struct {
	Index int // 0..Count-1
	Count int // number of shards, at least 1
}

// Whole is the only shard of an unsharded run.
var Whole = Shard{Index: 0, Count: 1}

// ParseShard parses "i/N" (0 <= i < N); the empty string means Whole.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Whole, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want i/N, e.g. 0/4", s)
	}
	i, err := strconv.Atoi(strings.TrimSpace(is))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: index: %w", s, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: count: %w", s, err)
	}
	sh := Shard{Index: i, Count: n}
	if err := sh.Validate(); err != nil {
		return Shard{}, fmt.Errorf("shard %q: %w", s, err)
	}
	return sh, nil
}

// Validate reports whether the shard is usable.
func (s Shard) Validate() error {
	if s.Count < 1 {
		return fmt.Errorf("count %d must be at least 1", s.Count)
	}
	if s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("index %d must be in [0, %d) (shards are numbered from 0)", s.Index, s.Count)
	}
	return nil
}

// String formats the shard as "i/N".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Owns reports whether the endpoint with the given index belongs to this shard.
func (s Shard) Owns(index int) bool { return s.Count > 0 && index >= 0 && index%s.Count == s.Index }

// Indices yields the indices in [0, total) that this shard owns, in increasing order.
func (s Shard) Indices(total int) iter.Seq[int] {
	return func(yield func(int) bool) {
		if s.Validate() != nil {
			return
		}
		for i := s.Index; i < total; i += s.Count {
			if !yield(i) {
				return
			}
		}
	}
}

// Len returns how many of the indices in [0, total) this shard owns.
func (s Shard) Len(total int) int {
	if s.Validate() != nil || total <= s.Index {
		return 0
	}
	return (total-s.Index-1)/s.Count + 1
}

// Rate returns this shard's part of a total rate.
func (s Shard) Rate(total float64) float64 {
	if s.Count < 1 {
		return 0
	}
	return total / float64(s.Count)
}

// ShardFromEnv builds shard i/count with i read from the environment variable name, as a
// Kubernetes Indexed Job gives each pod its JOB_COMPLETION_INDEX. lookup is os.LookupEnv
// (tests pass their own). The variable must be set and hold a decimal index in [0, count).
func ShardFromEnv(name string, count int, lookup func(string) (string, bool)) (Shard, error) {
	if name == "" {
		return Shard{}, fmt.Errorf("shard index variable: empty name")
	}
	if count < 1 {
		return Shard{}, fmt.Errorf("shard index from $%s: shard count %d must be at least 1", name, count)
	}
	v, ok := lookup(name)
	if !ok {
		return Shard{}, fmt.Errorf("shard index from $%s: variable not set (an Indexed Job sets JOB_COMPLETION_INDEX)", name)
	}
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return Shard{}, fmt.Errorf("shard index from $%s=%q: %w", name, v, err)
	}
	sh := Shard{Index: i, Count: count}
	if err := sh.Validate(); err != nil {
		return Shard{}, fmt.Errorf("shard index from $%s=%q: %w", name, v, err)
	}
	return sh, nil
}
