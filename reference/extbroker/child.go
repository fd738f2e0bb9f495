package extbroker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// childSpec is one broker child process started by startChild.
type childSpec struct {
	name    string        // broker name, in errors
	dir     string        // private temporary directory; removed on failure and by Close
	cmd     *exec.Cmd     // not started; Stdout/Stderr go to dir/<name>.out
	ports   []int         // loopback ports that must accept connections before it counts as started
	timeout time.Duration // upper bound for start-up
	tcp, ws string        // the Process URLs
}

// startChild starts s.cmd with its output in the temporary directory, waits for its ports,
// and returns the running Process; on any failure it stops the child, removes the
// directory and returns an error carrying the tail of the broker's output.
func startChild(ctx context.Context, s childSpec) (*Process, error) {
	outPath := filepath.Join(s.dir, s.name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("%s: log: %w", s.name, err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	if err := s.cmd.Start(); err != nil {
		out.Close()
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("%s: start %s: %w", s.name, s.cmd.Path, err)
	}
	p := &Process{Name: s.name, TCP: s.tcp, WS: s.ws, cmd: s.cmd, dir: s.dir, exit: make(chan struct{})}
	go func() { _ = s.cmd.Wait(); out.Close(); close(p.exit) }()
	if err := waitPorts(ctx, p.exit, s.timeout, s.ports...); err != nil {
		p.Close() // SIGTERM by PID, then removes the directory
		log, _ := os.ReadFile(outPath)
		return nil, fmt.Errorf("%s: %w; its output: %s", s.name, err, tailBytes(log, 2000))
	}
	return p, nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// writeFiles writes name -> body into dir.
func writeFiles(dir string, files map[string]string) error {
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}
