package framework

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// mustOffer returns the payload of a fixture offer ({"webrtc":{"type":"offer","sdp":...}}).
func mustOffer(name string) json.RawMessage {
	GinkgoHelper()
	p, err := fixtures.OfferPayload(name)
	Harness(err, "fixture "+name)
	return p
}

// mustAnswer returns the payload of the fixture answer to the named offer.
func mustAnswer(offer string) json.RawMessage {
	GinkgoHelper()
	a, err := fixtures.AnswerFor(offer)
	Harness(err, "answer fixture for "+offer)
	return a.Payload()
}

// mustCandidates returns a fixture ICE candidate set.
func mustCandidates(set string) []spec.ICECandidate {
	GinkgoHelper()
	c, err := fixtures.Candidates(set)
	Harness(err, "candidate fixture "+set)
	return c
}

// candidateKey renders a candidate exactly (string, mid, index) for sequence comparison.
func candidateKey(c *spec.ICECandidate) string {
	if c == nil {
		return "(no candidate object)"
	}
	idx := "none"
	if c.SDPMLineIndex != nil {
		idx = fmt.Sprint(*c.SDPMLineIndex)
	}
	return fmt.Sprintf("%q mid=%q index=%s", c.Candidate, c.SDPMid, idx)
}

// randomUUID is a fresh transID / sigSessID.
func randomUUID() string { return uuid.NewString() }
