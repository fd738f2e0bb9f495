package scenarios_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// securityReqs are the requirements the security scenarios judge; each must pass.
var securityReqs = []string{"ID-005", "ID-007", "ID-008", "ID-009",
	"ID-010", "ID-011", "ID-012", "ID-013", "ID-014", "ID-015", "ID-016", "ID-017"}

// mosquittoKnownFailures are the attacks mosquitto with the committed ACLs does not stop
// (docs/SECURITY.md, "Attacks").
var mosquittoKnownFailures = []string{"ID-010", "ID-012", "ID-016"}

// Committed deployment examples (docs/SECURITY.md).
const (
	mosquittoSecurityConf = "../docs/security/mosquitto/rtcomm-security.conf"
	mosquittoACL          = "../docs/security/mosquitto/rtcomm.acl"
)

// TestSecurityScenarios runs the security scenarios (label "security") in child processes
// against the embedded reference with its secured listener over TLS
// (testdata/embedded-secure.yaml) and against mosquitto configured with exactly the committed
// docs/security/mosquitto files (testdata/mosquitto-secure.yaml). The mosquitto run is skipped
// when mosquitto is not installed, unless RTCOMM_REQUIRE_MOSQUITTO=1.
func TestSecurityScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the security scenarios in child processes")
	}
	if os.Getenv(envChild) != "" {
		return
	}
	t.Run("embedded-tls", func(t *testing.T) {
		t.Parallel()
		decl := mustAbs(t, "testdata/embedded-secure.yaml")
		c := startLabelChild(t, "embedded secure (TLS)", scenarios.LabelSecurity, scenarios.EnvTarget+"="+decl)
		v := waitVerdicts(t, c)
		if v.Target.Mode != string(scenarios.ModeEmbedded) {
			t.Errorf("expected mode embedded, actual %s", v.Target.Mode)
		}
		checkSecurityVerdicts(t, v)
	})
	t.Run("mosquitto", func(t *testing.T) {
		t.Parallel()
		d, err := scenarios.LoadDeclaration("testdata/mosquitto-secure.yaml")
		if err != nil {
			t.Fatal(err)
		}
		users := map[string]string{}
		for _, id := range append(d.Secure.Identities, *d.Secure.Connector) {
			users[cmp.Or(id.Username, id.ID)] = id.Password
		}
		p := startSecureMosquitto(t, users)
		if p == nil {
			return
		}
		decl := mustAbs(t, "testdata/mosquitto-secure.yaml")
		c := startLabelChild(t, "mosquitto secured", scenarios.LabelSecurity, scenarios.EnvTarget+"="+decl,
			scenarios.EnvBrokerTCP+"="+p.TCP, scenarios.EnvBrokerWS+"="+p.WS)
		v := waitVerdicts(t, c)
		if v.Target.Mode != string(scenarios.ModeBroker) {
			t.Errorf("expected mode broker, actual %s", v.Target.Mode)
		}
		// mosquitto 2.0 binds no client ID to a user (ID-010, ID-012) and retains on any
		// topic a client may publish to (ID-016); docs/SECURITY.md.
		checkSecurityVerdicts(t, v, mosquittoKnownFailures...)
	})
}

// startSecureMosquitto starts mosquitto with the committed security directives, the paths
// of password_file and acl_file replaced: the password file holds users (hashed by
// mosquitto_passwd), the ACL file is the committed one, as is. nil: skipped (not installed).
func startSecureMosquitto(t *testing.T, users map[string]string) *extbroker.Process {
	t.Helper()
	acl := mustAbs(t, mosquittoACL)
	f, err := os.Open(mosquittoSecurityConf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, _, _ := strings.Cut(l, " ")
		seen[key] = true
		switch key {
		case "password_file":
			continue // StartMosquittoWith adds its own, written from users
		case "acl_file":
			l = "acl_file " + acl
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"per_listener_settings", "allow_anonymous", "password_file", "acl_file"} {
		if !seen[k] {
			t.Fatalf("%s: expected a %s directive, actual none", mosquittoSecurityConf, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := extbroker.StartMosquittoWith(ctx, extbroker.MosquittoOptions{ConfigLines: lines, Passwords: users})
	if errors.Is(err, extbroker.ErrNotInstalled) && os.Getenv(extbroker.RequireEnv) != "1" {
		t.Skipf("mosquitto secured run skipped: %v", err)
		return nil
	}
	if err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// checkSecurityVerdicts: the security requirements pass and nothing fails.
func checkSecurityVerdicts(t *testing.T, v *scenarios.Verdicts, knownFailures ...string) {
	t.Helper()
	for _, r := range v.Requirements {
		if r.Verdict == scenarios.VerdictFail && !slices.Contains(knownFailures, r.ID) {
			t.Errorf("%s: %s (%s) failed: %s", v.Target.Name, r.ID, r.Level, failureText(r))
		}
	}
	for _, id := range securityReqs {
		r, _ := v.Get(id)
		switch want := scenarios.VerdictPass; {
		case slices.Contains(knownFailures, id):
			// Documented in docs/SECURITY.md ("Attacks"): the verdict must stay a fail until
			// the deployment guide changes; a pass would mean the check went blind.
			if r.Verdict != scenarios.VerdictFail {
				t.Errorf("%s: expected %s to fail (a documented weakness), actual %s (%s)", v.Target.Name, id, r.Verdict, r.Reason)
			}
		case r.Verdict != want:
			t.Errorf("%s: expected %s to pass, actual %s (%s)", v.Target.Name, id, r.Verdict, r.Reason)
		}
	}
	if v.Summary.ScenariosRun == 0 {
		t.Errorf("%s: expected the security scenarios to run, actual none ran", v.Target.Name)
	}
}

// startLabelChild runs TestConformance in a child process narrowed to a Ginkgo label.
func startLabelChild(t *testing.T, name, label string, env ...string) *child {
	c := &child{name: name, dir: t.TempDir(), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConformance$", "-test.count=1", "-test.timeout=3m",
		"-ginkgo.no-color", "-ginkgo.succinct", "-ginkgo.label-filter="+label)
	cmd.Env = append(append(os.Environ(), envChild+"=1", envOut+"="+c.dir), env...)
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start child: %v", name, err)
	}
	go func() { _ = cmd.Wait(); cancel(); close(c.done) }()
	t.Cleanup(func() { <-c.done })
	return c
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(fmt.Errorf("abs %s: %w", path, err))
	}
	return p
}

// waitVerdicts returns a (label-narrowed, so incomplete) child run's verdicts.
func waitVerdicts(t *testing.T, c *child) *scenarios.Verdicts {
	t.Helper()
	<-c.done
	v, err := scenarios.ReadVerdicts(filepath.Join(c.dir, scenarios.BundleVerdicts))
	if err != nil {
		s := c.out.String()
		if len(s) > 4000 {
			s = s[len(s)-4000:]
		}
		t.Fatalf("%s: child run wrote no verdicts (%v); output:\n%s", c.name, err, s)
	}
	t.Logf("%s: %+v", v.Target.Name, v.Summary)
	return v
}

// TestEmbeddedSecureTLS: secure.tls makes the embedded secured listener ssl:// and wss://,
// trusted through Target.TLSConfig and by nothing else.
func TestEmbeddedSecureTLS(t *testing.T) {
	t.Parallel()
	d, err := scenarios.ResolveDeclaration("testdata/embedded-secure.yaml", scenarios.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target, err := scenarios.Open(ctx, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if !strings.HasPrefix(target.SecureTCP, "ssl://") || !strings.HasPrefix(target.SecureWS, "wss://") || target.TLSConfig == nil {
		t.Fatalf("expected ssl:// and wss:// with a TLS config, actual %q %q (TLS config %v)", target.SecureTCP, target.SecureWS, target.TLSConfig != nil)
	}
	id := target.Identities[0]
	for _, url := range []string{target.SecureTCP, target.SecureWS} {
		c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, Username: id.Username, Password: id.Password, TLSConfig: target.TLSConfig})
		if err != nil {
			t.Errorf("%s with the target's TLS config: expected connected, actual %v", url, err)
			continue
		}
		c.Close()
		if c, err := mqttc.Dial(ctx, mqttc.Options{BrokerURL: url, Username: id.Username, Password: id.Password, ConnectTimeout: 3 * time.Second}); err == nil {
			c.Close()
			t.Errorf("%s without trusting the generated certificate: expected a verification error, actual connected", url)
		}
	}
}
