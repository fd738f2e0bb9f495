package plan

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func example() Inputs {
	return Inputs{Users: 100_000, BHCA: 1, Hold: 2 * time.Minute, RegisteredShare: 0.6, Headroom: 1.5}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestComputeWorkedExample(t *testing.T) {
	t.Parallel()
	r, err := Compute(example(), Capacity{SessionRate: 50, Connections: 20_000, RegistrationRate: 200, TestedHoldS: 60})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"attempts/h", r.AttemptsPerHour, 100_000},
		{"rate", r.SessionRate, 100_000.0 / 3600},
		{"concurrent (Little)", r.ConcurrentSessions, 100_000.0 / 3600 * 120},
		{"connections", r.Connections, 60_000},
		{"design rate", r.DesignSessionRate, 100_000.0 / 3600 * 1.5},
		{"design connections", r.DesignConnections, 90_000},
		{"connectors", float64(r.ConnectorInstances), 1}, // 41.7/50
		{"brokers by rate", float64(r.BrokerInstancesByRate), 1},
		{"brokers by conns", float64(r.BrokerInstancesByConns), 5}, // 90000/20000 = 4.5
		{"brokers", float64(r.BrokerInstances), 5},
		{"re-registration", r.ReregistrationS, 60_000.0 / (200 * 5)},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s: expected %g, actual %g", c.name, c.want, c.got)
		}
	}
	// 1 connector holds 5000 concurrent sessions; the run held 50/s x 60s = 3000.
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "re-measure") {
		t.Errorf("expected one note about the untested concurrency, actual %q", r.Notes)
	}
}

func TestInstancesRoundUpExactly(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		load, per float64
		want      int
	}{{100, 50, 2}, {100.0000001, 50, 3}, {0, 50, 1}, {10, 0, 0}, {0.3 * 3, 0.3, 3}} {
		if got := instances(c.load, c.per); got != c.want {
			t.Errorf("instances(%g, %g): expected %d, actual %d", c.load, c.per, c.want, got)
		}
	}
}

func TestValidateNamesTheInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mut  func(*Inputs)
		want string
	}{
		{func(i *Inputs) { i.Users = 0 }, "users"},
		{func(i *Inputs) { i.BHCA = -1 }, "bhca"},
		{func(i *Inputs) { i.Hold = -time.Second }, "hold"},
		{func(i *Inputs) { i.RegisteredShare = 1.2 }, "registered share"},
		{func(i *Inputs) { i.Headroom = 0.9 }, "headroom"},
		{func(i *Inputs) { i.Users = math.NaN() }, "users"},
	} {
		in := example()
		c.mut(&in)
		if _, err := Compute(in, Capacity{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("expected an error naming %q, actual %v", c.want, err)
		}
	}
}

func TestUnmeasuredCapacityIsSaid(t *testing.T) {
	t.Parallel()
	r, err := Compute(example(), Capacity{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ConnectorInstances != 0 || r.BrokerInstances != 0 || len(r.Notes) < 2 {
		t.Errorf("expected no instance counts and notes, actual %d %d %q", r.ConnectorInstances, r.BrokerInstances, r.Notes)
	}
	if txt := Text(r); !strings.Contains(txt, "not measured") {
		t.Errorf("text plan does not say what was not measured:\n%s", txt)
	}
}

func TestGroupMatchesLocaleFormat(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    float64
		d    int
		want string
	}{{1234567.891, 2, "1,234,567.89"}, {27.7777, 2, "27.78"}, {999.5, 0, "1,000"}, {12, 2, "12"}, {0, 0, "0"}} {
		if got := group(c.v, c.d); got != c.want {
			t.Errorf("group(%g, %d): expected %s, actual %s", c.v, c.d, c.want, got)
		}
	}
}

// TestScriptMatchesCompute loads the calculator in headless Chromium (when installed) with
// inputs other than the ones the page was rendered with, and checks the script's figures
// against Compute's for those inputs.
func TestScriptMatchesCompute(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil || testing.Short() {
		t.Skip("chromium not installed (or -short)")
	}
	t.Parallel()
	rendered, err := Compute(example(), Capacity{SessionRate: 50, Connections: 20_000, RegistrationRate: 200})
	if err != nil {
		t.Fatal(err)
	}
	form, err := HTML(rendered)
	if err != nil {
		t.Fatal(err)
	}
	// The script runs on load; change the inputs first by rewriting their values.
	in := Inputs{Users: 2_345_678, BHCA: 0.7, Hold: 185 * time.Second, RegisteredShare: 0.35, Headroom: 1.25}
	c := Capacity{ConnectorRate: 33.3, BrokerRate: 120, Connections: 15_000, RegistrationRate: 75}
	want, err := Compute(in, c)
	if err != nil {
		t.Fatal(err)
	}
	page := string(form)
	for id, v := range map[string]string{"p-users": "2345678", "p-bhca": "0.7", "p-hold": "185", "p-share": "35", "p-headroom": "1.25",
		"p-connector-rate": "33.3", "p-broker-rate": "120", "p-broker-conns": "15000", "p-reg-rate": "75"} {
		re := regexp.MustCompile(`(id="` + id + `"[^>]*value=")[^"]*"`)
		if !re.MatchString(page) {
			t.Fatalf("input %s not found", id)
		}
		page = re.ReplaceAllString(page, `${1}`+v+`"`)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "plan.html")
	if err := os.WriteFile(file, []byte("<!DOCTYPE html><html><body>"+page+"<script>"+Script+"</script></body></html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--dump-dom", "file://"+file)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("chromium did not run: %v", err)
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`<output id="([a-z-]+)">([^<]*)</output>`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]] = m[2]
	}
	expect := map[string]string{
		"o-attempts": group(want.AttemptsPerHour, 0), "o-rate": group(want.SessionRate, 2), "o-drate": group(want.DesignSessionRate, 2),
		"o-conc": group(want.ConcurrentSessions, 0), "o-dconc": group(want.DesignConcurrentSessions, 0),
		"o-conns": group(want.Connections, 0), "o-dconns": group(want.DesignConnections, 0),
		"o-connectors": count(want.ConnectorInstances), "o-brokers-rate": count(want.BrokerInstancesByRate),
		"o-brokers-conns": count(want.BrokerInstancesByConns), "o-brokers": count(want.BrokerInstances), "o-rereg": rereg(want.ReregistrationS),
	}
	for id, w := range expect {
		if got[id] != w {
			t.Errorf("%s: Compute says %q, the script %q", id, w, got[id])
		}
	}
}
