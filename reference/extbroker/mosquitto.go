// Package extbroker starts real third-party MQTT brokers (mosquitto, RabbitMQ, ActiveMQ,
// ejabberd, aedes) as child processes on random loopback ports, for tests, CI and
// certification runs.
package extbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled means the broker's binary is not on this machine.
var ErrNotInstalled = errors.New("not installed")

// InstallHint says how to get the brokers this package starts.
const InstallHint = "install with: sudo apt-get install -y mosquitto  (Debian/Ubuntu)"

// Process is a running broker child process.
type Process struct {
	Name string
	TCP  string // tcp://127.0.0.1:port
	WS   string // ws://127.0.0.1:port/mqtt, empty if none
	dir  string
	once sync.Once

	mu   sync.Mutex // guards cmd and exit, which Restart replaces
	cmd  *exec.Cmd
	exit chan struct{}
	// relaunch starts the broker again with the same configuration and ports (Restart);
	// nil for brokers that cannot be restarted in place.
	relaunch func(context.Context) error
}

// MosquittoPath finds the mosquitto binary (Debian installs it in /usr/sbin, often not on PATH).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mosquitto: %w (%s)", ErrNotInstalled, InstallHint)
}

// MosquittoOptions extend the launcher's configuration, e.g. with the secure-mode
// settings of docs/security/mosquitto (password_file, acl_file, allow_anonymous false).
type MosquittoOptions struct {
	// ConfigLines are added to the global section, before the listeners. A line setting
	// allow_anonymous replaces the launcher's "allow_anonymous true".
	ConfigLines []string
	// Passwords, when set, are written with mosquitto_passwd to a password file in the
	// broker's temporary directory; a "password_file" line pointing at it is added.
	Passwords map[string]string
}

// StartMosquitto starts mosquitto with a TCP and a WebSocket listener on free
// loopback ports, anonymous access, no persistence. Stop it with Close.
func StartMosquitto(ctx context.Context) (*Process, error) {
	return StartMosquittoWith(ctx, MosquittoOptions{})
}

// StartMosquittoWith is StartMosquitto with extra configuration.
func StartMosquittoWith(ctx context.Context, o MosquittoOptions) (*Process, error) {
	bin, err := MosquittoPath()
	if err != nil {
		return nil, err
	}
	return retryStart(ctx, 3, func() (*Process, error) { return startMosquittoOnce(ctx, bin, o) })
}

// retryStart calls start up to attempts times: a free port can be taken by another
// process between probing it and the broker binding it.
func retryStart(ctx context.Context, attempts int, start func() (*Process, error)) (*Process, error) {
	var lastErr error
	for range attempts {
		p, err := start()
		if err == nil {
			return p, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startMosquittoOnce(ctx context.Context, bin string, o MosquittoOptions) (*Process, error) {
	tcpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	wsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rtcomm-mosquitto-")
	if err != nil {
		return nil, fmt.Errorf("mosquitto: temp dir: %w", err)
	}
	extra := slices.Clone(o.ConfigLines)
	if len(o.Passwords) > 0 {
		pwFile := filepath.Join(dir, "passwd")
		if err := writeMosquittoPasswords(ctx, pwFile, o.Passwords); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		extra = append(extra, "password_file "+pwFile)
	}
	if len(extra) > 0 && os.Geteuid() == 0 {
		// Started as root, mosquitto switches to the "mosquitto" user after reading its
		// configuration and only then opens password_file and acl_file, which then live in
		// our private (0700) temporary directory or the caller's tree: stay root instead.
		extra = append([]string{"user root"}, extra...)
	}
	anonymous := "allow_anonymous true\n"
	for _, l := range extra {
		if strings.HasPrefix(strings.TrimSpace(l), "allow_anonymous") {
			anonymous = ""
		}
	}
	conf := fmt.Sprintf(`# written by rtcomm-harness
per_listener_settings false
%spersistence false
log_dest stderr
log_type error
log_type warning
max_queued_messages 100000
%s
listener %d 127.0.0.1
protocol mqtt
listener %d 127.0.0.1
protocol websockets
`, anonymous, strings.Join(extra, "\n"), tcpPort, wsPort)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mosquitto: config: %w", err)
	}
	p := &Process{
		Name: "mosquitto",
		TCP:  "tcp://127.0.0.1:" + strconv.Itoa(tcpPort),
		WS:   "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/mqtt",
		dir:  dir,
	}
	p.relaunch = func(ctx context.Context) error {
		logPath := filepath.Join(dir, "mosquitto.log")
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("mosquitto: log: %w", err)
		}
		cmd := exec.Command(bin, "-c", confPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test process
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("mosquitto: start: %w", err)
		}
		exit := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(exit) }()
		p.mu.Lock()
		p.cmd, p.exit = cmd, exit
		p.mu.Unlock()
		if err := waitPorts(ctx, exit, 10*time.Second, tcpPort, wsPort); err != nil {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("mosquitto: %w; its log: %s", err, log)
		}
		return nil
	}
	if err := p.relaunch(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// MosquittoPasswdPath finds mosquitto_passwd (package mosquitto; /usr/bin on Debian).
func MosquittoPasswdPath() (string, error) {
	if p, err := exec.LookPath("mosquitto_passwd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mosquitto_passwd: %w (%s)", ErrNotInstalled, InstallHint)
}

// writeMosquittoPasswords creates a mosquitto password file (hashed) with mosquitto_passwd -b.
func writeMosquittoPasswords(ctx context.Context, path string, users map[string]string) error {
	bin, err := MosquittoPasswdPath()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return fmt.Errorf("mosquitto: password file: %w", err)
	}
	names := slices.Sorted(maps.Keys(users))
	for _, u := range names {
		// Arguments, not a shell: user names and passwords are passed verbatim.
		out, err := exec.CommandContext(ctx, bin, "-b", path, u, users[u]).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mosquitto_passwd for %q: %w: %s", u, err, out)
		}
	}
	return nil
}

// Close stops the broker (SIGTERM, then SIGKILL after 3 s) and removes its files.
func (p *Process) Close() {
	p.once.Do(func() {
		p.stop(syscall.SIGTERM)
		os.RemoveAll(p.dir)
	})
}

// Kill stops the broker abruptly (SIGKILL), as a crash would.
func (p *Process) Kill() {
	p.stop(syscall.SIGKILL)
	p.Close()
}

// Restart crashes the broker (SIGKILL: no DISCONNECTs, no wills, and without persistence
// every retained message gone) and starts it again with the same configuration on the
// same ports, so its clients see their connections drop and the same address come back.
func (p *Process) Restart(ctx context.Context) error {
	if p.relaunch == nil {
		return fmt.Errorf("%s: restart in place is not supported", p.Name)
	}
	p.stop(syscall.SIGKILL)
	return p.relaunch(ctx)
}

// stop sends sig to the running broker process and waits for it to exit (SIGKILL after 3 s).
func (p *Process) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exit := p.cmd, p.exit
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-exit
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
