// Command rtcomm-harness is the conformance and performance harness for Rtcomm,
// the JSON-over-MQTT signaling protocol of WebSphere Liberty's rtcomm-1.0 feature.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise it comes
// from the module build info.
var version = ""

// harnessVersion returns the version recorded in certification bundles and load results.
func harnessVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	// `go build` in a git checkout stamps the commit; `go run` does not.
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) < 7 {
		return "dev"
	}
	if dirty {
		return rev[:7] + "-dirty"
	}
	return rev[:7]
}

// exitError carries a specific exit status out of a command (only main exits).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "rtcomm-harness:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "rtcomm-harness",
		Short: "Conformance and load harness for Rtcomm signaling over MQTT",
		Long: `rtcomm-harness checks and measures Rtcomm (JSON-over-MQTT WebRTC signaling) targets.

  serve      run the reference target: embedded MQTT broker + reference connector
             (or the connector alone against an external broker)
  load       simulate thousands of endpoints and measure (no flags: 30 s demo)
  capacity   find the highest call (or registration) rate the target sustains within an SLO
  soak       long load against the embedded reference; checks that resources stay flat

Everything defaults to loopback addresses. See README.md for the target declaration
format and docs/ for architecture, requirements and performance.`,
		Version:       harnessVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newServeCmd(&g))
	root.AddCommand(newCertifyCmd(&g))
	root.AddCommand(newCheckCmd(&g))
	root.AddCommand(newLoadCmd(&g))
	root.AddCommand(newReportCmd())
	root.AddCommand(newCapacityCmd(&g))
	root.AddCommand(newSoakCmd(&g))
	return root
}

// logger builds the process logger from the global flags; logs go to stderr so
// stdout stays for results.
func (g *globalFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}
