package extbroker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Launcher is one third-party broker this package can start for a certification run.
type Launcher struct {
	Name string
	// Start starts the broker on free loopback ports; stop it with Process.Close.
	Start func(context.Context) (*Process, error)
	// Hint says how to install it.
	Hint func() string
	// RequireEnv, set to 1, makes its tests fail instead of skip when it is not installed (CI).
	RequireEnv string
	// Timeout bounds its start in tests.
	Timeout time.Duration
}

// Launchers lists the brokers `certify --launch` knows, by name.
var Launchers = []Launcher{
	{"mosquitto", StartMosquitto, func() string { return InstallHint }, RequireEnv, 15 * time.Second},
	{"rabbitmq", StartRabbitMQ, func() string { return RabbitMQInstallHint }, RequireRabbitMQEnv, rabbitStartTimeout + 10*time.Second},
	{"activemq", StartActiveMQ, func() string { return ActiveMQInstallHint }, RequireActiveMQEnv, activeMQStartTimeout + 10*time.Second},
	{"ejabberd", StartEjabberd, func() string { return EjabberdInstallHint }, RequireEjabberdEnv, ejabberdStartTimeout + 10*time.Second},
	{"aedes", StartAedes, AedesInstallHint, RequireAedesEnv, aedesStartTimeout + 10*time.Second},
}

// LauncherNames returns the names of Launchers, e.g. for --help.
func LauncherNames() []string {
	var out []string
	for _, l := range Launchers {
		out = append(out, l.Name)
	}
	return out
}

// Launch starts the named broker.
func Launch(ctx context.Context, name string) (*Process, error) {
	i := slices.IndexFunc(Launchers, func(l Launcher) bool { return l.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("unknown broker %q: want one of %s", name, strings.Join(LauncherNames(), ", "))
	}
	return Launchers[i].Start(ctx)
}

// TB is the part of testing.TB the ForTest helpers use (this package does not link "testing").
type TB interface {
	Helper()
	Skipf(string, ...any)
	Fatalf(string, ...any)
	Cleanup(func())
}

// ForTest starts the launcher's broker for one test and stops it at cleanup; the test is
// skipped with the install hint when the broker is absent, unless l.RequireEnv=1.
func (l Launcher) ForTest(t TB) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), l.Timeout)
	defer cancel()
	p, err := l.Start(ctx)
	if errors.Is(err, ErrNotInstalled) && os.Getenv(l.RequireEnv) != "1" {
		t.Skipf("%s is not installed: %s", l.Name, l.Hint())
	}
	if err != nil {
		t.Fatalf("start %s: %v", l.Name, err)
	}
	t.Cleanup(p.Close)
	return p
}
