package certreport

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// OfficialClientsHeading starts the section RenderOfficialClients writes.
const OfficialClientsHeading = "## Official clients"

// RenderOfficialClients writes the "official clients" rows of the compatibility document:
// the corpus of what rtcomm.js and lib.rtcomm.node send (fixtures/clients/official.jsonl)
// judged in both profiles, and every strict-profile rejection with the written-spec sentence
// it breaks. It is computed from the corpus and the catalog, so it cannot go stale.
func RenderOfficialClients(w io.Writer) error {
	msgs, err := fixtures.OfficialClientTraffic()
	if err != nil {
		return fmt.Errorf("official clients: %w", err)
	}
	type hit struct{ steps []string }
	rejected := map[spec.Profile]int{}
	byReq := map[string]*hit{}
	pubs := 0
	for _, m := range msgs {
		if m.Subscribe {
			continue
		}
		pubs++
		for _, p := range []spec.Profile{spec.ProfileClient, spec.ProfileStrict} {
			vs := (spec.Validator{Profile: p}).Validate(m.Topic, m.Bytes())
			if len(vs) > 0 {
				rejected[p]++
			}
			if p != spec.ProfileStrict {
				continue
			}
			for _, v := range vs {
				h := byReq[v.Requirement]
				if h == nil {
					h = &hit{}
					byReq[v.Requirement] = h
				}
				step := m.Client + ": " + m.Step
				if !slices.Contains(h.steps, step) {
					h.steps = append(h.steps, step)
				}
			}
		}
	}
	b := &strings.Builder{}
	b.WriteString(OfficialClientsHeading + "\n\n")
	b.WriteString("What the official clients put on the wire, judged by the harness's own validator: the corpus " +
		"`fixtures/clients/official.jsonl` (every message shape rtcomm.js 1.0.x and lib.rtcomm.node publish, written " +
		"from their public sources, each line naming file and function). `go test ./fixtures` fails if the client " +
		"profile rejects any of it; this section is computed from the corpus and the catalog.\n\n")
	b.WriteString("| target | mode | profile | messages | rejected |\n|---|---|---|---|---|\n")
	for _, p := range []spec.Profile{spec.ProfileClient, spec.ProfileStrict} {
		fmt.Fprintf(b, "| official clients (rtcomm.js 1.0.9, lib.rtcomm.node) | corpus | %s | %d | %d |\n", p, pubs, rejected[p])
	}
	ids := make([]string, 0, len(byReq))
	for id := range byReq {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return slices.Index(catalogOrder(), a) - slices.Index(catalogOrder(), b)
	})
	if len(ids) > 0 {
		b.WriteString("\nStrict-profile rejections: the written spec asks for something the official clients do not send.\n\n")
	}
	for _, id := range ids {
		r, _ := spec.Lookup(id)
		fmt.Fprintf(b, "- **%s** (%s) %s  \n  spec: %s  \n  sent by: %s\n", id, r.Level, cell(r.Text), cell(r.Sentence), strings.Join(byReq[id].steps, "; "))
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func catalogOrder() []string {
	cat := spec.Catalog()
	out := make([]string, len(cat))
	for i, r := range cat {
		out[i] = r.ID
	}
	return out
}
