package scenarios

import (
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// CatalogEntry is a requirement of spec.Catalog() as the verdicts need it (plain strings, so
// the verdict file does not depend on spec's Go types).
type CatalogEntry struct {
	ID         string
	Area       string
	Level      string
	Text       string
	Source     string
	Subject    string
	Feature    string
	Profiles   []string
	Untestable string
}

// Catalog returns the requirement catalog the verdicts are computed against.
func Catalog() []CatalogEntry {
	var out []CatalogEntry
	for _, r := range spec.Catalog() {
		e := CatalogEntry{ID: r.ID, Area: r.Area, Level: string(r.Level), Text: r.Text, Source: r.Source,
			Subject: r.Subject, Feature: r.Feature, Untestable: r.Untestable}
		for _, p := range r.Profiles {
			e.Profiles = append(e.Profiles, string(p))
		}
		out = append(out, e)
	}
	return out
}

func catalogVersion() string { return spec.CatalogVersion }

// targetSubjects are the parties a certification judges: the broker and the connector. The
// endpoints are the harness's own; requirements only on endpoints describe what the harness
// sends and are not verdicts on the target.
var targetSubjects = []string{spec.SubjectBroker, spec.SubjectConnector}

// appliesToTarget reports whether a requirement binds the broker or the connector.
func appliesToTarget(subject string) bool {
	for _, s := range strings.Split(subject, ",") {
		for _, t := range targetSubjects {
			if strings.TrimSpace(s) == t {
				return true
			}
		}
	}
	return false
}
