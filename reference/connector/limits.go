package connector

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Defaults of the per-client limits (DESIGN.md, "Limits").
const (
	// DefaultRatePerClient is the sustained messages per second one sender ID may send;
	// a browser call is a few dozen messages (offer, answer, ICE candidates).
	DefaultRatePerClient = 100
	// DefaultRateBurst is how many messages a sender may send at once.
	DefaultRateBurst = 200
	// DefaultMaxSessionsPerEndpoint bounds the sessions one endpoint ID takes part in.
	DefaultMaxSessionsPerEndpoint = 100
	// DefaultMaxRegistrationsPerEndpoint bounds the appContexts one endpoint ID registers.
	DefaultMaxRegistrationsPerEndpoint = 16
	// DefaultMaxRegistrations bounds the registry.
	DefaultMaxRegistrations = 1000000
	// maxRateClients bounds the rate limiter's table; beyond it, new senders share one bucket.
	maxRateClients = 100000
)

// applyLimitDefaults fills zero limits with defaults; a negative value turns a limit off.
func applyLimitDefaults(cfg *Config) {
	l := &cfg.Limits
	def := spec.DefaultLimits()
	for _, p := range []struct {
		v *int
		d int
	}{
		{&l.MaxDepth, def.MaxDepth}, {&l.MaxIDLen, def.MaxIDLen}, {&l.MaxTopicLen, def.MaxTopicLen},
		{&l.MaxReasonLen, def.MaxReasonLen}, {&l.MaxStringLen, def.MaxStringLen},
		{&l.MaxPayload, cfg.MaxPayload},
		{&cfg.MaxSessionsPerEndpoint, DefaultMaxSessionsPerEndpoint},
		{&cfg.MaxRegistrationsPerEndpoint, DefaultMaxRegistrationsPerEndpoint},
		{&cfg.MaxRegistrations, DefaultMaxRegistrations},
		{&cfg.RateBurst, DefaultRateBurst},
	} {
		switch {
		case *p.v == 0:
			*p.v = p.d
		case *p.v < 0:
			*p.v = 0 // off
		}
	}
	switch {
	case cfg.RatePerClient == 0:
		cfg.RatePerClient = DefaultRatePerClient
	case cfg.RatePerClient < 0:
		cfg.RatePerClient = 0 // off
	}
}

// rateLimiter is a token bucket per sender ID: one flooding client spends its
// own tokens only, and its excess costs the connector a map lookup.
type rateLimiter struct {
	rate, burst float64 // tokens per second; bucket size
	mu          sync.Mutex
	m           map[string]*bucket
	overflow    bucket // shared by new senders while the table is full
}

type bucket struct {
	tokens     float64
	last       time.Time
	lastAnswer time.Time // over-limit answers are sent at most once per second per sender
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), m: map[string]*bucket{}}
}

// allow takes one token from key's bucket; answer says whether a refusal
// should be answered (the first one per second per sender) or only counted.
func (r *rateLimiter) allow(key string, now time.Time) (ok, answer bool) {
	if r == nil {
		return true, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.m[key]
	if b == nil {
		if len(r.m) >= maxRateClients {
			r.sweepLocked(now)
		}
		if len(r.m) >= maxRateClients {
			b = &r.overflow // spoofed sender IDs cannot grow the table without bound
		} else {
			b = &bucket{tokens: r.burst, last: now}
			r.m[key] = b
		}
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(r.burst, b.tokens+el*r.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	if now.Sub(b.lastAnswer) >= time.Second {
		b.lastAnswer = now
		return false, true
	}
	return false, false
}

// sweepLocked forgets senders whose bucket has refilled: they look like new ones anyway.
func (r *rateLimiter) sweepLocked(now time.Time) {
	full := time.Duration(r.burst / r.rate * float64(time.Second))
	for k, b := range r.m {
		if now.Sub(b.last) >= full {
			delete(r.m, k)
		}
	}
}

// clients is the number of senders tracked.
func (r *rateLimiter) clients() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// admit applies the per-client rate and the message limits before anything
// is decoded. key identifies the client (its sender ID). A refused message is
// answered FAILURE when it carries a transID and a usable fromTopic (over-rate
// ones at most once per second per client), else dropped; both are counted.
func (c *Connector) admit(msg mqttc.Message, key string) bool {
	if ok, answer := c.rate.allow(key, time.Now()); !ok {
		if answer {
			c.refuse(msg, "rate_limited", fmt.Sprintf("rate limit: at most %g messages/s (burst %d) per client",
				c.cfg.RatePerClient, c.cfg.RateBurst))
		} else {
			c.countFailure("rate_limited")
			c.dropped.Add(1)
		}
		return false
	}
	if err := c.limits.Check(msg.Payload); err != nil {
		code := "limit"
		var le *spec.LimitError
		if errors.As(err, &le) {
			code = le.Code()
		}
		c.refuse(msg, code, err.Error())
		return false
	}
	return true
}

// refuse answers an over-limit message from what one allocation-free scan can
// read of it (never spec.Decode: the message is what is too big).
func (c *Connector) refuse(msg mqttc.Message, code, reason string) {
	var s scanned
	m := &spec.Message{}
	if scanMessage(msg.Payload, &s) == nil {
		m.Method = method(s.f[fMethod].in(msg.Payload))
		// IDs over the limit are not echoed back: the answer would carry the excess.
		if v := s.f[fTransID].in(msg.Payload); len(v) <= spec.DefaultMaxIDLen {
			m.TransID = string(v)
		}
		if v := s.f[fSigSessID].in(msg.Payload); len(v) <= spec.DefaultMaxIDLen {
			m.SigSessID = string(v)
		}
		if v := s.f[fFromTopic].in(msg.Payload); len(v) <= spec.DefaultMaxTopicLen {
			m.FromTopic = string(v)
		}
		if len(m.Method) > spec.DefaultMaxIDLen {
			m.Method = "unknown"
		}
	}
	if msg.Retained || len(msg.Topic) >= len(c.spherePrefix) && msg.Topic[:len(c.spherePrefix)] == c.spherePrefix {
		m.TransID = "" // presence documents are never answered
	}
	c.reject(msg.Topic, m, msg.QoS, code, reason)
}
