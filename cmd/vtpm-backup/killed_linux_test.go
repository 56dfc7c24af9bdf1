//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// child is vtpm-backup running in a process of its own (the test binary
// running main with asMainEnv, see TestMain), so a test can SIGKILL it as the OOM killer or
// an impatient admin would.
type child struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	// exited is closed once the process has exited and been waited for;
	// err is then its Wait error.
	exited chan struct{}
	err    error
}

// startCLI starts vtpm-backup args in a child process.
func startCLI(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Env = append(os.Environ(), asMainEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.kill(t) })
	return c
}

// kill SIGKILLs the child unless it has exited, and waits for its exit.
// It reports whether the signal killed it.
func (c *child) kill(t *testing.T) bool {
	t.Helper()
	select {
	case <-c.exited:
		return false
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill child: %v", err)
	}
	<-c.exited
	var ee *exec.ExitError
	return errors.As(c.err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// diskGate holds the simulator's answers to disk reads while closed, and
// tells when the first one arrives: by then the backup has taken its lock
// and its snapshot.
type diskGate struct {
	mu      sync.Mutex
	closed  bool
	arrived chan struct{}
	once    sync.Once
}

func newDiskGate() *diskGate { return &diskGate{closed: true, arrived: make(chan struct{})} }

func (g *diskGate) open() {
	g.mu.Lock()
	g.closed = false
	g.mu.Unlock()
}

func (g *diskGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		hold := g.closed && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "-flat.vmdk")
		g.mu.Unlock()
		if hold {
			g.once.Do(func() { close(g.arrived) })
			<-r.Context().Done() // until the reader is gone
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestKilledBackupDoesNotBlockTheNext is issue 13's scenario: a backup
// SIGKILLed while it reads a disk leaves its lock and its snapshot behind;
// the same command run again at once on the same host succeeds, having
// swept that snapshot, and none is left; unlock then removes the dead run's
// lock without --remove-all and says why.
func TestKilledBackupDoesNotBlockTheNext(t *testing.T) {
	gate := newDiskGate()
	env := simtest.Start(t, vspheretest.EnvOptions{Handler: gate.wrap})
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "win11-vtpm", Seed: 13, DiskSize: 8 << 20})
	repoDir := initLocalRepo(t)
	args := append(append([]string{"--json", "--repo", repoDir}, vcArgs(env)...), "backup", vm.Name)

	killed := startCLI(t, args...)
	select {
	case <-gate.arrived:
	case <-killed.exited:
		t.Fatalf("the backup ended before reading its disk: %v\n%s", killed.err, killed.stderr.String())
	}
	snaps, err := env.Client.FindSnapshots(t.Context(), vm.VM, backup.SnapshotPrefix)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots while the backup reads: %+v, %v", snaps, err)
	}
	if !killed.kill(t) {
		t.Fatalf("the backup was not killed: %v", killed.err)
	}
	be, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	locks, err := repo.ListLocks(t.Context())
	if err != nil || len(locks) != 1 || locks[0].PID != killed.cmd.Process.Pid {
		t.Fatalf("locks left by the killed run: %+v, %v", locks, err)
	}
	gate.open()

	stdout, stderr, code := cli(t, args...)
	if code != exitOK {
		t.Fatalf("the backup after the kill: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, snaps[0].Name) {
		t.Errorf("the next backup does not report sweeping %s:\n%s", snaps[0].Name, stdout)
	}
	if left, err := env.Client.FindSnapshots(t.Context(), vm.VM, backup.SnapshotPrefix); err != nil || len(left) != 0 {
		t.Fatalf("snapshots after the next backup: %+v, %v", left, err)
	}
	if ids, err := repo.ListBackupIDs(t.Context()); err != nil || len(ids) != 1 {
		t.Fatalf("backups: %v, %v", ids, err)
	}

	stdout, stderr, code = cli(t, "--json", "--repo", repoDir, "unlock")
	msgs := ofType(jsonLines(t, stdout), "lock")
	if code != exitOK || len(msgs) != 1 || msgs[0]["removed"] != true || msgs[0]["stale"] != true {
		t.Fatalf("unlock: exit %d, %v\n%s", code, msgs, stderr)
	}
	want := fmt.Sprintf("process %d is no longer running", killed.cmd.Process.Pid)
	if r, _ := msgs[0]["stale_reason"].(string); !strings.Contains(r, want) {
		t.Errorf("unlock says stale because %q, want %q", r, want)
	}
	if locks, _ := repo.ListLocks(t.Context()); len(locks) != 0 {
		t.Fatalf("locks after unlock: %+v", locks)
	}
}
