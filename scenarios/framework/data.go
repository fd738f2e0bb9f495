package framework

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// MustOffer returns the payload of a fixture offer ({"webrtc":{"type":"offer","sdp":...}}).
func MustOffer(name string) json.RawMessage {
	GinkgoHelper()
	p, err := fixtures.OfferPayload(name)
	Harness(err, "fixture "+name)
	return p
}

// MustAnswer returns the payload of the fixture answer to the named offer.
func MustAnswer(offer string) json.RawMessage {
	GinkgoHelper()
	a, err := fixtures.AnswerFor(offer)
	Harness(err, "answer fixture for "+offer)
	return a.Payload()
}

// MustCandidates returns a fixture ICE candidate set.
func MustCandidates(set string) []spec.ICECandidate {
	GinkgoHelper()
	c, err := fixtures.Candidates(set)
	Harness(err, "candidate fixture "+set)
	return c
}

// CandidateKey renders a candidate exactly (string, mid, index) for sequence comparison.
func CandidateKey(c *spec.ICECandidate) string {
	if c == nil {
		return "(no candidate object)"
	}
	idx := "none"
	if c.SDPMLineIndex != nil {
		idx = fmt.Sprint(*c.SDPMLineIndex)
	}
	return fmt.Sprintf("%q mid=%q index=%s", c.Candidate, c.SDPMid, idx)
}

// RandomUUID is a fresh transID / sigSessID.
func RandomUUID() string { return uuid.NewString() }
