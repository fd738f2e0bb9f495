package faulty_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
)

// Environment of a child process (one suite run per process: Ginkgo runs a suite once).
const (
	envFault  = "RTCOMM_FAULT"  // fault name, or "baseline" for the unmodified reference
	envOut    = "RTCOMM_OUT"    // bundle directory
	envLabels = "RTCOMM_LABELS" // label filter
	baseline  = "baseline"
)

// TestFaultyChild is the suite run inside a child process; it does nothing on its own.
func TestFaultyChild(t *testing.T) {
	name := os.Getenv(envFault)
	if name == "" {
		t.Skip("runs only as a child of TestFaultyTargetsAreCaught")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d := scenarios.EmbeddedDeclaration()
	// A fault makes scenarios wait for messages that never come: loopback needs far less
	// than the protocol's 5 s to deliver one, so wait 2 s.
	d.Timeouts.Reply = scenarios.Duration(2 * time.Second)
	d.Timeouts.Quiet = scenarios.Duration(300 * time.Millisecond)
	target, err := scenarios.Open(ctx, d, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if name != baseline {
		f, err := faulty.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(target)
	}
	if _, err := scenarios.Run(t, scenarios.RunOptions{Target: target, OutDir: os.Getenv(envOut),
		LabelFilter: os.Getenv(envLabels), Succinct: true, NoColor: true, HarnessVersion: "faulty-test"}); err != nil {
		t.Fatal(err)
	}
}

// runChild runs the suite against one target in a child process and returns its verdicts.
func runChild(t *testing.T, fault, labels string) (*scenarios.Verdicts, string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFaultyChild$", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), envFault+"="+fault, envOut+"="+dir, envLabels+"="+labels)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // a faulty target fails its suite: the verdicts are what counts
	v, err := scenarios.ReadVerdicts(filepath.Join(dir, scenarios.BundleVerdicts))
	if err != nil {
		t.Fatalf("%s: no verdicts (%v); child output:\n%s", fault, err, tail(out.String(), 4000))
	}
	return v, out.String()
}

// TestFaultyTargetsAreCaught runs the suite against every faulty target (and the unmodified
// reference as a baseline, on the same areas) and asserts that each fault fails exactly the
// requirements it breaks: those it must break fail, and no other requirement loses its
// baseline verdict except the listed collateral ones.
func TestFaultyTargetsAreCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per faulty target")
	}
	faults := faulty.Faults()
	var areas []string
	for _, f := range faults {
		areas = append(areas, f.Areas...)
	}
	sort.Strings(areas)
	areas = slices.Compact(areas)
	union := make([]string, len(areas))
	for i, a := range areas {
		union[i] = "area:" + a
	}

	var (
		once      sync.Once
		base      *scenarios.Verdicts
		baseReady = make(chan struct{})
	)
	getBaseline := func(t *testing.T) *scenarios.Verdicts {
		once.Do(func() {
			defer close(baseReady)
			base, _ = runChild(t, baseline, strings.Join(union, " || "))
		})
		<-baseReady
		if base == nil {
			t.Fatal("baseline run failed")
		}
		return base
	}
	t.Run(baseline, func(t *testing.T) {
		t.Parallel()
		b := getBaseline(t)
		t.Logf("baseline on %v: %d pass, %d fail %v", areas, b.Summary.Pass, b.Summary.Fail, b.Failed())
	})
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			v, out := runChild(t, f.Name, f.LabelFilter())
			b := getBaseline(t)
			for _, id := range f.Breaks {
				r, ok := v.Get(id)
				if !ok {
					t.Errorf("%s: %s is not in the verdicts", f.Name, id)
					continue
				}
				if r.Verdict != scenarios.VerdictFail {
					t.Errorf("%s (%s): expected %s to FAIL, actual %s (%s)", f.Name, f.Description, id, r.Verdict, r.Reason)
				}
			}
			allowed := append(append([]string{}, f.Breaks...), f.Collateral...)
			for _, id := range v.Failed() {
				if slices.Contains(allowed, id) {
					continue
				}
				if br, ok := b.Get(id); ok && br.Verdict == scenarios.VerdictFail {
					continue // fails on the reference too: not this fault's doing
				}
				r, _ := v.Get(id)
				why := ""
				if len(r.Failures) > 0 {
					why = r.Failures[0].Scenario + ": expected " + r.Failures[0].Expected + "; actual " + r.Failures[0].Actual
				}
				t.Errorf("%s: %s failed, but it is neither broken by this fault nor failing on the reference: %s", f.Name, id, tail(why, 600))
			}
			if t.Failed() {
				t.Logf("child output (tail):\n%s", tail(out, 3000))
			}
			t.Logf("%s: failed %v", f.Name, v.Failed())
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
