// Package verdict is the verdict model of a certification: what one run found per
// requirement of spec's catalog, the verdict file (verdicts.json) and its JUnit form. It is a
// leaf (it imports only spec), so reports read bundles without linking Ginkgo or the
// reference stack; package scenarios turns a Ginkgo report into the Scenario records Compute
// judges.
package verdict

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// File is the verdict file's name in a certification bundle.
const File = "verdicts.json"

// Format names the version of the verdict file layout (scenarios/BUNDLE.md).
const Format = "rtcomm-harness/verdicts/v1"

// Verdict is the outcome for one requirement.
type Verdict string

// Verdicts.
const (
	Pass          Verdict = "pass"
	Fail          Verdict = "fail"
	NotClaimed    Verdict = "not-claimed"    // optional feature the target does not claim
	NotApplicable Verdict = "not-applicable" // e.g. a profile the target is not held to
	NotTested     Verdict = "not-tested"     // untestable, unchecked, or no scenario ran
)

// All lists the verdicts in report order.
var All = []Verdict{Pass, Fail, NotClaimed, NotApplicable, NotTested}

// Target is what the verdicts say about the target (the full declaration is target.yaml in
// the bundle). Field names match the declaration's JSON.
type Target struct {
	Name        string         `json:"name"`
	Mode        string         `json:"mode"`
	Profile     spec.Profile   `json:"profile"`
	Description string         `json:"description,omitempty"`
	Broker      Broker         `json:"broker,omitempty"`
	TopicPath   string         `json:"topicPath,omitempty"`
	Features    []spec.Feature `json:"features,omitempty"`
	// Topology is how the harness deployed the reference connector (modes embedded, broker).
	Topology Topology `json:"topology,omitempty"`
	// Notes explain known failures: requirement ID -> why the target fails it.
	Notes map[string]string `json:"notes,omitempty"`
	// Reproduce is the one command that re-runs this certification.
	Reproduce string `json:"reproduce,omitempty"`
}

// Topology is the reference connector's deployment: one in the path (the default),
// replicas sharing the routing topics, route-only, or route-only replicas.
type Topology struct {
	Replicas  int  `json:"replicas,omitempty"`
	RouteOnly bool `json:"routeOnly,omitempty"`
}

// String is the command-line form: "single", "route-only", "replicas=N" or both.
func (t Topology) String() string {
	var parts []string
	if t.RouteOnly {
		parts = append(parts, "route-only")
	}
	if t.Replicas > 1 {
		parts = append(parts, "replicas="+strconv.Itoa(t.Replicas))
	}
	if len(parts) == 0 {
		return "single"
	}
	return strings.Join(parts, ",")
}

// Broker is where the target's broker listens.
type Broker struct {
	TCP string `json:"tcp,omitempty"`
	WS  string `json:"ws,omitempty"`
}

// Claims reports whether the target claims feature f ("" is the core, always claimed).
func (t Target) Claims(f spec.Feature) bool {
	if f == "" {
		return true
	}
	for _, c := range t.Features {
		if c == f {
			return true
		}
	}
	return false
}

// Verdicts is the verdict file of a certification bundle (verdicts.json).
type Verdicts struct {
	Format         string    `json:"format"`
	HarnessVersion string    `json:"harnessVersion"`
	CatalogVersion string    `json:"catalogVersion"`
	RunDate        time.Time `json:"runDate"`
	Duration       string    `json:"duration"`
	Target         Target    `json:"target"`
	// Certified: no claimed MUST requirement failed, no harness error, and the suite ran to the end.
	Certified bool `json:"certified"`
	// Complete: every scenario ran (no label filter, focus or interruption).
	Complete bool `json:"complete"`
	// Filter is the label filter / focus that narrowed the run ("" for a full run).
	Filter string `json:"filter,omitempty"`
	// Interrupted: the run was cut short (signal, suite timeout).
	Interrupted  bool                 `json:"interrupted,omitempty"`
	Summary      Summary              `json:"summary"`
	Requirements []RequirementVerdict `json:"requirements"`
	// Unknown lists requirement labels used by scenarios but absent from the catalog (a harness bug).
	Unknown []string `json:"unknown,omitempty"`
	// SuiteFailures are failures outside any scenario (e.g. suite set-up), verbatim.
	SuiteFailures []string `json:"suiteFailures,omitempty"`
	// HarnessErrors are scenarios the harness itself got wrong (e.g. a check against a
	// requirement the scenario does not name): the run cannot certify.
	HarnessErrors []string `json:"harnessErrors,omitempty"`
}

// Summary counts requirements per verdict.
type Summary struct {
	Total         int `json:"total"`
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	NotClaimed    int `json:"notClaimed"`
	NotApplicable int `json:"notApplicable"`
	NotTested     int `json:"notTested"`
	// MustFailures counts failed MUST requirements: non-zero means not certified.
	MustFailures int `json:"mustFailures"`
	Scenarios    int `json:"scenarios"`
	ScenariosRun int `json:"scenariosRun"`
}

// RequirementVerdict is the verdict on one catalog requirement, with its evidence.
type RequirementVerdict struct {
	ID      string       `json:"id"`
	Area    string       `json:"area"`
	Level   string       `json:"level"`
	Text    string       `json:"text"`
	Source  string       `json:"source,omitempty"`
	Subject string       `json:"subject,omitempty"`
	Feature spec.Feature `json:"feature,omitempty"`
	Verdict Verdict      `json:"verdict"`
	Reason  string       `json:"reason,omitempty"`
	Specs   []string     `json:"scenarios,omitempty"` // full names of the scenarios that name or check it
	// Checks counts the checks recorded against it that passed (0 for anything but a pass).
	Checks int `json:"checks,omitempty"`
	// Unchecked lists the scenarios that ran and name it but recorded no check against it.
	Unchecked []string `json:"unchecked,omitempty"`
	// Failures: what was expected and what the target did, with the message trace.
	Failures []FailureEvidence `json:"failures,omitempty"`
}

// Kinds of failure evidence. Only a violation is a check's verdict on the target; the
// others say a scenario could not complete.
const (
	KindViolation = "violation" // a check recorded Expected/Actual
	KindTimeout   = "timeout"   // the scenario ran out of time before a check judged it
	KindHarness   = "harness"   // the harness could not do its part (or misused a requirement)
	KindError     = "error"     // the scenario failed without a check (panic, unexpected error)
)

// FailureEvidence documents one failed check or scenario.
type FailureEvidence struct {
	Scenario string       `json:"scenario"`
	Kind     string       `json:"kind,omitempty"`
	Expected string       `json:"expected,omitempty"`
	Actual   string       `json:"actual"`
	Location string       `json:"location,omitempty"`
	Trace    []TraceEvent `json:"trace,omitempty"`
}

// WriteFile writes the verdicts as indented JSON.
func (v *Verdicts) WriteFile(path string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("verdicts: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Read reads a verdict file and checks its format.
func Read(path string) (*Verdicts, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	var v Verdicts
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("verdicts %s: %w", path, err)
	}
	if v.Format != Format {
		return nil, fmt.Errorf("verdicts %s: format %q, want %q", path, v.Format, Format)
	}
	return &v, nil
}

// Get returns the verdict on one requirement.
func (v *Verdicts) Get(id string) (RequirementVerdict, bool) {
	for _, r := range v.Requirements {
		if r.ID == id {
			return r, true
		}
	}
	return RequirementVerdict{}, false
}

// Failed lists the IDs of failed requirements.
func (v *Verdicts) Failed() []string {
	var out []string
	for _, r := range v.Requirements {
		if r.Verdict == Fail {
			out = append(out, r.ID)
		}
	}
	return out
}
