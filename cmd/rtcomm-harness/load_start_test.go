package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

func TestLoadResolveShard(t *testing.T) {
	t.Parallel()
	env := func(k string) (string, bool) {
		if k == "JOB_COMPLETION_INDEX" {
			return "1", true
		}
		return "", false
	}
	got, err := loadOptions{shardEnv: "JOB_COMPLETION_INDEX", shards: 3}.resolveShard(env)
	if err != nil || got != (loadgen.Shard{Index: 1, Count: 3}) {
		t.Errorf("--shard-index-env JOB_COMPLETION_INDEX --shards 3: %v, %v", got, err)
	}
	if got, err := (loadOptions{shard: "2/4"}).resolveShard(env); err != nil || got != (loadgen.Shard{Index: 2, Count: 4}) {
		t.Errorf("--shard 2/4: %v, %v", got, err)
	}
	if got, err := (loadOptions{}).resolveShard(env); err != nil || got != loadgen.Whole {
		t.Errorf("no shard flags: %v, %v", got, err)
	}
	for _, c := range []struct {
		o    loadOptions
		want string
	}{
		{loadOptions{shard: "0/3", shardEnv: "JOB_COMPLETION_INDEX", shards: 3}, "not both"},
		{loadOptions{shardEnv: "JOB_COMPLETION_INDEX"}, "needs --shards"},
		{loadOptions{shards: 3}, "needs --shard-index-env"},
		{loadOptions{shardEnv: "NOPE", shards: 3}, "not set"},
		{loadOptions{shardEnv: "JOB_COMPLETION_INDEX", shards: 1}, "must be in [0, 1)"},
	} {
		if _, err := c.o.resolveShard(env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}

// TestLoadStartAt: with --start-at the load window starts at the common start, not before,
// after the endpoints are up; params record the start.
func TestLoadStartAt(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	at := time.Now().Add(3 * time.Second)
	o.startAt = at.UTC().Format(time.RFC3339Nano)
	out := runLoadValid(t, o)
	sum, err := results.Load(o.out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Start.Before(at) {
		t.Errorf("window started %s, before the common start %s", sum.Start, at)
	}
	if len(sum.Invalid) > 0 || sum.Params.Extra["start_at"] != o.startAt {
		t.Errorf("invalid %v, params start_at %v (want %s)", sum.Invalid, sum.Params.Extra["start_at"], o.startAt)
	}
	if !strings.Contains(out.String(), "waiting") {
		t.Errorf("output does not say it waits for the start:\n%s", out.String())
	}
}

// TestLoadStartNotReady: a shard that is ready only after the common start says so, still
// measures (nothing is lost), and the run is invalid: exit 2, summary.invalid says why.
func TestLoadStartNotReady(t *testing.T) {
	t.Parallel()
	o := tinyLoad(t)
	o.shard = "1/2"
	o.startAt = time.Now().Add(-2 * time.Second).UTC().Format(time.RFC3339)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitLoadInvalid || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("want exit 2 naming the shard not ready, got %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "NOT READY: shard 1/2") {
		t.Errorf("output does not say the shard was not ready:\n%s", out.String())
	}
	sum, err := results.Load(o.out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tally.Attempts == 0 || len(sum.Invalid) == 0 || !strings.Contains(sum.Invalid[0], "not ready at the common start") {
		t.Errorf("attempts %d, invalid %q", sum.Tally.Attempts, sum.Invalid)
	}
}
