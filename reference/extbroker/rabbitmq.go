package extbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// RabbitMQInstallHint says how to get the broker StartRabbitMQ runs.
const RabbitMQInstallHint = "install with: sudo apt-get install -y rabbitmq-server  (Debian/Ubuntu; the MQTT plugins ship with it)"

// RequireRabbitMQEnv, when set to 1, turns "rabbitmq-server not installed" from a skip into a failure.
const RequireRabbitMQEnv = "RTCOMM_REQUIRE_RABBITMQ"

// rabbitStartTimeout bounds RabbitMQ's boot (an Erlang VM plus two plugins: ~10 s on 2 cores).
const rabbitStartTimeout = 60 * time.Second

// RabbitMQPath finds the rabbitmq-server start script (the Debian package's, not its
// wrapper in /usr/sbin, which switches to the rabbitmq user and drops our environment).
func RabbitMQPath() (string, error) {
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/lib/rabbitmq/bin/rabbitmq-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("rabbitmq-server: %w (%s)", ErrNotInstalled, RabbitMQInstallHint)
}

// epmdPath finds the Erlang port mapper.
func epmdPath() (string, error) {
	if p, err := exec.LookPath("epmd"); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/erlang/erts-*/bin/epmd"); len(m) > 0 {
		return m[0], nil
	}
	return "", fmt.Errorf("epmd: %w (%s)", ErrNotInstalled, RabbitMQInstallHint)
}

// StartRabbitMQ starts a private RabbitMQ node with the rabbitmq_mqtt and rabbitmq_web_mqtt
// plugins: MQTT over TCP and over WebSocket at /mqtt on free loopback ports, anonymous
// access (guest), its own node name, data directory, Erlang cookie and port mapper under
// a temporary directory, so it neither needs nor disturbs a system-wide RabbitMQ. Stop it
// with Close (it takes a few seconds to boot and to stop).
func StartRabbitMQ(ctx context.Context) (*Process, error) {
	server, err := RabbitMQPath()
	if err != nil {
		return nil, err
	}
	epmd, err := epmdPath()
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 2, func() (*Process, error) { return startRabbitOnce(ctx, server, epmd) })
}

func startRabbitOnce(ctx context.Context, server, epmd string) (*Process, error) {
	var ports [5]int // mqtt, ws, amqp, erlang distribution, epmd
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	mqttPort, wsPort, amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	dir, err := os.MkdirTemp("", "rtcomm-rabbitmq-")
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: temp dir: %w", err)
	}
	conf := fmt.Sprintf(`# written by rtcomm-harness
listeners.tcp.default = 127.0.0.1:%d
mqtt.listeners.tcp.default = 127.0.0.1:%d
mqtt.allow_anonymous = true
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = %d
# rtcomm.js (Paho JS) always connects to /mqtt; RabbitMQ's default is /ws.
web_mqtt.ws_path = /mqtt
loopback_users = none
log.console = false
log.file.level = warning
`, amqpPort, mqttPort, wsPort)
	files := map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[rabbitmq_mqtt,rabbitmq_web_mqtt].\n",
		// One script owns the node and its private port mapper, so Close (SIGTERM) stops both.
		"run.sh": `#!/bin/bash
"$EPMD" -port "$ERL_EPMD_PORT" &
E=$!
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$ERL_EPMD_PORT) 2>/dev/null && break; sleep 0.05; done
"$RABBIT" < /dev/null &
R=$!
trap 'kill -TERM $R 2>/dev/null; wait $R; kill $E 2>/dev/null; wait $E; exit 0' TERM INT
wait $R
kill $E 2>/dev/null
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("rabbitmq: %s: %w", name, err)
		}
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "rabbitmq.out"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("rabbitmq: log: %w", err)
	}
	node := "rtcomm-" + strconv.Itoa(mqttPort) + "@localhost"
	cmd := exec.Command("/bin/bash", filepath.Join(dir, "run.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, // the Erlang cookie goes here
		"EPMD="+epmd, "RABBIT="+server,
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_BASE="+dir,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_NODE_PORT="+strconv.Itoa(amqpPort),
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // the script stops the node and epmd
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("rabbitmq: start: %w", err)
	}
	p := &Process{
		Name: "rabbitmq",
		TCP:  "tcp://127.0.0.1:" + strconv.Itoa(mqttPort),
		WS:   "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/mqtt",
		cmd:  cmd, dir: dir, exit: make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exit) }()
	if err := waitPorts(ctx, p.exit, rabbitStartTimeout, mqttPort, wsPort); err != nil {
		p.Close()
		log, _ := os.ReadFile(filepath.Join(dir, "rabbitmq.out"))
		return nil, fmt.Errorf("rabbitmq: %w; its output: %s", err, tailBytes(log, 2000))
	}
	return p, nil
}

// waitPorts waits until every port accepts connections, the process exits, or the timeout.
func waitPorts(ctx context.Context, exited <-chan struct{}, timeout time.Duration, ports ...int) error {
	deadline := time.Now().Add(timeout)
	for _, port := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return errors.New("exited during start-up")
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not listening on %s after %s", addr, timeout)
			}
		}
	}
	return nil
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// RabbitMQForTest starts RabbitMQ for one test and stops it at cleanup; skipped with an
// install hint when absent, unless RequireRabbitMQEnv=1.
func RabbitMQForTest(t interface {
	Helper()
	Skipf(string, ...any)
	Fatalf(string, ...any)
	Cleanup(func())
}) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rabbitStartTimeout+10*time.Second)
	defer cancel()
	p, err := StartRabbitMQ(ctx)
	if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireRabbitMQEnv) != "1" {
		t.Skipf("rabbitmq-server is not installed: %s", RabbitMQInstallHint)
	}
	if err != nil {
		t.Fatalf("start rabbitmq: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
