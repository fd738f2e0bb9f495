package connector

import (
	"strings"
	"testing"
)

// TestICEURLConfig: a malformed ICE URL is refused with a clear error (SQ-007); a TURN URL
// rtcomm.js cannot parse is accepted (other clients can) and only warned about (SQ-009).
func TestICEURLConfig(t *testing.T) {
	t.Parallel()
	for url, ok := range map[string]bool{
		"stun:stun.example.com:3478":                    true,
		"turn:user@turn.example.com:3478:credential:pw": true,
		"turn:turn.example.com:3478?transport=tcp":      true,
		"turn":                    false,
		"http://stun.example.com": false,
	} {
		cfg := DefaultConfig()
		cfg.BrokerURL, cfg.ICEURLs = "tcp://127.0.0.1:1", []string{url}
		_, err := New(cfg)
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "SQ-007")) {
			t.Errorf("New with ICE URL %q: expected ok=%v, actual %v", url, ok, err)
		}
	}
}
