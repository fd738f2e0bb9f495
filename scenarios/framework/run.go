package framework

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
)

// Bundle file names (scenarios/BUNDLE.md).
const (
	BundleVerdicts = verdict.File
	BundleJUnit    = "junit.xml"
	BundleJSON     = "ginkgo-report.json"
	BundleTarget   = "target.yaml"
)

// SuiteName is the Ginkgo suite description.
const SuiteName = "Rtcomm conformance"

// Area labels a Describe with its spec area, e.g. Area("broker") -> "area:broker".
func Area(name string) Labels { return Label("area:" + name) }

// Req labels an It with the requirement IDs it checks.
func Req(ids ...string) Labels { return Label(ids...) }

// RunOptions configure one run of the suite.
type RunOptions struct {
	// Target is the opened target (required).
	Target *Target
	// OutDir receives the certification bundle ("" writes none).
	OutDir string
	// LabelFilter and Focus narrow the run (a narrowed run is never "complete").
	LabelFilter string
	Focus       []string
	// Seed orders scenarios randomly (0: Ginkgo's, time-based).
	Seed int64
	// Verbose streams every scenario; Succinct prints one line per suite.
	Verbose, Succinct bool
	// NoColor disables ANSI colours in Ginkgo's console output.
	NoColor bool
	// HarnessVersion is recorded in the verdicts.
	HarnessVersion string
	// Timeout bounds the whole suite (default 30 minutes).
	Timeout time.Duration
}

// Result is what Run produced. Under `ginkgo -p` only parallel process 1 has Verdicts.
type Result struct {
	Passed   bool
	Verdicts *Verdicts
	// BundleErr is set when the bundle could not be written.
	BundleErr error
}

var run struct {
	sync.Mutex
	opts   RunOptions
	result Result
}

// Run runs the conformance suite against o.Target and returns the verdicts. t is a
// *testing.T under go test, or any value with Fail() (the certify command). Ginkgo runs a
// suite once per process, so Run can be called once per process.
func Run(t GinkgoTestingT, o RunOptions) (*Result, error) {
	if o.Target == nil {
		return nil, errors.New("scenarios: no target")
	}
	if o.OutDir != "" {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("bundle dir: %w", err)
		}
	}
	current.Lock()
	current.target = o.Target
	current.Unlock()
	run.Lock()
	run.opts = o
	run.result = Result{}
	run.Unlock()

	sc, rc := GinkgoConfiguration()
	if o.LabelFilter != "" {
		sc.LabelFilter = o.LabelFilter
	}
	if len(o.Focus) > 0 {
		sc.FocusStrings = append(sc.FocusStrings, o.Focus...)
	}
	if o.Seed != 0 {
		sc.RandomSeed = o.Seed
	}
	sc.RandomizeAllSpecs = true // scenarios must not depend on order
	if o.Timeout > 0 {
		sc.Timeout = o.Timeout
	} else if sc.Timeout == time.Hour {
		sc.Timeout = 30 * time.Minute
	}
	rc.Verbose = rc.Verbose || o.Verbose
	rc.Succinct = rc.Succinct || o.Succinct
	rc.NoColor = rc.NoColor || o.NoColor
	passed := RunSpecs(t, SuiteName, sc, rc)

	run.Lock()
	defer run.Unlock()
	res := run.result
	res.Passed = passed
	return &res, nil
}

// The verdicts are computed from the final (aggregated) report, on parallel process 1.
var _ = ReportAfterSuite("rtcomm verdicts and certification bundle", func(r Report) {
	run.Lock()
	o := run.opts
	run.Unlock()
	t := activeTarget()
	if t == nil {
		return
	}
	v := ComputeVerdicts(r, t.Decl)
	v.HarnessVersion = o.HarnessVersion
	if v.HarnessVersion == "" {
		v.HarnessVersion = "dev"
	}
	var berr error
	if o.OutDir != "" {
		berr = WriteBundle(o.OutDir, r, v, t.Decl)
	}
	run.Lock()
	run.result.Verdicts = v
	run.result.BundleErr = berr
	run.Unlock()
	if berr != nil {
		Fail(fmt.Sprintf("certification bundle: %v", berr))
	}
})

// WriteBundle writes the JUnit report (a requirements suite from the verdicts, then Ginkgo's
// scenarios), Ginkgo's JSON report, the verdicts and the target declaration.
func WriteBundle(dir string, r types.Report, v *Verdicts, d Declaration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	reqs, specs := filepath.Join(dir, ".junit-requirements.xml"), filepath.Join(dir, ".junit-scenarios.xml")
	junit := errors.Join(v.WriteJUnit(reqs), reporters.GenerateJUnitReport(r, specs))
	if junit == nil {
		msgs, err := reporters.MergeAndCleanupJUnitReports([]string{reqs, specs}, filepath.Join(dir, BundleJUnit))
		junit = err
		if len(msgs) > 0 {
			junit = errors.Join(err, fmt.Errorf("junit: %s", strings.Join(msgs, "; ")))
		}
	}
	return errors.Join(
		junit,
		reporters.GenerateJSONReport(r, filepath.Join(dir, BundleJSON)),
		v.WriteFile(filepath.Join(dir, BundleVerdicts)),
		d.WriteFile(filepath.Join(dir, BundleTarget)),
	)
}
