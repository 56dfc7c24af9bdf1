package backup_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
)

func (f *fixture) locks(t *testing.T) []repository.LockInfo {
	t.Helper()
	locks, err := f.repo.ListLocks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return locks
}

// TestRunHoldsSharedLock: a run takes its shared lock before it reads or
// writes anything in the repository, prune is refused while it holds it,
// and it is released at the end.
func TestRunHoldsSharedLock(t *testing.T) {
	f := newFixture(t)
	vm := f.vm(t, "vm-locked", 31)
	var pruneErr error
	opts := backup.Options{Lock: func(ctx context.Context, repo *repository.Repository) (*repository.Lock, error) {
		if n := f.be.PutBytes("data/"); n != 0 {
			t.Errorf("%d chunk bytes written before the lock", n)
		}
		l, err := repo.LockWithOptions(ctx, repository.LockOptions{Purpose: "backup"})
		if err == nil {
			_, pruneErr = repository.Prune(ctx, repo, repository.Policy{Last: 1}, repository.PruneOptions{})
		}
		return l, err
	}}
	results, err := backup.New(f.env.Client, f.repo, opts, nil).Run(t.Context(), backup.Selection{Names: []string{vm.Name}})
	if err != nil || backup.Failed(results) != 0 {
		t.Fatalf("Run = %v, %v", err, results[0].Err)
	}
	if !errors.Is(pruneErr, repository.ErrLocked) {
		t.Fatalf("prune during the backup = %v, want ErrLocked", pruneErr)
	}
	if l := f.locks(t); len(l) != 0 {
		t.Fatalf("locks left after the run: %+v", l)
	}
}

// TestRunRefusedDuringPrune: while prune holds the exclusive lock a run
// fails at once, before any snapshot or upload, naming the prune's host.
func TestRunRefusedDuringPrune(t *testing.T) {
	f := newFixture(t)
	vm := f.vm(t, "vm-refused", 32)
	prune, err := f.repo.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: true, Purpose: "prune", Hostname: "prune-host"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prune.Unlock(t.Context()) }()
	f.be.ResetCounters()
	results, err := backup.New(f.env.Client, f.repo, backup.Options{}, nil).Run(t.Context(), backup.Selection{Names: []string{vm.Name}})
	if !errors.Is(err, repository.ErrLocked) || results != nil {
		t.Fatalf("Run during prune = %v, %v; want ErrLocked", results, err)
	}
	if f.be.PutBytes("data/")+f.be.PutBytes("manifests/") != 0 || len(f.ourSnapshots(t, vm)) != 0 {
		t.Fatal("a refused run wrote data or took a snapshot")
	}
}

// TestRunStopsWhenLockLost: if the run's lock is taken over (its refresh
// finds it gone), the run stops and says why instead of committing
// manifests prune may have pulled chunks from under.
func TestRunStopsWhenLockLost(t *testing.T) {
	clk := clock.NewFake(time.Now())
	f := newFixtureWithClock(t, clk)
	vm := f.vm(t, "vm-lost", 33)
	var lock *repository.Lock
	opts := backup.Options{Lock: func(ctx context.Context, repo *repository.Repository) (*repository.Lock, error) {
		var err error
		lock, err = repo.LockWithOptions(ctx, repository.LockOptions{})
		return lock, err
	}}
	events := &loseLockEvents{f: f, t: t, clk: clk, lock: &lock}
	results, err := backup.New(f.env.Client, f.repo, opts, events).Run(t.Context(), backup.Selection{Names: []string{vm.Name}})
	if !errors.Is(err, repository.ErrLockLost) {
		t.Fatalf("Run = %v, want ErrLockLost", err)
	}
	if len(results) != 1 || results[0].Err == nil || len(f.manifests(t)) != 0 {
		t.Fatalf("results %+v: want the VM failed and no manifest written", results)
	}
	if s := f.ourSnapshots(t, vm); len(s) != 0 {
		t.Fatalf("snapshot left: %v", s)
	}
}

// loseLockEvents removes the run's lock when the VM starts, as a prune
// that took it over would, and lets the refresher notice.
type loseLockEvents struct {
	backup.NopEvents
	f    *fixture
	t    *testing.T
	clk  *clock.Fake
	lock **repository.Lock
}

func (e *loseLockEvents) VMStarted(string, int64) {
	l := *e.lock
	err := e.f.be.List(e.t.Context(), "locks/", func(fi storage.ObjectInfo) error { return e.f.be.Delete(e.t.Context(), fi.Name) })
	if err != nil {
		e.t.Error(err)
	}
	if err := e.clk.BlockUntil(e.t.Context(), 1); err != nil {
		e.t.Error(err)
	}
	e.clk.Advance(repository.DefaultLockRefreshInterval)
	<-l.Context().Done()
}
