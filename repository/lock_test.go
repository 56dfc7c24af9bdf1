package repository_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// lockOpts is a lock for host host, refreshed by the test.
func lockOpts(host string, exclusive bool) repository.LockOptions {
	return repository.LockOptions{Exclusive: exclusive, Hostname: host, PID: 4242, NoRefresh: true}
}

func countLocks(t *testing.T, be storage.Backend) int {
	t.Helper()
	n := 0
	if err := be.List(t.Context(), "locks/", func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLockCompatibility(t *testing.T) {
	tests := []struct {
		held, want bool // exclusive?
		ok         bool
	}{
		{held: false, want: false, ok: true},
		{held: false, want: true, ok: false},
		{held: true, want: false, ok: false},
		{held: true, want: true, ok: false},
	}
	for _, tc := range tests {
		name := map[bool]string{false: "shared", true: "exclusive"}
		t.Run(name[tc.held]+"-then-"+name[tc.want], func(t *testing.T) {
			be := storagetest.NewMemory()
			clk := clock.NewFake(time.Now())
			repo := newRepo(t, be, clk).Repository
			first, err := repo.LockWithOptions(t.Context(), lockOpts("backup01", tc.held))
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(3 * time.Minute)
			second, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", tc.want))
			if tc.ok {
				if err != nil {
					t.Fatalf("second lock: %v", err)
				}
				if n := countLocks(t, be); n != 2 {
					t.Fatalf("%d lock objects, want 2", n)
				}
				_ = second.Unlock(t.Context())
			} else {
				var le *repository.LockedError
				if !errors.Is(err, repository.ErrLocked) || !errors.As(err, &le) || len(le.Holders) != 1 {
					t.Fatalf("second lock = %v, want a LockedError naming one holder", err)
				}
				for _, want := range []string{"backup01", "pid 4242", "created 3m0s ago", "expires in 27m0s"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if n := countLocks(t, be); n != 1 {
					t.Fatalf("%d lock objects after a refused lock, want 1 (the refused one removed)", n)
				}
			}
			if err := first.Unlock(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := first.Unlock(t.Context()); err != nil {
				t.Fatalf("second Unlock: %v", err)
			}
			if first.Context().Err() == nil {
				t.Fatal("lock context not cancelled by Unlock")
			}
		})
	}
}

func TestLockStaleTakeover(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	dead, err := repo.LockWithOptions(t.Context(), lockOpts("dead-host", false))
	if err != nil {
		t.Fatal(err)
	}
	// Within its expiry the lock blocks prune, even without refreshes.
	clk.Advance(repository.DefaultLockExpiry - time.Second)
	if _, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true)); !errors.Is(err, repository.ErrLocked) {
		t.Fatalf("exclusive before expiry = %v, want ErrLocked", err)
	}
	clk.Advance(time.Second)
	ex, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if err != nil {
		t.Fatalf("exclusive after expiry: %v", err)
	}
	stale := ex.StaleLocks()
	if len(stale) != 1 || stale[0].Hostname != "dead-host" || stale[0].ID != dead.Info().ID {
		t.Fatalf("StaleLocks = %+v, want the dead host's lock reported", stale)
	}
	if !strings.Contains(stale[0].Describe(clk.Now()), "expired 0s ago") {
		t.Errorf("Describe = %q", stale[0].Describe(clk.Now()))
	}
	if n := countLocks(t, be); n != 1 {
		t.Fatalf("%d lock objects, want only the exclusive one", n)
	}
	// The "dead" host was only asleep: it must notice it lost its lock.
	if err := dead.Refresh(t.Context()); !errors.Is(err, repository.ErrLockLost) {
		t.Fatalf("Refresh of a taken-over lock = %v, want ErrLockLost", err)
	}
	_ = ex.Unlock(t.Context())

	// A stale exclusive lock does not block a shared locker, which reports
	// it and leaves it alone.
	deadPrune, err := repo.LockWithOptions(t.Context(), lockOpts("dead-prune", true))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(repository.DefaultLockExpiry)
	sh, err := repo.LockWithOptions(t.Context(), lockOpts("backup01", false))
	if err != nil {
		t.Fatalf("shared over a stale exclusive: %v", err)
	}
	if s := sh.StaleLocks(); len(s) != 1 || s[0].ID != deadPrune.Info().ID {
		t.Fatalf("shared StaleLocks = %+v", s)
	}
	if n := countLocks(t, be); n != 2 {
		t.Fatalf("%d lock objects, want 2 (a shared locker removes nothing)", n)
	}
}

func TestLockUnreadableIsExclusiveUntilExpiry(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	if err := be.Put(t.Context(), "locks/garbage.json", strings.NewReader("{not json"), 9); err != nil {
		t.Fatal(err)
	}
	_, err := repo.LockWithOptions(t.Context(), lockOpts("backup01", false))
	if !errors.Is(err, repository.ErrLocked) || !strings.Contains(err.Error(), "unreadable lock garbage") {
		t.Fatalf("shared lock over an unreadable one = %v", err)
	}
	clk.Advance(repository.DefaultLockExpiry + time.Minute)
	ex, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if err != nil {
		t.Fatal(err)
	}
	if s := ex.StaleLocks(); len(s) != 1 || !s[0].Unreadable {
		t.Fatalf("StaleLocks = %+v, want the unreadable lock reported", s)
	}
}

func TestLockCheckAfterWrite(t *testing.T) {
	mem := storagetest.NewMemory()
	be := storagetest.NewFaulty(mem)
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	other, err := repository.Open(t.Context(), mem, repository.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	// A prune on another host writes its lock between our first look and
	// our write: only the second look can see it.
	var rival *repository.Lock
	be.AddFault(func(op storagetest.Op, name string) error {
		if op == storagetest.OpPutIfAbsent && strings.HasPrefix(name, "locks/") && rival == nil {
			var err error
			rival, err = other.LockWithOptions(t.Context(), lockOpts("prune02", true))
			if err != nil {
				t.Errorf("rival lock: %v", err)
			}
		}
		return nil
	})
	_, err = repo.LockWithOptions(t.Context(), lockOpts("backup01", false))
	if !errors.Is(err, repository.ErrLocked) || !strings.Contains(err.Error(), "prune02") {
		t.Fatalf("lock racing an exclusive one = %v, want ErrLocked naming prune02", err)
	}
	if n := countLocks(t, mem); n != 1 {
		t.Fatalf("%d lock objects, want only the rival's", n)
	}
	if rival == nil || rival.Context().Err() != nil {
		t.Fatal("the rival lost its lock")
	}
}

func TestLockRefresher(t *testing.T) {
	be := storagetest.NewMemory()
	start := time.Now()
	clk := clock.NewFake(start)
	repo := newRepo(t, be, clk).Repository
	l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Hostname: "backup01", Purpose: "backup"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Unlock(context.WithoutCancel(t.Context())) }()
	// Two hours of a long backup: the refresher keeps the lock alive, so
	// prune is refused all along.
	for i := 1; i <= 24; i++ {
		if err := clk.BlockUntil(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(repository.DefaultLockRefreshInterval)
		if err := clk.BlockUntil(t.Context(), 1); err != nil { // refreshed, waiting again
			t.Fatal(err)
		}
		want := start.Add(time.Duration(i) * repository.DefaultLockRefreshInterval)
		if got := l.Info().Refreshed; !got.Equal(want.UTC()) {
			t.Fatalf("tick %d: refreshed %v, want %v", i, got, want)
		}
	}
	locks, err := repo.ListLocks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 1 || !locks[0].Expires.Equal(clk.Now().Add(repository.DefaultLockExpiry).UTC()) || locks[0].Purpose != "backup" {
		t.Fatalf("stored lock %+v", locks)
	}
	_, err = repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if !errors.Is(err, repository.ErrLocked) {
		t.Fatalf("exclusive lock during a refreshed backup = %v", err)
	}
	if l.Context().Err() != nil {
		t.Fatalf("lock context cancelled: %v", context.Cause(l.Context()))
	}
}

func TestLockLost(t *testing.T) {
	tests := []struct {
		name string
		// break the lock after it was taken
		breakIt func(t *testing.T, be *storagetest.Faulty, mem *storagetest.Memory)
		// ticks until the loss is noticed
		ticks int
	}{
		{"storage unreachable", func(t *testing.T, be *storagetest.Faulty, _ *storagetest.Memory) {
			be.AddFault(func(op storagetest.Op, name string) error {
				if strings.HasPrefix(name, "locks/") {
					return errors.New("connection refused")
				}
				return nil
			})
		}, 5}, // 25 min: the next try (30 min) would be too late
		{"removed by another host", func(t *testing.T, _ *storagetest.Faulty, mem *storagetest.Memory) {
			err := mem.List(t.Context(), "locks/", func(fi storage.ObjectInfo) error { return mem.Delete(t.Context(), fi.Name) })
			if err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := storagetest.NewMemory()
			be := storagetest.NewFaulty(mem)
			clk := clock.NewFake(time.Now())
			repo := newRepo(t, be, clk).Repository
			l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, be, mem)
			for i := 1; i <= tc.ticks; i++ {
				if l.Context().Err() != nil {
					t.Fatalf("lost after %d ticks, want %d", i-1, tc.ticks)
				}
				if err := clk.BlockUntil(t.Context(), 1); err != nil {
					t.Fatal(err)
				}
				clk.Advance(repository.DefaultLockRefreshInterval)
			}
			<-l.Context().Done()
			if cause := context.Cause(l.Context()); !errors.Is(cause, repository.ErrLockLost) {
				t.Fatalf("cause = %v, want ErrLockLost", cause)
			}
			if !clk.Now().Before(l.Info().Expires) {
				t.Fatalf("noticed the loss at %v, after the lock expired at %v", clk.Now(), l.Info().Expires)
			}
			_ = l.Unlock(t.Context())
		})
	}
}

func TestLockRetry(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	ex, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *repository.Lock
		err error
	}
	got := make(chan result)
	go func() {
		o := lockOpts("backup01", false)
		o.RetryFor, o.RetryInterval = 10*time.Minute, time.Minute
		l, err := repo.LockWithOptions(t.Context(), o)
		got <- result{l, err}
	}()
	if err := clk.BlockUntil(t.Context(), 1); err != nil { // first try failed, waiting
		t.Fatal(err)
	}
	if err := ex.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	r := <-got
	if r.err != nil {
		t.Fatalf("retried lock: %v", r.err)
	}
	_ = r.l.Unlock(t.Context())

	// Without release, it gives up after RetryFor with ErrLocked.
	ex, err = repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ex.Unlock(t.Context()) }()
	go func() {
		o := lockOpts("backup01", false)
		o.RetryFor, o.RetryInterval = 3*time.Minute, time.Minute
		l, err := repo.LockWithOptions(t.Context(), o)
		got <- result{l, err}
	}()
	for range 3 {
		if err := clk.BlockUntil(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	if r := <-got; !errors.Is(r.err, repository.ErrLocked) {
		t.Fatalf("lock after RetryFor = %v, want ErrLocked", r.err)
	}
}

// TestLockExclusiveRace lets many lockers race for the exclusive lock on
// the real clock: never more than one may hold it.
func TestLockExclusiveRace(t *testing.T) {
	be := storagetest.NewMemory()
	repo := newRepo(t, be, nil).Repository
	var (
		mu           sync.Mutex
		shared, excl int
		won          atomic.Int32
	)
	for range 50 {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: i%2 == 0, NoRefresh: true})
				if errors.Is(err, repository.ErrLocked) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				won.Add(1)
				// Counted while the lock object surely exists, so any
				// overlap seen here is a real one.
				mu.Lock()
				if l.Info().Exclusive {
					excl++
				} else {
					shared++
				}
				if excl > 0 && excl+shared > 1 {
					t.Errorf("an exclusive lock held together with %d others", excl+shared-1)
				}
				mu.Unlock()
				runtime.Gosched() // let the others try while we hold it
				mu.Lock()
				if l.Info().Exclusive {
					excl--
				} else {
					shared--
				}
				mu.Unlock()
				_ = l.Unlock(t.Context())
			}()
		}
		wg.Wait()
	}
	if won.Load() == 0 {
		t.Fatal("no locker ever won")
	}
	if n := countLocks(t, be); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

func TestRemoveStaleLocks(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	if _, err := repo.LockWithOptions(t.Context(), lockOpts("old", false)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if _, err := repo.LockWithOptions(t.Context(), lockOpts("live", false)); err != nil {
		t.Fatal(err)
	}
	removed, err := repo.RemoveStaleLocks(t.Context(), clk.Now(), false)
	if err != nil || len(removed) != 1 || removed[0].Hostname != "old" {
		t.Fatalf("RemoveStaleLocks = %+v, %v", removed, err)
	}
	removed, err = repo.RemoveStaleLocks(t.Context(), clk.Now(), true)
	if err != nil || len(removed) != 1 || removed[0].Hostname != "live" {
		t.Fatalf("RemoveStaleLocks(force) = %+v, %v", removed, err)
	}
}

// hangingBackend blocks lock refreshes until their context ends, like a
// storage request stuck in retries.
type hangingBackend struct {
	storage.Backend
	hang atomic.Bool
}

func (h *hangingBackend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if h.hang.Load() && strings.HasPrefix(name, "locks/") {
		<-ctx.Done()
		return storage.ObjectInfo{}, ctx.Err()
	}
	return h.Backend.Stat(ctx, name)
}

// A refresh stuck in storage must give up before the lock expires, so the
// holder stops before another process may take the lock over.
func TestLockRefreshDoesNotOutliveTheLock(t *testing.T) {
	be := &hangingBackend{Backend: storagetest.NewMemory()}
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	// At the first refresh, 50ms (real time) are left before the lock's
	// last minute.
	l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{
		Expiry: 6*time.Minute + 50*time.Millisecond, RefreshInterval: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Unlock(context.Background()) }()
	be.hang.Store(true)
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	select {
	case <-l.Context().Done():
	case <-time.After(30 * time.Second): // a guard against hanging forever, not a synchronisation
		t.Fatal("the lock holder kept running while its refresh hung past the lock's expiry")
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, repository.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
}

// fakeHost plays the machine locks run on: self, and the reasons why some
// pids of it are gone.
type fakeHost struct {
	self repository.Process
	gone map[int]string
	// asked are the holders Gone was asked about.
	asked []repository.Process
}

func (h *fakeHost) Self() repository.Process { return h.self }

func (h *fakeHost) Gone(p repository.Process) string {
	h.asked = append(h.asked, p)
	if p.Hostname != h.self.Hostname {
		return ""
	}
	return h.gone[p.PID]
}

// TestLockHostSeam: a lock records its holder as the Host tells it (boot ID
// and start time only for this process), ListLocks asks the Host about every
// readable lock, and a holder the Host knows gone makes its lock stale at
// once; a Host that knows nothing (systems without /proc) leaves every lock
// to its expiry.
func TestLockHostSeam(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	newRepo(t, be, clk)
	host := &fakeHost{self: repository.Process{Hostname: "backup01", BootID: "boot-1", PID: 100, StartTicks: 777}, gone: map[int]string{}}
	repo, err := repository.Open(t.Context(), be, repository.WithClock(clk), repository.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	own, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Purpose: "backup", NoRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Hostname: "backup02", PID: 100, NoRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := storage.ReadAll(t.Context(), be, "locks/"+own.Info().ID+".json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hostname":"backup01"`, `"boot_id":"boot-1"`, `"pid":100`, `"process_start_ticks":777`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("lock object %s lacks %s", raw, want)
		}
	}
	if p := other.Info().Process; p.BootID != "" || p.StartTicks != 0 {
		t.Errorf("a lock for another holder records %+v, want no boot ID or start time", p)
	}
	if err := be.Put(t.Context(), "locks/garbage.json", strings.NewReader("{"), 1); err != nil {
		t.Fatal(err)
	}

	// Nothing known gone: both locks live, prune refused.
	host.asked = nil
	if _, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true)); !errors.Is(err, repository.ErrLocked) {
		t.Fatalf("prune = %v, want ErrLocked", err)
	}
	if len(host.asked) != 2 {
		t.Errorf("Gone asked about %+v, want the two readable locks", host.asked)
	}
	host.gone[100] = "process 100 is no longer running on backup01"
	locks, err := repo.ListLocks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locks {
		wantGone := l.ID == own.Info().ID
		if (l.HolderGone != "") != wantGone || l.Stale(clk.Now()) != wantGone {
			t.Errorf("lock %s of %s: holder gone %q, stale %v", l.ID, l.Hostname, l.HolderGone, l.Stale(clk.Now()))
		}
	}
	// The other host's lock and the unreadable one still block prune
	// until they expire.
	_, err = repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	var le *repository.LockedError
	if !errors.As(err, &le) || len(le.Holders) != 2 {
		t.Fatalf("prune = %v, want the other host's and the unreadable lock holding it", err)
	}
	clk.Advance(repository.DefaultLockExpiry + time.Minute) // the unreadable one dates from its real write time
	ex, err := repo.LockWithOptions(t.Context(), lockOpts("prune01", true))
	if err != nil {
		t.Fatalf("prune after expiry: %v", err)
	}
	if s := ex.StaleLocks(); len(s) != 3 {
		t.Fatalf("StaleLocks = %+v, want all three", s)
	}
}
