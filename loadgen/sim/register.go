package sim

import (
	"context"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
)

// RegisterStep measures registration: it opens a pool of cfg's endpoints at cfg.RampRate
// (total over shards) with its own results directory dir, whose window is the ramp, and
// returns the summary (connect, register, service_query; no calls) and the open pool, which
// the caller closes. The summary's rate is the connection rate. On error the pool is nil.
func RegisterStep(ctx context.Context, env *Env, dir string, cfg PoolConfig, slo string) (*results.Summary, *Pool, error) {
	cfg.defaults()
	rec := metrics.NewRecorder()
	n := cfg.Shard.Len(cfg.Endpoints)
	rate := cfg.Shard.Rate(cfg.RampRate)
	shard := ""
	if cfg.Shard.Count > 1 {
		shard = cfg.Shard.String()
	}
	d := time.Duration(float64(n) / rate * float64(time.Second))
	w, err := results.Create(dir, results.Params{Target: env.Describe(), Rate: 0, Duration: results.Duration(d),
		Pacer: "constant", Shard: shard, LateThreshold: results.Duration(loadgen.DefaultLateThreshold), SLO: slo,
		Extra: map[string]any{"step": "register", "endpoints": cfg.Endpoints, "ramp_rate": cfg.RampRate,
			"ramp_rate_shard": rate, "topic_path": env.TopicPath()}}, rec)
	if err != nil {
		return nil, nil, err
	}
	pool, perr := OpenPool(ctx, env, cfg, rec)
	sum, ferr := w.Finalize(time.Time{}, ctx.Err() != nil)
	if perr != nil {
		return sum, nil, perr
	}
	if ferr != nil {
		return sum, pool, ferr
	}
	return sum, pool, nil
}
