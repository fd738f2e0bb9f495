package loadgen

import (
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Shard{"0/1": Whole, "": Whole, "2/4": {2, 4}, " 3 / 8 ": {3, 8}} {
		got, err := ParseShard(in)
		if err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"4/4": "must be in [0, 4)", "-1/4": "must be in", "1/0": "at least 1",
		"2": "want i/N", "a/4": "index", "1/b": "count", "1/2/3": "count",
	} {
		if _, err := ParseShard(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseShard(%q) error = %v, want it to mention %q", in, err, msg)
		}
	}
	if s := (Shard{2, 4}).String(); s != "2/4" {
		t.Errorf("String = %q", s)
	}
}

// TestShardsCoverEveryIDOnce: for any N and ID space, the N shards own every index exactly
// once, Owns agrees with Indices, Len counts them, and the rates add up.
func TestShardsCoverEveryIDOnce(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 7; n++ {
		for total := range 40 {
			owners := make([]int, total)
			for i := range n {
				sh := Shard{Index: i, Count: n}
				count := 0
				for id := range sh.Indices(total) {
					owners[id]++
					count++
					if !sh.Owns(id) {
						t.Fatalf("%s yields %d but does not own it", sh, id)
					}
				}
				if count != sh.Len(total) {
					t.Fatalf("%s of %d: Len %d, yields %d", sh, total, sh.Len(total), count)
				}
			}
			for id, c := range owners {
				if c != 1 {
					t.Fatalf("N=%d total=%d: id %d owned %d times", n, total, id, c)
				}
			}
		}
		var sum float64
		for i := range n {
			sum += Shard{Index: i, Count: n}.Rate(450)
		}
		if d := sum - 450; d > 1e-9 || d < -1e-9 {
			t.Errorf("N=%d: shard rates add to %g", n, sum)
		}
	}
	if (Shard{}).Len(10) != 0 || (Shard{}).Owns(0) {
		t.Error("the zero Shard owns something")
	}
}

func TestShardFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"JOB_COMPLETION_INDEX": "2", "BAD": "x", "BIG": "3", "NEG": "-1"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := ShardFromEnv("JOB_COMPLETION_INDEX", 3, lookup)
	if err != nil || got != (Shard{2, 3}) {
		t.Fatalf("ShardFromEnv = %v, %v; want 2/3", got, err)
	}
	// Same shard as --shard 2/3: one ID space, one rate split.
	if p, _ := ParseShard("2/3"); p != got {
		t.Errorf("env shard %v differs from --shard 2/3 (%v)", got, p)
	}
	for _, c := range []struct {
		name  string
		count int
		want  string
	}{
		{"UNSET", 3, "not set"}, {"BAD", 3, "invalid syntax"}, {"BIG", 3, "must be in [0, 3)"},
		{"NEG", 3, "must be in"}, {"JOB_COMPLETION_INDEX", 0, "at least 1"}, {"", 3, "empty name"},
	} {
		if _, err := ShardFromEnv(c.name, c.count, lookup); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ShardFromEnv(%q, %d) error %v, want %q", c.name, c.count, err, c.want)
		}
	}
}
