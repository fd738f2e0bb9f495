package broker

import "testing"

func TestNormalizeMaxPendingWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want int
		ok       bool
	}{{0, DefaultMaxPendingWrites, true}, {2048, 2048, true}, {16, 16, true}, {15, 0, false}, {-1, 0, false}, {1<<20 + 1, 0, false}} {
		cfg, err := normalize(Config{MaxPendingWrites: tc.in})
		if (err == nil) != tc.ok {
			t.Errorf("MaxPendingWrites %d: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && cfg.MaxPendingWrites != tc.want {
			t.Errorf("MaxPendingWrites %d normalized to %d, want %d", tc.in, cfg.MaxPendingWrites, tc.want)
		}
	}
}
