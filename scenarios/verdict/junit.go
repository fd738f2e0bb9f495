package verdict

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
)

// JUnitSuiteName names the requirements suite in junit.xml.
const JUnitSuiteName = "Rtcomm requirements"

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Disabled int          `xml:"disabled,attr"`
	Errors   int          `xml:"errors,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Package  string      `xml:"package,attr"`
	Tests    int         `xml:"tests,attr"`
	Disabled int         `xml:"disabled,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Errors   int         `xml:"errors,attr"`
	Failures int         `xml:"failures,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Status    string        `xml:"status,attr"`
	Time      float64       `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message     string `xml:"message,attr"`
	Type        string `xml:"type,attr"`
	Description string `xml:",chardata"`
}

// WriteJUnit writes one JUnit test case per requirement: a pass passes, a fail fails with
// Expected/Actual, and everything else (not tested, not claimed, not applicable) is skipped
// with the verdict and its reason as the message, so CI never shows an unchecked
// requirement as passed.
func (v *Verdicts) WriteJUnit(path string) error {
	s := junitSuite{Name: JUnitSuiteName, Package: v.Target.Name}
	for _, r := range v.Requirements {
		c := junitCase{Name: r.ID + " (" + r.Level + ") " + r.Text, Classname: JUnitSuiteName + "." + r.Area, Status: string(r.Verdict)}
		switch r.Verdict {
		case Pass:
		case Fail:
			var d strings.Builder
			for _, f := range r.Failures {
				fmt.Fprintf(&d, "%s [%s]\nExpected: %s\nActual:   %s\n%s\n\n", f.Scenario, f.Kind, f.Expected, f.Actual, f.Location)
			}
			c.Failure = &junitFailure{Message: r.Reason, Type: "failed", Description: d.String()}
			s.Failures++
		default:
			c.Skipped = &junitMessage{Message: string(r.Verdict) + ": " + r.Reason}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	all := junitSuites{Tests: s.Tests, Failures: s.Failures, Suites: []junitSuite{s}}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}
