package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

const lockPrefix = "locks/"

// Lock timing defaults. A backup host that dies leaves a lock that blocks
// prune for at most DefaultLockExpiry.
const (
	DefaultLockExpiry          = 30 * time.Minute
	DefaultLockRefreshInterval = 5 * time.Minute
)

// Lock errors, checked with errors.Is.
var (
	// ErrLocked: another live lock conflicts with the one asked for. The
	// error is a *LockedError naming the holders.
	ErrLocked = errors.New("repository is locked")
	// ErrLockLost: a lock could not be refreshed before it expired, or was
	// removed by another process, so the work it protected must stop.
	ErrLockLost = errors.New("repository lock lost")
)

// LockInfo is the content of a lock object.
type LockInfo struct {
	// ID names the lock object (locks/<ID>.json); not stored in it.
	ID string `json:"-"`
	// Process is the holder: host name, boot ID, pid and start time.
	Process
	Exclusive bool      `json:"exclusive"`
	Purpose   string    `json:"purpose,omitempty"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
	Expires   time.Time `json:"expires"`
	// Unreadable is set for a lock object that could not be parsed; it is
	// treated as exclusive and expiring DefaultLockExpiry after it was
	// written, so garbage in locks/ blocks nothing forever.
	Unreadable bool `json:"-"`
	// HolderGone says why the holder is known to have stopped (it ran on
	// this host and is gone, see Host.Gone); set by ListLocks. Such a lock
	// is stale at once, whatever its expiry.
	HolderGone string `json:"-"`
}

// Stale reports whether the lock is stale at now: its holder is known gone,
// or it has expired.
func (li LockInfo) Stale(now time.Time) bool {
	return li.HolderGone != "" || !now.Before(li.Expires)
}

// Describe names the lock for people: kind, holder, age and expiry.
func (li LockInfo) Describe(now time.Time) string {
	kind := "shared"
	if li.Exclusive {
		kind = "exclusive"
	}
	if li.Unreadable {
		return fmt.Sprintf("unreadable lock %s (written %s ago, treated as exclusive until %s)",
			li.ID, roundAge(now.Sub(li.Created)), li.Expires.UTC().Format(time.RFC3339))
	}
	purpose := ""
	if li.Purpose != "" {
		purpose = " for " + li.Purpose
	}
	expiry := "expires in " + roundAge(li.Expires.Sub(now))
	switch {
	case li.HolderGone != "":
		expiry = "stale: " + li.HolderGone
	case li.Stale(now):
		expiry = "expired " + roundAge(now.Sub(li.Expires)) + " ago"
	}
	return fmt.Sprintf("%s lock %s%s held by %s (pid %d), created %s ago, refreshed %s ago, %s",
		kind, li.ID, purpose, li.Hostname, li.PID, roundAge(now.Sub(li.Created)), roundAge(now.Sub(li.Refreshed)), expiry)
}

func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// LockedError is returned (wrapping ErrLocked) when live locks of others
// conflict with the lock asked for. It names every holder so an operator can
// tell a running job from a dead host.
type LockedError struct {
	// Exclusive is the kind of lock that was asked for.
	Exclusive bool
	// Holders are the conflicting live locks.
	Holders []LockInfo
	// Now is when the conflict was seen, for ages in the message.
	Now time.Time
}

func (e *LockedError) Error() string {
	want := "a shared lock"
	if e.Exclusive {
		want = "an exclusive lock"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v: cannot take %s: ", ErrLocked, want)
	for i, h := range e.Holders {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(h.Describe(e.Now))
	}
	b.WriteString(": wait until it is released, or if its host is dead, until it expires (it is then taken over and reported)")
	return b.String()
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// LockOptions tune Repository.LockWithOptions. The zero value is a shared
// lock with default timing. Time comes from the repository's clock.
type LockOptions struct {
	Exclusive bool
	// Purpose says what the lock protects ("backup", "prune"), for whoever
	// meets it.
	Purpose string
	// Expiry is how long a lock lives without refresh (DefaultLockExpiry).
	Expiry time.Duration
	// RefreshInterval is how often the background refresher rewrites the
	// lock (DefaultLockRefreshInterval). It must be shorter than Expiry.
	RefreshInterval time.Duration
	// NoRefresh disables the background refresher: the caller calls
	// Refresh itself (short operations, tests).
	NoRefresh bool
	// RetryFor keeps trying to take the lock for this long while others
	// hold conflicting locks, every RetryInterval (default one minute);
	// zero fails at once with ErrLocked.
	RetryFor      time.Duration
	RetryInterval time.Duration
	// Hostname and PID name the holder; they default to this process.
	// A holder named here is judged by expiry only: its boot ID and start
	// time are recorded only when it is this process.
	Hostname string
	PID      int
}

// defaults fills in the timing and returns the holder: self unless the
// options name another.
func (o *LockOptions) defaults(self Process) Process {
	if o.Expiry <= 0 {
		o.Expiry = DefaultLockExpiry
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultLockRefreshInterval
	}
	if o.RefreshInterval >= o.Expiry {
		o.RefreshInterval = o.Expiry / 2
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Minute
	}
	holder := self
	if (o.Hostname != "" && o.Hostname != self.Hostname) || (o.PID != 0 && o.PID != self.PID) {
		holder = Process{Hostname: o.Hostname, PID: o.PID}
		if holder.Hostname == "" {
			holder.Hostname = self.Hostname
		}
		if holder.PID == 0 {
			holder.PID = self.PID
		}
	}
	return holder
}

// Lock is a lock held in a repository. Its methods are safe for concurrent
// use.
//
// Locks coordinate writers that must not overlap (restic's model):
//
//	locks/<random id>.json   {hostname, boot_id, pid, process_start_ticks,
//	                          exclusive, purpose, created, refreshed, expires}
//
// Backups take a shared lock, prune an exclusive one. Any number of shared
// locks coexist; an exclusive lock excludes every other lock. Stale locks
// never block anyone, and an exclusive locker removes them and reports each
// one. A lock is stale by one of two rules:
//
//   - Same host, holder gone: a lock written on this host (same host name)
//     whose process is known to have stopped is stale at once: the host has
//     booted since (another boot ID), no process has its pid, or the process
//     with its pid started at another time (the pid was reused, as in a
//     restarted container whose every run is pid 1). A killed backup thus
//     blocks nothing: the next run on the host takes over at once.
//   - Expiry, for every lock: a lock is refreshed every RefreshInterval and
//     is stale once its Expires time has passed (a dead host stops
//     refreshing). Locks of other hosts, and locks written without a boot ID
//     and start time (older versions, systems without /proc), are judged by
//     this rule only.
//
// The first rule trusts host names: two machines or containers with the
// same host name could take each other's live lock for a dead one (the
// twin's lock shows another boot ID, or a pid this one does not run). Give
// every backup host its own host name.
//
// A holder that cannot refresh its lock before it expires treats it as lost
// and cancels its work (Lock.Context), because from then on another host may
// take over.
//
// Taking a lock is check-write-check: list the locks, write ours, list
// again; on a conflict in the second look, remove ours and fail. Two
// racing lockers may both fail, never both succeed (this needs a storage
// with read-after-write listing, which S3 and local directories have).
type Lock struct {
	repo *Repository
	opts LockOptions
	name string

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	info LockInfo
	// stale are stale locks of others met while locking.
	stale []LockInfo
}

// Lock takes a shared (backup) or exclusive (prune) lock with default
// timing and a background refresher; see LockWithOptions.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	return r.LockWithOptions(ctx, LockOptions{Exclusive: exclusive})
}

// LockWithOptions takes a lock. It fails with a *LockedError (ErrLocked)
// when a live lock of another process conflicts: any live lock for an
// exclusive lock, a live exclusive lock for a shared one. Stale locks do not
// conflict: an exclusive locker removes them once it holds its own lock; a
// shared locker leaves them. Either way they are listed by StaleLocks,
// never dropped silently. The returned lock is refreshed in the background
// until Unlock; its Context is cancelled (cause ErrLockLost) if that fails
// for so long that the lock would expire.
func (r *Repository) LockWithOptions(ctx context.Context, opts LockOptions) (*Lock, error) {
	holder := opts.defaults(r.host.Self())
	clk := r.clk
	deadline := clk.Now().Add(opts.RetryFor)
	for {
		l, err := r.tryLock(ctx, opts, holder)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrLocked) || !clk.Now().Before(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-clk.After(opts.RetryInterval):
		}
	}
}

func (r *Repository) tryLock(ctx context.Context, opts LockOptions, holder Process) (*Lock, error) {
	now := r.clk.Now()
	locks, err := r.ListLocks(ctx)
	if err != nil {
		return nil, err
	}
	if conflicts, _ := conflicting(locks, "", opts.Exclusive, now); len(conflicts) > 0 {
		return nil, &LockedError{Exclusive: opts.Exclusive, Holders: conflicts, Now: now}
	}

	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	info := LockInfo{
		ID:        hex.EncodeToString(idb[:]),
		Process:   holder,
		Exclusive: opts.Exclusive,
		Purpose:   opts.Purpose,
		Created:   now.UTC(),
		Refreshed: now.UTC(),
		Expires:   now.Add(opts.Expiry).UTC(),
	}
	name := lockObjectName(info.ID)
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	if err := r.be.PutIfAbsent(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("write lock %s: %w", name, err)
	}

	// Check after write: a conflicting lock written while we wrote ours
	// is seen now, by us or by its writer (or both: then both give up).
	now = r.clk.Now()
	locks, err = r.ListLocks(ctx)
	if err == nil {
		conflicts, stale := conflicting(locks, info.ID, opts.Exclusive, now)
		if len(conflicts) > 0 {
			err = &LockedError{Exclusive: opts.Exclusive, Holders: conflicts, Now: now}
		} else {
			lctx, cancel := context.WithCancelCause(ctx)
			l := &Lock{repo: r, opts: opts, name: name, info: info, ctx: lctx, cancel: cancel,
				stop: make(chan struct{}), done: make(chan struct{})}
			if opts.Exclusive {
				// Holding the exclusive lock, take over the stale ones:
				// their holders stopped refreshing (dead host), and a live
				// holder that lost its lock has cancelled its own work.
				for _, s := range stale {
					if derr := r.be.Delete(ctx, lockObjectName(s.ID)); derr != nil {
						err = fmt.Errorf("remove stale %s: %w", s.Describe(now), derr)
						break
					}
				}
			}
			if err == nil {
				l.stale = stale
				if opts.NoRefresh {
					close(l.done)
				} else {
					go l.refresher()
				}
				return l, nil
			}
			cancel(err)
		}
	}
	if derr := r.be.Delete(context.WithoutCancel(ctx), name); derr != nil {
		err = errors.Join(err, fmt.Errorf("remove own lock %s (it expires by itself at %s): %w", name, info.Expires.Format(time.RFC3339), derr))
	}
	return nil, err
}

// conflicting splits the locks of others (all but own) into live ones that
// conflict with the lock asked for, and stale ones that would have.
func conflicting(locks []LockInfo, own string, exclusive bool, now time.Time) (conflicts, stale []LockInfo) {
	for _, li := range locks {
		if li.ID == own || (!exclusive && !li.Exclusive) {
			continue
		}
		if li.Stale(now) {
			stale = append(stale, li)
		} else {
			conflicts = append(conflicts, li)
		}
	}
	return conflicts, stale
}

func lockObjectName(id string) string { return lockPrefix + id + ".json" }

// ListLocks returns every lock in the repository, oldest first, stale ones
// included. A lock that vanishes while being read is left out.
func (r *Repository) ListLocks(ctx context.Context) ([]LockInfo, error) {
	var objs []storage.ObjectInfo
	err := r.be.List(ctx, lockPrefix, func(fi storage.ObjectInfo) error {
		if strings.HasSuffix(fi.Name, ".json") {
			objs = append(objs, fi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks in %s: %w", r.be.Location(), err)
	}
	var out []LockInfo
	for _, fi := range objs {
		id := strings.TrimSuffix(path.Base(fi.Name), ".json")
		data, err := storage.ReadAll(ctx, r.be, fi.Name)
		if errors.Is(err, storage.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read lock %s: %w", fi.Name, err)
		}
		li := parseLock(id, data, fi.ModTime)
		if !li.Unreadable {
			li.HolderGone = r.host.Gone(li.Process)
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// parseLock reads the lock object id, written at modTime. Anything that is
// not a lock (garbage, a truncated write, a lock without expiry) is an
// Unreadable lock, exclusive and expiring DefaultLockExpiry after it was
// written: it must block prune for a while, as it may be a live lock this
// version cannot read, and never forever.
func parseLock(id string, data []byte, modTime time.Time) LockInfo {
	var li LockInfo
	if json.Unmarshal(data, &li) != nil || li.Expires.IsZero() {
		li = LockInfo{Exclusive: true, Unreadable: true, Created: modTime, Refreshed: modTime,
			Expires: modTime.Add(DefaultLockExpiry)}
	}
	li.ID = id
	return li
}

// RemoveStaleLocks removes the locks that are stale at now (expired, or
// held by a process of this host that is gone; all locks with force, for an
// operator who knows their holders are gone) and returns them.
func (r *Repository) RemoveStaleLocks(ctx context.Context, now time.Time, force bool) ([]LockInfo, error) {
	locks, err := r.ListLocks(ctx)
	if err != nil {
		return nil, err
	}
	var removed []LockInfo
	for _, li := range locks {
		if !force && !li.Stale(now) {
			continue
		}
		if err := r.be.Delete(ctx, lockObjectName(li.ID)); err != nil {
			return removed, fmt.Errorf("remove %s: %w", li.Describe(now), err)
		}
		removed = append(removed, li)
	}
	return removed, nil
}

// Context returns a context derived from the one Lock was called with,
// cancelled with cause ErrLockLost when the lock is lost and cancelled at
// Unlock. Work protected by the lock runs under it.
func (l *Lock) Context() context.Context { return l.ctx }

// Info returns the lock as last written.
func (l *Lock) Info() LockInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// StaleLocks returns the stale locks of others met while locking:
// removed when this lock is exclusive, ignored when it is shared.
func (l *Lock) StaleLocks() []LockInfo {
	return append([]LockInfo(nil), l.stale...)
}

// Refresh extends the lock by Expiry from now. It fails with ErrLockLost
// when the lock object is gone (another process took it over as stale) or
// has already expired (others may have done so).
func (l *Lock) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.repo.clk.Now()
	if l.info.Stale(now) {
		return fmt.Errorf("%w: lock %s expired at %s before it could be refreshed", ErrLockLost, l.info.ID, l.info.Expires.Format(time.RFC3339))
	}
	if _, err := l.repo.be.Stat(ctx, l.name); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: lock %s was removed by another process", ErrLockLost, l.info.ID)
		}
		return fmt.Errorf("refresh lock %s: %w", l.info.ID, err)
	}
	info := l.info
	info.Refreshed = now.UTC()
	info.Expires = now.Add(l.opts.Expiry).UTC()
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := l.repo.be.Put(ctx, l.name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.info.ID, err)
	}
	l.info = info
	return nil
}

// refreshMargin is how long before its expiry a refresh of a lock gives up.
const refreshMargin = time.Minute

// refresher refreshes the lock every RefreshInterval. A failed refresh is
// retried at the next tick as long as the lock would still be valid then;
// otherwise the lock is lost and its context cancelled.
func (l *Lock) refresher() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-l.repo.clk.After(l.opts.RefreshInterval):
		}
		// A refresh that hangs (a storage request stuck in retries) must
		// not outlive the lock: give up a minute before it expires, so the
		// run stops before another process may take the lock over.
		rctx, cancel := context.WithTimeout(l.ctx, l.Info().Expires.Sub(l.repo.clk.Now())-refreshMargin)
		err := l.Refresh(rctx)
		cancel()
		if err == nil {
			continue
		}
		if l.ctx.Err() != nil {
			return
		}
		next := l.repo.clk.Now().Add(l.opts.RefreshInterval)
		if errors.Is(err, ErrLockLost) || !next.Before(l.Info().Expires) {
			if !errors.Is(err, ErrLockLost) {
				err = fmt.Errorf("%w: %w", ErrLockLost, err)
			}
			l.cancel(err)
			return
		}
	}
}

// Unlock stops refreshing, removes the lock and cancels its Context. It
// may be called more than once; later calls do nothing. Pass a context
// that is not cancelled (context.WithoutCancel) so the lock goes even after
// Ctrl-C; a lock that cannot be removed expires by itself.
func (l *Lock) Unlock(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.cancel(context.Canceled)
		if derr := l.repo.be.Delete(ctx, l.name); derr != nil {
			err = fmt.Errorf("release lock %s (it expires by itself at %s): %w", l.info.ID, l.Info().Expires.Format(time.RFC3339), derr)
		}
	})
	return err
}
