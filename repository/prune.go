package repository

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Prune forgets the backups a policy does not keep and then deletes the
// chunks no remaining backup references (mark and sweep).
//
// Why a chunk a backup is about to reference is never deleted:
//
//  1. Locks. A backup holds a shared lock from before it reads the manifests
//     that tell it which chunks exist (its dedup index) until after it has
//     written its own manifest. Prune holds the exclusive lock from before it
//     lists manifests until after its last delete. The two never overlap, so
//     everything a backup knows was learnt after the last prune finished,
//     and every chunk it wrote is in its manifest before the next prune
//     starts. A holder that cannot refresh its lock cancels its own work
//     before the lock expires, so taking over a stale lock is safe too.
//  2. Grace. Independently of locks, prune keeps every chunk written after
//     Cutoff = start - Grace (default one hour), and before the creation of
//     any stale lock it took over: belt and braces against clock skew
//     between hosts and storage, and against clients that ignore locks.
//  3. Late manifests. The manifests are listed again after the chunks: a
//     backup committed meanwhile (by a client ignoring locks) keeps its
//     chunks.
//
// A manifest that cannot be read might reference any chunk, so prune then
// refuses to delete anything (ErrUnreadableManifest). Objects still under an
// S3 Object Lock retention are skipped and reported, never an error; a
// forgotten manifest that is retained keeps its chunks referenced.

// DefaultPruneGrace is how recent a chunk must be to be kept whatever
// references it.
const DefaultPruneGrace = time.Hour

// ErrUnreadableManifest: a manifest could not be read, so prune cannot know
// which chunks it references and refuses to delete anything.
var ErrUnreadableManifest = errors.New("backup manifest cannot be read")

// PruneOptions tune Prune.
type PruneOptions struct {
	// DryRun computes and reports everything but deletes nothing and takes
	// no lock.
	DryRun bool
	// Location is the time zone of the policy's periods (time.Local).
	Location *time.Location
	// Grace keeps chunks written less than Grace before prune started; zero
	// means DefaultPruneGrace, negative means none (tests proving that the
	// locks alone are enough).
	Grace time.Duration
	// Lock tunes the exclusive lock (expiry, refresh, retry); Exclusive and
	// Purpose are set by Prune.
	Lock LockOptions
	// Workers is the number of parallel deletes (default 8).
	Workers int
	// OnPlan, when set, is called with the report once the policy has been
	// applied, before anything is deleted.
	OnPlan func(*PruneReport)
}

// RetainedObject is an object prune skipped because it is retained.
type RetainedObject struct {
	Name string
	// Until is the end of the retention, zero when the storage did not say.
	Until time.Time
}

// PruneReport says what prune did, or with DryRun would do.
type PruneReport struct {
	DryRun    bool
	Policy    Policy
	Started   time.Time
	Finished  time.Time
	Decisions []Decision
	// Kept and Forgotten count the decisions.
	Kept, Forgotten int

	// ManifestsDeleted counts forgotten backups whose manifest was deleted
	// (would be, in a dry run).
	ManifestsDeleted   int
	ManifestBytesFreed int64
	// RetainedManifests are forgotten backups that Object Lock keeps; their
	// chunks stay referenced.
	RetainedManifests []RetainedObject

	// Cutoff: chunks written after it were kept whatever references them.
	Cutoff time.Time
	// ChunksTotal counts the chunk objects found under data/.
	ChunksTotal int
	// ChunksReferenced counts the distinct chunks remaining backups use.
	ChunksReferenced int
	// ChunksMissing counts referenced chunks that are not stored: kept
	// backups that cannot be restored whole (run audit).
	ChunksMissing int
	// ChunksYoung counts unreferenced chunks kept for being newer than Cutoff.
	ChunksYoung     int
	ChunksDeleted   int
	ChunkBytesFreed int64
	// ChunksRetained counts unreferenced chunks skipped under retention;
	// RetainedUntil is the latest retention end among them, when known.
	ChunksRetained     int
	ChunkBytesRetained int64
	RetainedUntil      time.Time
	// UnknownObjects counts objects under data/ that are not chunks; they
	// are left alone.
	UnknownObjects int
	// DebrisRemoved counts leftovers of interrupted writes removed
	// (temporary files, incomplete multipart uploads).
	DebrisRemoved int
	// StaleLocks are expired locks prune took over (removed).
	StaleLocks []LockInfo
	// Warnings are things an operator should know (late manifests,
	// missing chunks).
	Warnings []string
}

// BytesFreed is the total size of what was (would be) deleted.
func (r *PruneReport) BytesFreed() int64 { return r.ManifestBytesFreed + r.ChunkBytesFreed }

func (o *PruneOptions) defaults() {
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Grace == 0 {
		o.Grace = DefaultPruneGrace
	}
	if o.Grace < 0 {
		o.Grace = 0
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	o.Lock.Exclusive = true
	o.Lock.Purpose = "prune"
}

// Prune applies the policy to every VM's backups, deletes the manifests of
// the backups it does not keep, then deletes unreferenced chunks (see the
// invariant above). It returns the report also with an error, saying how far
// it got.
func Prune(ctx context.Context, repo *Repository, p Policy, opts PruneOptions) (*PruneReport, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	clk := repo.clk
	rep := &PruneReport{DryRun: opts.DryRun, Policy: p}
	if !opts.DryRun {
		l, err := repo.LockWithOptions(ctx, opts.Lock)
		if err != nil {
			return nil, fmt.Errorf("prune %s: %w", repo.Location(), err)
		}
		// A lock left behind expires by itself: nothing to add to the error.
		defer func() { _ = l.Unlock(context.WithoutCancel(ctx)) }()
		rep.StaleLocks = l.StaleLocks()
		ctx = l.Context()
	}
	err := prune(ctx, repo, p, opts, rep)
	rep.Finished = clk.Now().UTC()
	if err != nil && ctx.Err() != nil {
		// Name the real reason (e.g. ErrLockLost) rather than "context canceled".
		err = fmt.Errorf("prune %s: %w", repo.Location(), context.Cause(ctx))
	}
	return rep, err
}

func prune(ctx context.Context, repo *Repository, p Policy, opts PruneOptions, rep *PruneReport) error {
	clk := repo.clk
	start := clk.Now()
	rep.Started = start.UTC()
	rep.Cutoff = start.Add(-opts.Grace).UTC()
	for _, s := range rep.StaleLocks {
		// Its holder may have been writing chunks since it took it.
		if s.Created.Before(rep.Cutoff) {
			rep.Cutoff = s.Created.UTC()
		}
	}

	manifests, err := repo.listManifestObjects(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(manifests))
	for id := range manifests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	summaries, err := repo.readSummaries(ctx, ids)
	if err != nil {
		return err
	}

	rep.Decisions = ApplyPolicy(summaries, p, start, opts.Location)
	var keep []string
	var forget []storage.ObjectInfo
	for _, d := range rep.Decisions {
		if d.Keep {
			rep.Kept++
			keep = append(keep, d.BackupID)
		} else {
			rep.Forgotten++
			forget = append(forget, manifests[d.BackupID])
		}
	}
	if opts.OnPlan != nil {
		opts.OnPlan(rep)
	}

	// Forget. A manifest that stays (retained) keeps its chunks referenced.
	now := clk.Now()
	for _, fi := range forget {
		until, err := repo.retainedUntil(ctx, fi, now)
		if err != nil {
			return fmt.Errorf("forget backup %s (no chunk was deleted): %w", manifestID(fi.Name), err)
		}
		if until.IsZero() && !opts.DryRun {
			err = repo.be.Delete(ctx, fi.Name)
			if err != nil && !errors.Is(err, storage.ErrRetained) {
				return fmt.Errorf("forget backup %s (no chunk was deleted): %w", manifestID(fi.Name), err)
			}
		}
		if !until.IsZero() || err != nil {
			rep.RetainedManifests = append(rep.RetainedManifests, RetainedObject{Name: fi.Name, Until: until.UTC()})
			keep = append(keep, manifestID(fi.Name))
			continue
		}
		rep.ManifestsDeleted++
		rep.ManifestBytesFreed += fi.Size
	}

	// Mark.
	refs := map[ChunkID]bool{} // value: found in data/
	if err := repo.markReferenced(ctx, keep, refs); err != nil {
		return err
	}

	// Sweep: list the chunks, then look for manifests committed meanwhile.
	var candidates []storage.ObjectInfo
	err = repo.be.List(ctx, chunkPrefix, func(fi storage.ObjectInfo) error {
		id, err := ParseChunkID(path.Base(fi.Name))
		if err != nil || fi.Name != ChunkObjectName(id) {
			rep.UnknownObjects++
			return nil
		}
		rep.ChunksTotal++
		if _, ok := refs[id]; ok {
			refs[id] = true
			return nil
		}
		if fi.ModTime.After(rep.Cutoff) {
			rep.ChunksYoung++
			return nil
		}
		candidates = append(candidates, fi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list chunks in %s: %w", repo.Location(), err)
	}
	late, err := repo.listManifestObjects(ctx)
	if err != nil {
		return err
	}
	var lateIDs []string
	for id := range late {
		if _, ok := manifests[id]; !ok {
			lateIDs = append(lateIDs, id)
		}
	}
	if len(lateIDs) > 0 {
		sort.Strings(lateIDs)
		lateRefs := map[ChunkID]bool{}
		if err := repo.markReferenced(ctx, lateIDs, lateRefs); err != nil {
			return err
		}
		kept := candidates[:0]
		for _, fi := range candidates {
			id, _ := ParseChunkID(path.Base(fi.Name))
			if _, ok := lateRefs[id]; !ok {
				kept = append(kept, fi)
			}
		}
		candidates = kept
		why := "a client that ignores the repository lock is writing to it"
		if opts.DryRun {
			why = "a dry run takes no lock, so backups may run meanwhile"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d backup(s) were committed while prune ran (%s): their chunks were kept; %s", len(lateIDs), strings.Join(lateIDs, ", "), why))
	}
	rep.ChunksReferenced = len(refs)
	for _, found := range refs {
		if !found {
			rep.ChunksMissing++
		}
	}
	if rep.ChunksMissing > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d chunk(s) referenced by kept backups are not stored: those backups cannot be restored whole; run 'vtpm-backup audit' to see which", rep.ChunksMissing))
	}
	if err := repo.sweep(ctx, candidates, opts, rep); err != nil {
		return err
	}
	// Debris of writes killed mid-way (temporary files, incomplete
	// multipart uploads) is invisible to List; writes started before the
	// cutoff cannot belong to anyone alive.
	if c, ok := repo.be.(storage.Cleaner); ok && !opts.DryRun {
		n, err := c.CleanStale(ctx, rep.Cutoff)
		rep.DebrisRemoved = n
		if err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("removing debris of interrupted uploads: %v", err))
		}
	}
	return nil
}

// sweep deletes the candidate chunks with a few parallel requests, skipping
// retained ones. The first failure stops it.
func (r *Repository) sweep(ctx context.Context, candidates []storage.ObjectInfo, opts PruneOptions, rep *PruneReport) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := r.clk.Now()
	work := make(chan storage.ObjectInfo)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fi := range work {
				until, err := r.retainedUntil(ctx, fi, now)
				retained := !until.IsZero()
				if err == nil && !retained && !opts.DryRun {
					err = r.be.Delete(ctx, fi.Name)
					if errors.Is(err, storage.ErrRetained) {
						retained, err = true, nil
					}
				}
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = fmt.Errorf("delete unreferenced chunk %s: %w", fi.Name, err)
						cancel()
					}
				case retained:
					rep.ChunksRetained++
					rep.ChunkBytesRetained += fi.Size
					if until.After(rep.RetainedUntil) {
						rep.RetainedUntil = until.UTC()
					}
				default:
					rep.ChunksDeleted++
					rep.ChunkBytesFreed += fi.Size
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, fi := range candidates {
		select {
		case work <- fi:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// retainedUntil returns when the object's Object Lock retention ends, or
// zero when it is not retained. Only repositories created with
// --object-lock-days are asked: objects retained otherwise are found by
// Delete failing with ErrRetained. Objects written less than
// ObjectLockDays ago are known to be retained without a request, since
// every object gets that retention when it is written.
func (r *Repository) retainedUntil(ctx context.Context, fi storage.ObjectInfo, now time.Time) (time.Time, error) {
	if r.cfg.ObjectLockDays <= 0 {
		return time.Time{}, nil
	}
	if est := fi.ModTime.Add(time.Duration(r.cfg.ObjectLockDays) * 24 * time.Hour); est.After(now) {
		return est, nil
	}
	ret, ok := r.be.(storage.Retainer)
	if !ok {
		return time.Time{}, nil
	}
	until, err := ret.Retention(ctx, fi.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if until.After(now) {
		return until, nil
	}
	return time.Time{}, nil
}

const chunkPrefix = "data/"

// listManifestObjects lists manifests/ by backup ID.
func (r *Repository) listManifestObjects(ctx context.Context) (map[string]storage.ObjectInfo, error) {
	out := map[string]storage.ObjectInfo{}
	err := r.be.List(ctx, manifestPrefix, func(fi storage.ObjectInfo) error {
		if strings.HasSuffix(fi.Name, ".json") {
			out[manifestID(fi.Name)] = fi
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", r.be.Location(), err)
	}
	return out, nil
}

func manifestID(name string) string { return strings.TrimSuffix(path.Base(name), ".json") }

// manifestBatch bounds how many manifests are in memory at once: one of a
// large VM lists hundreds of thousands of chunks.
const manifestBatch = 32

// forEachManifest reads manifests in batches and calls fn for each. A
// manifest deleted meanwhile is skipped; any other failure is collected and
// returned as one ErrUnreadableManifest naming them all.
func (r *Repository) forEachManifest(ctx context.Context, ids []string, fn func(*Manifest)) error {
	var bad []string
	for i := 0; i < len(ids); i += manifestBatch {
		batch := ids[i:min(i+manifestBatch, len(ids))]
		for _, res := range r.ReadManifests(ctx, batch) {
			switch {
			case res.Err == nil:
				fn(res.Manifest)
			case errors.Is(res.Err, ErrManifestNotFound):
			default:
				if err := ctx.Err(); err != nil {
					return err
				}
				bad = append(bad, fmt.Sprintf("%s (%v)", res.BackupID, res.Err))
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	shown := bad
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(bad)-5))
	}
	return fmt.Errorf("%w: %d backup manifest(s) in %s: %s: they may reference any chunk, so prune deleted no chunk; fix the storage error, restore those manifests from a copy, or if the backups are lost move manifests/<id>.json out of the repository, then retry",
		ErrUnreadableManifest, len(bad), r.be.Location(), strings.Join(shown, "; "))
}

// readSummaries reads what the policy needs from each manifest.
func (r *Repository) readSummaries(ctx context.Context, ids []string) ([]BackupSummary, error) {
	var out []BackupSummary
	err := r.forEachManifest(ctx, ids, func(m *Manifest) {
		t := m.Started
		if t.IsZero() {
			t, _ = BackupTime(m.BackupID) // valid: Validate checked it
		}
		out = append(out, BackupSummary{BackupID: m.BackupID, VMKey: VMKey(m), VMName: m.VM.Name, Time: t})
	})
	return out, err
}

// markReferenced adds the chunks the manifests reference to refs.
func (r *Repository) markReferenced(ctx context.Context, ids []string, refs map[ChunkID]bool) error {
	return r.forEachManifest(ctx, ids, func(m *Manifest) {
		for s := range m.Objects {
			if id, err := ParseChunkID(s); err == nil { // Validate checked it
				if _, ok := refs[id]; !ok {
					refs[id] = false
				}
			}
		}
	})
}
