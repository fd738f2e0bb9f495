package extbroker

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// aedesScript runs aedes with its WebSocket server factory (argv: modules dir, TCP port, WS port).
//
//go:embed aedes.mjs
var aedesScript []byte

// AedesVersion and AedesFactoryVersion are the npm packages the launcher was certified with.
const (
	AedesVersion        = "1.2.0"
	AedesFactoryVersion = "0.2.1"
)

// AedesDirEnv names the directory where aedes was installed with npm (it holds node_modules).
const AedesDirEnv = "RTCOMM_AEDES_DIR"

// RequireAedesEnv, when set to 1, turns "aedes not installed" from a skip into a failure.
const RequireAedesEnv = "RTCOMM_REQUIRE_AEDES"

// aedesStartTimeout bounds node's start and the two listeners (well under a second).
const aedesStartTimeout = 30 * time.Second

// AedesDir is where the launcher looks for node_modules/aedes: $RTCOMM_AEDES_DIR, else
// <user cache dir>/rtcomm-harness/aedes (e.g. ~/.cache/rtcomm-harness/aedes).
func AedesDir() string {
	if d := os.Getenv(AedesDirEnv); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "rtcomm-harness", "aedes")
	}
	return filepath.Join(os.TempDir(), "rtcomm-harness-aedes")
}

// AedesInstallHint says how to install aedes where AedesDir looks for it.
func AedesInstallHint() string {
	return fmt.Sprintf("install with: sudo apt-get install -y nodejs npm && npm install --prefix %s aedes@%s aedes-server-factory@%s  (or set %s to a directory where you ran that npm install)",
		AedesDir(), AedesVersion, AedesFactoryVersion, AedesDirEnv)
}

// AedesPaths finds node and checks that aedes and aedes-server-factory are installed in dir.
func AedesPaths(dir string) (node string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("aedes: node: %w (%s)", ErrNotInstalled, AedesInstallHint())
	}
	for _, pkg := range []string{"aedes", "aedes-server-factory"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return "", fmt.Errorf("aedes: %s not in %s: %w (%s)", pkg, dir, ErrNotInstalled, AedesInstallHint())
		}
	}
	return node, nil
}

// StartAedes starts aedes (npm, in-memory persistence) under node with a plain MQTT listener
// and an MQTT-over-WebSocket listener from aedes-server-factory on free loopback ports; the
// WebSocket server answers on any path (so /mqtt) and echoes the client's first subprotocol.
// The packages are those installed in AedesDir. Stop it with Close.
func StartAedes(ctx context.Context) (*Process, error) {
	modules := AedesDir()
	node, err := AedesPaths(modules)
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 3, func() (*Process, error) { return startAedesOnce(ctx, node, modules) })
}

func startAedesOnce(ctx context.Context, node, modules string) (*Process, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	tcpPort, wsPort := ports[0], ports[1]
	dir, err := os.MkdirTemp("", "rtcomm-aedes-")
	if err != nil {
		return nil, fmt.Errorf("aedes: temp dir: %w", err)
	}
	if err := writeFiles(dir, map[string]string{"aedes.mjs": string(aedesScript)}); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("aedes: script: %w", err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "aedes.mjs"), modules, strconv.Itoa(tcpPort), strconv.Itoa(wsPort))
	cmd.Dir = dir
	return startChild(ctx, childSpec{
		name: "aedes", dir: dir, cmd: cmd, ports: []int{tcpPort, wsPort}, timeout: aedesStartTimeout,
		tcp: "tcp://127.0.0.1:" + strconv.Itoa(tcpPort),
		ws:  "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/mqtt",
	})
}
