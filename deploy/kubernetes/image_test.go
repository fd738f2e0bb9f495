package kubernetes

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// containerEngine is podman, or docker with a daemon that answers; "" when neither.
func containerEngine() string {
	if p, err := exec.LookPath("podman"); err == nil {
		return p
	}
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "info").Run() == nil {
		return p
	}
	return ""
}

// TestImage builds the image with deploy/container/build.sh (what make image runs) and
// checks it: entrypoint and non-root user, a static binary inside that runs `load --help`;
// then, where the engine can run containers here, `load --help` and a short embedded load in
// a container writing to a mounted results folder.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a container image (~1 min)")
	}
	engine := containerEngine()
	if engine == "" {
		t.Skip("neither podman nor a running docker daemon: install one to test the image (Debian: apt-get install podman)")
	}
	image := "localhost/rtcomm-harness:test-" + strings.ToLower(mqttc.RandomClientID("")[:8])
	run := func(args ...string) (string, error) {
		out, err := exec.Command(engine, args...).CombinedOutput()
		return string(out), err
	}
	build := exec.Command("../container/build.sh")
	build.Env = append(os.Environ(), "IMAGE="+image, "CONTAINER_ENGINE="+engine)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run("rmi", "-f", image) })

	cfg, err := run("image", "inspect", "--format", "{{json .Config.Entrypoint}} {{.Config.User}}", image)
	if err != nil || strings.TrimSpace(cfg) != `["/rtcomm-harness"] 65532:65532` {
		t.Errorf("image config %q (%v), want entrypoint /rtcomm-harness and user 65532:65532", cfg, err)
	}
	// The binary inside, taken out without running a container: static, and it works.
	id, err := run("create", image, "load", "--help")
	if err != nil {
		t.Fatalf("%s create: %v\n%s", engine, err, id)
	}
	id = strings.TrimSpace(id[strings.LastIndexByte(strings.TrimSpace(id), '\n')+1:])
	bin := filepath.Join(t.TempDir(), "rtcomm-harness")
	out, err := run("cp", id+":/rtcomm-harness", bin)
	_, _ = run("rm", "-f", id)
	if err != nil {
		t.Fatalf("%s cp: %v\n%s", engine, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the image's binary is dynamically linked: it cannot run FROM scratch")
		}
	}
	f.Close()
	if out, err := exec.Command(bin, "load", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--start-at") {
		t.Fatalf("the image's binary, load --help: %v\n%s", err, out)
	}

	// In a container, where this machine can run one.
	out, err = run("run", "--rm", image, "load", "--help")
	if err != nil {
		t.Skipf("the image builds and its binary works, but %s cannot run containers on this machine: %s", engine, lastLine(out))
	}
	if !strings.Contains(out, "--shard-index-env") {
		t.Errorf("load --help in the container:\n%s", out)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // the image runs as 65532
		t.Fatal(err)
	}
	out, err = run("run", "--rm", "-v", dir+":/results", image, "load", "--endpoints", "20", "--rate", "5",
		"--duration", "3s", "--no-answer-share", "0", "--ring-timeout", "2s", "--hold-mean", "1s", "--max-late", "0.5",
		"--out", "/results/run")
	if err != nil {
		t.Fatalf("embedded load in the container: %v\n%s", err, out)
	}
	sum, err := results.Load(filepath.Join(dir, "run"))
	if err != nil || sum.Tally.Attempts == 0 || sum.Tally.Lost != 0 {
		t.Errorf("embedded load in the container: %v, summary %+v", err, sum)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
