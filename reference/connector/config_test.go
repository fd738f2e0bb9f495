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

// TestQueueShareSyntax: the advertised queue topic is the broker's shared-subscription filter
// with the queue's topic behind it; a syntax that would hide the topic is refused. QUE-001
func TestQueueShareSyntax(t *testing.T) {
	t.Parallel()
	for share, want := range map[string]string{
		"":                             "$share/rtcomm-queue//rtcomm/support/#",
		"$SharedSubscription/{group}/": "$SharedSubscription/rtcomm-queue//rtcomm/support/#",
		QueueShareNone:                 "/rtcomm/support/#",
		"$share/{group}":               "", // no '/' before the topic: refused
		"$share/{group}/+/":            "", // a wildcard level in front of the topic: refused
	} {
		cfg := DefaultConfig()
		cfg.BrokerURL, cfg.Queues, cfg.QueueShare = "tcp://127.0.0.1:1", []string{"support"}, share
		c, err := New(cfg)
		switch {
		case want == "" && err == nil:
			t.Errorf("QueueShare %q: expected an error, actual %q", share, c.queueFilters["support"])
		case want != "" && err != nil:
			t.Errorf("QueueShare %q: %v", share, err)
		case want != "" && c.queueFilters["support"] != want:
			t.Errorf("QueueShare %q: expected %q, actual %q", share, want, c.queueFilters["support"])
		}
	}
}
