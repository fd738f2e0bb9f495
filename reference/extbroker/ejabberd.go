package extbroker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// EjabberdInstallHint says how to get the broker StartEjabberd runs (mod_mqtt is built in).
const EjabberdInstallHint = "install with: sudo apt-get install -y ejabberd  (Debian/Ubuntu)"

// RequireEjabberdEnv, when set to 1, turns "ejabberd not installed" from a skip into a failure.
const RequireEjabberdEnv = "RTCOMM_REQUIRE_EJABBERD"

// EjabberdCredentials are what every MQTT client gives the launched ejabberd: mod_mqtt refuses
// a CONNECT without a password ("not authorized"), and the launcher's anonymous login
// (auth_method anonymous, anonymous_protocol login_anon) accepts any user name and password.
const EjabberdCredentials = "rtcomm"

// ejabberdStartTimeout bounds ejabberd's boot (an Erlang VM creating its Mnesia tables: ~2 s).
const ejabberdStartTimeout = 60 * time.Second

// EjabberdPaths finds erl and the directory holding ejabberd's Erlang applications
// (ERL_LIBS; Debian: /usr/lib/<triplet>/ejabberd-<version>).
func EjabberdPaths() (erl, libs string, err error) {
	erl, err = exec.LookPath("erl")
	if err != nil {
		return "", "", fmt.Errorf("ejabberd: erl: %w (%s)", ErrNotInstalled, EjabberdInstallHint)
	}
	m, _ := filepath.Glob("/usr/lib/*/ejabberd-*/ebin/mod_mqtt.beam")
	if len(m) == 0 {
		m, _ = filepath.Glob("/usr/lib/ejabberd-*/ebin/mod_mqtt.beam")
	}
	if len(m) == 0 {
		return "", "", fmt.Errorf("ejabberd: mod_mqtt.beam: %w (%s)", ErrNotInstalled, EjabberdInstallHint)
	}
	// .../ejabberd-23.01/ebin/mod_mqtt.beam -> the directory that holds ejabberd-23.01 and its dependencies.
	return erl, filepath.Dir(filepath.Dir(filepath.Dir(m[0]))), nil
}

// StartEjabberd starts a private ejabberd node (Debian's package) with mod_mqtt on a plain
// TCP listener and on ejabberd_http at /mqtt (MQTT over WebSocket), both on free loopback
// ports, anonymous login (any user name and password: EjabberdCredentials), its configuration,
// Mnesia spool and logs under a temporary directory. The Erlang VM runs without distribution,
// so no port mapper (epmd) is started. Stop it with Close.
func StartEjabberd(ctx context.Context) (*Process, error) {
	erl, libs, err := EjabberdPaths()
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 2, func() (*Process, error) { return startEjabberdOnce(ctx, erl, libs) })
}

func startEjabberdOnce(ctx context.Context, erl, libs string) (*Process, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	mqttPort, wsPort := ports[0], ports[1]
	dir, err := os.MkdirTemp("", "rtcomm-ejabberd-")
	if err != nil {
		return nil, fmt.Errorf("ejabberd: temp dir: %w", err)
	}
	for _, d := range []string{"spool", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("ejabberd: %w", err)
		}
	}
	// max_topic_depth: mod_mqtt's default (8) is what an rtcomm event topic under a
	// two-level topic path already needs (/rtcomm/x/event/session/started/<from>/<to>).
	conf := fmt.Sprintf(`# written by rtcomm-harness
hosts: [localhost]
loglevel: warning
auth_method: [anonymous]
anonymous_protocol: login_anon
listen:
  - port: %d
    ip: "127.0.0.1"
    module: mod_mqtt
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /mqtt: mod_mqtt
modules:
  mod_mqtt:
    max_topic_depth: 16
`, mqttPort, wsPort)
	if err := writeFiles(dir, map[string]string{"ejabberd.yml": conf, "inetrc": ""}); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ejabberd: config: %w", err)
	}
	// What ejabberdctl foreground runs, without its switch to the ejabberd user and without
	// a node name (no distribution, no epmd).
	cmd := exec.Command(erl, "-noinput", "-mnesia", "dir", strconv.Quote(filepath.Join(dir, "spool")), "-s", "ejabberd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"ERL_LIBS="+libs,
		"EJABBERD_CONFIG_PATH="+filepath.Join(dir, "ejabberd.yml"),
		"EJABBERD_LOG_PATH="+filepath.Join(dir, "log", "ejabberd.log"),
		"EJABBERD_PID_PATH="+filepath.Join(dir, "ejabberd.pid"),
		"ERL_CRASH_DUMP="+filepath.Join(dir, "log", "erl_crash.dump"),
		"ERL_CRASH_DUMP_BYTES=0",
		"ERL_INETRC="+filepath.Join(dir, "inetrc"),
	)
	return startChild(ctx, childSpec{
		name: "ejabberd", dir: dir, cmd: cmd, ports: []int{mqttPort, wsPort}, timeout: ejabberdStartTimeout,
		tcp: "tcp://127.0.0.1:" + strconv.Itoa(mqttPort),
		ws:  "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/mqtt",
	})
}
