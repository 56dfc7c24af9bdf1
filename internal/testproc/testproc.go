package testproc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// InCI reports whether we run in continuous integration (CI=true or 1),
// where a server binary that is missing fails the tests instead of
// skipping them.
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// pollInterval is how often WaitReady asks a starting server.
const pollInterval = 20 * time.Millisecond

// Process is one running server executable.
type Process struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	log     *Log
}

// Start runs bin with args, its stdout and stderr into log, and env as its
// environment (nil: this process's). On Linux the child is SIGKILLed
// when the thread that started it dies, so a crashed or killed test binary
// leaves no server behind.
func Start(bin string, args, env []string, log *Log) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{name: bin, cmd: cmd, done: make(chan struct{}), log: log}
	if i := strings.LastIndexByte(bin, '/'); i >= 0 {
		p.name = bin[i+1:]
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// WaitReady calls ready every pollInterval until it reports true, the
// process exits (an error with what it printed), or timeout passes.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if ready(ctx) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v): %s", p.name, p.waitErr, strings.TrimSpace(p.log.String()))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s: %w", p.name, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// HTTPReady is a ready check for WaitReady: a GET of url answers with a
// status ok accepts (nil: any status, which proves the server is up).
func HTTPReady(url string, ok func(status int) bool) func(context.Context) bool {
	client := &http.Client{Timeout: time.Second}
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return ok == nil || ok(resp.StatusCode)
	}
}

// Kill SIGKILLs the process, unless it has exited, and waits for its end.
// Requests in flight are cut off, as by a crash.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// PID is the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// FreeAddr returns a 127.0.0.1:PORT nothing listens on at the moment: the
// server is started on it right after, and a race with another process
// taking the port fails the start visibly.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Log collects a server's output for failure messages: the exec package
// writes to it from its own goroutine. It keeps the first MiB, so a
// chatty server cannot grow it without bound.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Log) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns what was written.
func (b *Log) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
