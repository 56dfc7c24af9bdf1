//go:build linux

package repository_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// lockHolderEnv makes the test binary a lock holder (see
// TestLockHolderProcess) for the repository directory it names.
const lockHolderEnv = "VTPM_BACKUP_TEST_LOCK_HOLDER"

// TestLockHolderProcess is not a test: run as a child process with
// lockHolderEnv set, it takes a shared backup lock in that repository,
// prints the lock's ID and holds it until it is killed.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv(lockHolderEnv)
	if dir == "" {
		t.Skip("helper process for the lock tests")
	}
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(context.Background(), be)
	if err != nil {
		t.Fatal(err)
	}
	l, err := repo.LockWithOptions(context.Background(), repository.LockOptions{Purpose: "backup"})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(l.Info().ID)
	select {} // held until SIGKILL
}

// startLockHolder starts a child process that takes a shared lock in the
// local repository at dir and holds it; it returns the child and the lock.
func startLockHolder(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("lock holder printed no lock ID: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// kill SIGKILLs the child, as the OOM killer or `kill -9` would, and waits
// until it has exited.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) {
		t.Fatalf("wait for the killed child: %v", err)
	}
}

// TestKilledHolderIsStaleAtOnce: the lock of a backup killed on this host
// blocks nothing from the moment its process is gone, though it would not
// expire for 30 minutes; while the process runs, it blocks prune. A lock of
// another host, or an old lock without boot ID and start time, keeps the
// expiry rule even when its pid is free here.
func TestKilledHolderIsStaleAtOnce(t *testing.T) {
	f := repotest.New(t, repotest.Options{})
	child, id := startLockHolder(t, f.Backend.Location())

	_, err := f.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: true, Purpose: "prune", NoRefresh: true})
	if !errors.Is(err, repository.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", child.Process.Pid)) {
		t.Fatalf("prune while the holder runs = %v, want ErrLocked naming its pid", err)
	}
	kill(t, child)

	locks, err := f.ListLocks(t.Context())
	if err != nil || len(locks) != 1 || locks[0].ID != id {
		t.Fatalf("locks after the kill = %+v, %v", locks, err)
	}
	now := f.Clock().Now()
	dead := locks[0]
	if !dead.Stale(now) || !now.Before(dead.Expires) || !strings.Contains(dead.HolderGone, "no longer running") {
		t.Fatalf("killed holder's lock: stale %v, expires %v, holder gone %q; want stale at once, long before expiry",
			dead.Stale(now), dead.Expires, dead.HolderGone)
	}
	if d := dead.Describe(now); !strings.Contains(d, fmt.Sprintf("stale: process %d is no longer running", child.Process.Pid)) {
		t.Errorf("Describe = %q, want it to say the process is gone", d)
	}

	// Locks the same-host rule must not judge: another host's, and an
	// old one without boot ID and start time, both naming the dead pid.
	for _, p := range []repository.Process{
		{Hostname: dead.Hostname + "-twin", BootID: dead.BootID, PID: dead.PID, StartTicks: dead.StartTicks},
		{Hostname: dead.Hostname, PID: dead.PID},
	} {
		putLock(t, f, repository.LockInfo{Process: p, Purpose: "backup", Created: now, Refreshed: now, Expires: now.Add(time.Hour)})
	}
	_, err = f.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: true, Purpose: "prune", NoRefresh: true})
	var le *repository.LockedError
	if !errors.As(err, &le) || len(le.Holders) != 2 {
		t.Fatalf("prune over another host's and an old lock = %v, want both holding it up", err)
	}
	for _, h := range le.Holders {
		if h.ID == id || h.HolderGone != "" {
			t.Fatalf("holder %+v: want only the two expiring locks", h)
		}
	}
	removed, err := f.RemoveStaleLocks(t.Context(), now, false)
	if err != nil || len(removed) != 1 || removed[0].ID != id {
		t.Fatalf("RemoveStaleLocks = %+v, %v; want the killed holder's lock only", removed, err)
	}
}

// TestKilledHolderTakenOverByPrune: prune takes over a killed backup's lock
// at once and reports it.
func TestKilledHolderTakenOverByPrune(t *testing.T) {
	f := repotest.New(t, repotest.Options{})
	child, id := startLockHolder(t, f.Backend.Location())
	kill(t, child)
	ex, err := f.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: true, Purpose: "prune", NoRefresh: true})
	if err != nil {
		t.Fatalf("prune after the holder was killed: %v", err)
	}
	defer func() { _ = ex.Unlock(context.WithoutCancel(t.Context())) }()
	if s := ex.StaleLocks(); len(s) != 1 || s[0].ID != id || s[0].HolderGone == "" {
		t.Fatalf("StaleLocks = %+v, want the killed holder's", s)
	}
	if locks, _ := f.ListLocks(t.Context()); len(locks) != 1 || locks[0].ID != ex.Info().ID {
		t.Fatalf("locks after the takeover: %+v", locks)
	}
}

// putLock writes a lock object as another process would have.
func putLock(t *testing.T, f *repotest.Repo, li repository.LockInfo) {
	t.Helper()
	data, err := json.Marshal(li)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("locks/%x.json", time.Now().UnixNano())
	if err := f.Backend.Put(t.Context(), name, strings.NewReader(string(data)), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}
