package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// DefaultPruneGrace is how recent a chunk must be to be kept whatever
// references it.
const DefaultPruneGrace = time.Hour

// ErrUnreadableManifest: a manifest could not be read, so prune cannot know
// which chunks it references and refuses to delete anything.
var ErrUnreadableManifest = errors.New("backup manifest cannot be read")

// errPlanDone: Execute or Release was already called on the plan, or its
// planning failed.
var errPlanDone = errors.New("prune plan already executed or released")

// PruneOptions tune PlanPrune and Prune.
type PruneOptions struct {
	// DryRun plans without the lock and executes without deleting: the
	// report says what prune would do.
	DryRun bool
	// Location is the time zone of the policy's periods (time.Local).
	Location *time.Location
	// Grace keeps chunks written less than Grace before prune started; zero
	// means DefaultPruneGrace, negative means none (tests proving that the
	// locks alone are enough).
	Grace time.Duration
	// Lock tunes the exclusive lock (expiry, refresh, retry); Exclusive and
	// Purpose are set by PlanPrune.
	Lock LockOptions
	// Workers is the number of parallel deletes (default 8).
	Workers int
	// Log receives each step of the prune at info level (lock, policy,
	// marking, listing, each kind of delete) with its counts and duration;
	// nil logs nothing.
	Log *slog.Logger
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
	// Rejected are backups that failed authentication: never counted as
	// kept backups of a VM, never deleted (they are evidence, or genuine
	// backups of a key this host does not trust), and the chunks they
	// name are kept.
	Rejected []*RejectedError
	// SignaturesDeleted counts signatures removed (would be, in a dry
	// run): those of deleted manifests, and orphans (a backup that died
	// between its signature and its manifest).
	SignaturesDeleted int
	// Warnings are things an operator should know (late manifests,
	// missing chunks).
	Warnings []string
}

// BytesFreed is the total size of what was (would be) deleted.
func (r *PruneReport) BytesFreed() int64 { return r.ManifestBytesFreed + r.ChunkBytesFreed }

// defaults fills in the zero values. It is idempotent: a negative Grace
// (none) stays negative, so options defaulted twice keep their meaning.
// logStep logs a finished step of the prune with its duration since start.
func (pl *PrunePlan) logStep(msg string, start time.Time, args ...any) {
	pl.opts.Log.Info(msg, append(args, "duration", pl.repo.clk.Now().Sub(start))...)
}

func (o *PruneOptions) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Grace == 0 {
		o.Grace = DefaultPruneGrace
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	o.Lock.Exclusive = true
	o.Lock.Purpose = "prune"
}

// grace is the effective grace period: none when Grace is negative.
func (o *PruneOptions) grace() time.Duration { return max(o.Grace, 0) }

// Prune forgets the backups a policy does not keep and then deletes the
// chunks no remaining backup references (mark and sweep): PlanPrune, then
// Execute. It returns the report also with an error, saying how far it
// got.
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
//     before the lock expires, so taking over a stale lock is safe too; and
//     a plan whose lock is gone deletes nothing.
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
func Prune(ctx context.Context, repo *Repository, p Policy, opts PruneOptions) (*PruneReport, error) {
	plan, err := PlanPrune(ctx, repo, p, opts)
	if err != nil {
		if plan == nil {
			return nil, err
		}
		return plan.Report, err
	}
	return plan.Execute(ctx)
}

// PrunePlan is what a prune will do, decided under the exclusive lock
// (restic's PlanPrune and Execute): the policy's decisions, the manifests
// to delete, the chunks the remaining backups reference (marks) and the
// unreferenced chunks past the grace period (the sweep list). A dry run
// prints it. Execute carries it out under the lock it was planned under.
type PrunePlan struct {
	// Report is the plan so far (decisions, cutoff, what the chunk listing
	// found); Execute completes it with what was deleted.
	Report *PruneReport

	repo *Repository
	opts PruneOptions
	// lock is the exclusive lock planned under; nil in a dry run.
	lock *Lock
	// done: executed, released, or planning failed.
	done bool

	// manifests are the manifests listed when planning began, by ID.
	manifests map[string]storage.ObjectInfo
	// forgotten are the manifests of forgotten backups, in decision order;
	// retained maps those Object Lock keeps to the end of their retention.
	forgotten []storage.ObjectInfo
	retained  map[string]time.Time
	// refs are the chunks remaining backups reference; the value says
	// whether the chunk listing found the chunk.
	refs map[ChunkID]bool
	// young are unreferenced chunks kept for being newer than the cutoff.
	young map[ChunkID]bool
	// candidates are the unreferenced chunks to delete.
	candidates []storage.ObjectInfo
}

// PlanPrune takes the exclusive lock (none for a dry run), applies the
// policy to every VM's backups and marks and lists what Execute will
// delete. Nothing is deleted. The plan holds the lock until Execute or
// Release. Once the lock is taken an error comes with the plan too: its
// Report says how far planning got, and the lock is already released.
func PlanPrune(ctx context.Context, repo *Repository, p Policy, opts PruneOptions) (*PrunePlan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	pl := &PrunePlan{Report: &PruneReport{DryRun: opts.DryRun, Policy: p}, repo: repo, opts: opts,
		retained: map[string]time.Time{}, refs: map[ChunkID]bool{}, young: map[ChunkID]bool{}}
	if !opts.DryRun {
		start := repo.clk.Now()
		l, err := repo.LockWithOptions(ctx, opts.Lock)
		if err != nil {
			return nil, fmt.Errorf("prune %s: %w", repo.Location(), err)
		}
		pl.logStep("repository locked", start, "repository", repo.Location(), "lock", l.Info().ID, "stale_locks_taken_over", len(l.StaleLocks()))
		pl.lock = l
		pl.Report.StaleLocks = l.StaleLocks()
		ctx = l.Context()
	}
	if err := pl.plan(ctx); err != nil {
		pl.Report.Finished = repo.clk.Now().UTC()
		err = pl.cause(ctx, err) // before Release cancels ctx
		_ = pl.Release(ctx)      // a lock left behind expires by itself
		return pl, err
	}
	return pl, nil
}

// Execute deletes what the plan says, under the plan's lock: the forgotten
// manifests, then the unreferenced chunks (skipping retained ones), then
// the debris of interrupted uploads. A plan whose lock was lost (taken
// over, expired) deletes nothing and fails with ErrLockLost; deletes stop
// as soon as the lock is lost. The lock is released at the end. It returns
// the report also with an error, saying how far it got.
func (pl *PrunePlan) Execute(ctx context.Context) (*PruneReport, error) {
	if pl.done {
		return pl.Report, errPlanDone
	}
	defer func() { _ = pl.Release(ctx) }() // a lock left behind expires by itself
	ctx, stop := pl.underLock(ctx)
	defer stop()
	err := pl.execute(ctx)
	pl.Report.Finished = pl.repo.clk.Now().UTC()
	return pl.Report, pl.cause(ctx, err)
}

// Release gives up the plan without executing it and releases its lock.
// Execute calls it; later calls do nothing.
func (pl *PrunePlan) Release(ctx context.Context) error {
	pl.done = true
	if pl.lock == nil {
		return nil
	}
	l := pl.lock
	pl.lock = nil
	return l.Unlock(context.WithoutCancel(ctx))
}

// underLock returns ctx, also cancelled (with the lock's cause) when the
// plan's lock is lost.
func (pl *PrunePlan) underLock(ctx context.Context) (context.Context, context.CancelFunc) {
	if pl.lock == nil {
		return ctx, func() {}
	}
	lctx := pl.lock.Context()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(lctx, func() { cancel(context.Cause(lctx)) })
	return ctx, func() { stop(); cancel(nil) }
}

// cause names the real reason of a failure under a cancelled context (such
// as ErrLockLost) rather than "context canceled".
func (pl *PrunePlan) cause(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("prune %s: %w", pl.repo.Location(), context.Cause(ctx))
	}
	return err
}

// plan computes the plan: policy, marks, sweep list.
func (pl *PrunePlan) plan(ctx context.Context) error {
	rep := pl.Report
	start := pl.repo.clk.Now()
	rep.Started = start.UTC()
	rep.Cutoff = start.Add(-pl.opts.grace()).UTC()
	for _, s := range rep.StaleLocks {
		// Its holder may have been writing chunks since it took it.
		if s.Created.Before(rep.Cutoff) {
			rep.Cutoff = s.Created.UTC()
		}
	}
	keep, err := pl.decide(ctx, start)
	if err != nil {
		return err
	}
	pl.logStep("policy applied", start, "backups", len(rep.Decisions), "keep", rep.Kept, "forget", rep.Forgotten, "retained", len(pl.retained))
	step := pl.repo.clk.Now()
	if err := pl.repo.markReferenced(ctx, keep, pl.refs); err != nil {
		return err
	}
	pl.logStep("chunks of kept backups marked", step, "backups", len(keep), "chunks", len(pl.refs))
	step = pl.repo.clk.Now()
	if err := pl.listChunks(ctx); err != nil {
		return err
	}
	pl.logStep("chunks listed", step, "chunks", rep.ChunksTotal, "unreferenced", len(pl.candidates), "young", rep.ChunksYoung)
	if err := pl.spareLateBackups(ctx); err != nil {
		return err
	}
	rep.ChunksReferenced = len(pl.refs)
	for _, found := range pl.refs {
		if !found {
			rep.ChunksMissing++
		}
	}
	return nil
}

// decide applies the policy to the backups listed now and returns the IDs
// of the backups that remain: those kept, and forgotten ones Object Lock
// retains (a manifest that stays keeps its chunks referenced).
func (pl *PrunePlan) decide(ctx context.Context, start time.Time) ([]string, error) {
	rep := pl.Report
	manifests, err := pl.repo.listManifestObjects(ctx)
	if err != nil {
		return nil, err
	}
	pl.manifests = manifests
	ids := make([]string, 0, len(manifests))
	for id := range manifests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	summaries, err := pl.repo.readSummaries(ctx, ids, rep)
	if err != nil {
		return nil, err
	}
	rep.Decisions = ApplyPolicy(summaries, rep.Policy, start, pl.opts.Location)
	var keep []string
	for _, re := range rep.Rejected {
		keep = append(keep, re.BackupID) // marked, never decided on
	}
	for _, d := range rep.Decisions {
		if d.Keep {
			rep.Kept++
			keep = append(keep, d.BackupID)
			continue
		}
		rep.Forgotten++
		pl.forgotten = append(pl.forgotten, manifests[d.BackupID])
	}
	now := pl.repo.clk.Now()
	for _, fi := range pl.forgotten {
		until, err := pl.repo.retainedUntil(ctx, fi, now)
		if err != nil {
			return nil, fmt.Errorf("forget backup %s (no chunk was deleted): %w", manifestID(fi.Name), err)
		}
		if !until.IsZero() {
			pl.retained[fi.Name] = until.UTC()
			keep = append(keep, manifestID(fi.Name))
		}
	}
	return keep, nil
}

// listChunks lists data/: referenced chunks are found, unreferenced ones
// newer than the cutoff are young, the rest are candidates for deletion.
func (pl *PrunePlan) listChunks(ctx context.Context) error {
	rep := pl.Report
	err := pl.repo.be.List(ctx, chunkPrefix, func(fi storage.ObjectInfo) error {
		id, err := ParseChunkID(path.Base(fi.Name))
		if err != nil || fi.Name != ChunkObjectName(id) {
			rep.UnknownObjects++
			return nil
		}
		rep.ChunksTotal++
		if _, ok := pl.refs[id]; ok {
			pl.refs[id] = true
			return nil
		}
		if fi.ModTime.After(rep.Cutoff) {
			rep.ChunksYoung++
			pl.young[id] = true
			return nil
		}
		pl.candidates = append(pl.candidates, fi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list chunks in %s: %w", pl.repo.Location(), err)
	}
	return nil
}

// spareLateBackups lists the manifests again, after the chunks: a backup
// committed meanwhile keeps its chunks (see Prune).
func (pl *PrunePlan) spareLateBackups(ctx context.Context) error {
	late, err := pl.repo.listManifestObjects(ctx)
	if err != nil {
		return err
	}
	var lateIDs []string
	for id := range late {
		if _, ok := pl.manifests[id]; !ok {
			lateIDs = append(lateIDs, id)
		}
	}
	if len(lateIDs) == 0 {
		return nil
	}
	sort.Strings(lateIDs)
	lateRefs := map[ChunkID]bool{}
	if err := pl.repo.markReferenced(ctx, lateIDs, lateRefs); err != nil {
		return err
	}
	pl.spare(lateRefs)
	why := "a client that ignores the repository lock is writing to it"
	if pl.opts.DryRun {
		why = "a dry run takes no lock, so backups may run meanwhile"
	}
	pl.Report.Warnings = append(pl.Report.Warnings, fmt.Sprintf("%d backup(s) were committed while prune ran (%s): their chunks were kept; %s", len(lateIDs), strings.Join(lateIDs, ", "), why))
	return nil
}

// spare removes the chunks in ids from the candidates and returns those it
// removed.
func (pl *PrunePlan) spare(ids map[ChunkID]bool) map[ChunkID]bool {
	spared := map[ChunkID]bool{}
	kept := pl.candidates[:0]
	for _, fi := range pl.candidates {
		id, _ := ParseChunkID(path.Base(fi.Name)) // listChunks parsed it
		if _, ok := ids[id]; ok {
			spared[id] = true
			continue
		}
		kept = append(kept, fi)
	}
	pl.candidates = kept
	return spared
}

// execute is Execute under the lock's context.
func (pl *PrunePlan) execute(ctx context.Context) error {
	rep := pl.Report
	if pl.lock != nil {
		// The lock may be gone while nobody looked (the refresher ticks
		// every few minutes): another prune may have taken it over and
		// be working from another listing. Prove it is still ours.
		if err := context.Cause(pl.lock.Context()); err != nil {
			return fmt.Errorf("prune %s: nothing was deleted: %w", pl.repo.Location(), err)
		}
		if err := pl.lock.Refresh(ctx); err != nil {
			return fmt.Errorf("prune %s: nothing was deleted: %w", pl.repo.Location(), err)
		}
	}
	start := pl.repo.clk.Now()
	if err := pl.forget(ctx); err != nil {
		return err
	}
	pl.logStep("manifests deleted", start, "deleted", rep.ManifestsDeleted, "retained", len(rep.RetainedManifests), "dry_run", pl.opts.DryRun)
	if rep.ChunksMissing > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d chunk(s) referenced by kept backups are not stored: those backups cannot be restored whole; run 'vtpm-backup audit' to see which", rep.ChunksMissing))
	}
	start = pl.repo.clk.Now()
	if err := pl.repo.sweep(ctx, pl.candidates, pl.opts, rep); err != nil {
		return err
	}
	pl.logStep("chunks deleted", start, "deleted", rep.ChunksDeleted, "bytes", rep.ChunkBytesFreed, "retained", rep.ChunksRetained, "dry_run", pl.opts.DryRun)
	// Debris of writes killed mid-way (temporary files, incomplete
	// multipart uploads) is invisible to List; writes started before the
	// cutoff cannot belong to anyone alive.
	if c, ok := pl.repo.be.(storage.Cleaner); ok && !pl.opts.DryRun {
		start = pl.repo.clk.Now()
		n, err := c.CleanStale(ctx, rep.Cutoff)
		pl.logStep("debris of interrupted uploads removed", start, "removed", n)
		rep.DebrisRemoved = n
		if err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("removing debris of interrupted uploads: %v", err))
		}
	}
	return nil
}

// forget deletes the manifests of the forgotten backups that Object Lock
// does not retain. A manifest whose delete the storage refuses as retained
// stays, and so do its chunks.
func (pl *PrunePlan) forget(ctx context.Context) error {
	rep := pl.Report
	var refused []string
	for _, fi := range pl.forgotten {
		if until, ok := pl.retained[fi.Name]; ok {
			rep.RetainedManifests = append(rep.RetainedManifests, RetainedObject{Name: fi.Name, Until: until})
			continue
		}
		if !pl.opts.DryRun {
			err := pl.repo.be.Delete(ctx, fi.Name)
			if errors.Is(err, storage.ErrRetained) {
				rep.RetainedManifests = append(rep.RetainedManifests, RetainedObject{Name: fi.Name})
				refused = append(refused, manifestID(fi.Name))
				continue
			}
			if err != nil {
				return fmt.Errorf("forget backup %s (no chunk was deleted): %w", manifestID(fi.Name), err)
			}
		}
		rep.ManifestsDeleted++
		rep.ManifestBytesFreed += fi.Size
		// The signature goes after its manifest, never before: a manifest
		// left without one would be rejected.
		if pl.opts.DryRun || pl.repo.be.Delete(ctx, SignatureObjectName(manifestID(fi.Name))) == nil {
			rep.SignaturesDeleted++
		}
	}
	if err := pl.repo.deleteOrphanSignatures(ctx, pl.opts.DryRun, rep); err != nil {
		return err
	}
	if len(refused) == 0 {
		return nil
	}
	// Mark what the refused manifests reference, as the plan marked the
	// ones known to be retained.
	refs := map[ChunkID]bool{}
	if err := pl.repo.markReferenced(ctx, refused, refs); err != nil {
		return err
	}
	spared := pl.spare(refs)
	for id := range refs {
		if _, ok := pl.refs[id]; ok {
			continue
		}
		pl.refs[id] = spared[id] || pl.young[id]
		if pl.young[id] {
			delete(pl.young, id)
			rep.ChunksYoung--
		}
		if !pl.refs[id] {
			rep.ChunksMissing++
		}
	}
	rep.ChunksReferenced = len(pl.refs)
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

// forEachManifest reads manifests with read in batches and calls fn for
// each, or with its error when it was rejected. A manifest deleted
// meanwhile is skipped; any other failure is collected and returned as one
// ErrUnreadableManifest naming them all.
func (r *Repository) forEachManifest(ctx context.Context, ids []string, read func(context.Context, string) (*Manifest, error), fn func(*Manifest, error)) error {
	var bad []string
	for i := 0; i < len(ids); i += manifestBatch {
		batch := ids[i:min(i+manifestBatch, len(ids))]
		for _, res := range r.readManifests(ctx, batch, read) {
			switch {
			case res.Err == nil:
				fn(res.Manifest, nil)
			case errors.Is(res.Err, ErrRejected):
				fn(nil, res.Err)
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

// readSummaries reads what the policy needs from each authenticated
// manifest, and lists the rejected ones in rep.
func (r *Repository) readSummaries(ctx context.Context, ids []string, rep *PruneReport) ([]BackupSummary, error) {
	var out []BackupSummary
	err := r.forEachManifest(ctx, ids, r.ReadManifest, func(m *Manifest, err error) {
		if re := (*RejectedError)(nil); errors.As(err, &re) {
			rep.Rejected = append(rep.Rejected, re)
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%v: not counted as a backup%s; left in place with the chunks it names: investigate, then delete %s and %s",
				re, claimedOf(re), ManifestObjectName(re.BackupID), SignatureObjectName(re.BackupID)))
			return
		}
		t := m.Started
		if t.IsZero() {
			t, _ = BackupTime(m.BackupID) // valid: Validate checked it
		}
		out = append(out, BackupSummary{BackupID: m.BackupID, VMKey: VMKey(m), VMName: m.VM.Name, Time: t, Unsigned: !m.Auth.Signed})
	})
	return out, err
}

func claimedOf(re *RejectedError) string {
	if re.ClaimedVM == "" {
		return ""
	}
	return " of VM " + re.ClaimedVM + " (as it claims)"
}

// deleteOrphanSignatures removes signatures without a manifest written
// before the cutoff: a backup that died between its signature and its
// manifest (later ones may belong to a backup committing now).
func (r *Repository) deleteOrphanSignatures(ctx context.Context, dryRun bool, rep *PruneReport) error {
	var orphans []string
	err := r.be.List(ctx, manifestPrefix, func(fi storage.ObjectInfo) error {
		if strings.HasSuffix(fi.Name, signatureSuffix) && fi.ModTime.Before(rep.Cutoff) {
			orphans = append(orphans, fi.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list signatures in %s: %w", r.be.Location(), err)
	}
	for _, name := range orphans {
		id := strings.TrimSuffix(path.Base(name), signatureSuffix)
		if _, err := r.be.Stat(ctx, ManifestObjectName(id)); !errors.Is(err, storage.ErrNotFound) {
			continue // it has a manifest, or we cannot tell: keep it
		}
		if !dryRun && r.be.Delete(ctx, name) != nil {
			continue // retained or unreachable: harmless, the next prune retries
		}
		rep.SignaturesDeleted++
	}
	return nil
}

// markReferenced adds the chunks the manifests reference to refs. It does
// not authenticate them: a chunk wrongly kept costs storage, a chunk
// wrongly deleted costs a backup (a reader that pins the wrong key must
// not destroy what it rejects).
func (r *Repository) markReferenced(ctx context.Context, ids []string, refs map[ChunkID]bool) error {
	return r.forEachManifest(ctx, ids, r.readManifestUnverified, func(m *Manifest, _ error) {
		for s := range m.Objects {
			if id, err := ParseChunkID(s); err == nil { // Validate checked it
				if _, ok := refs[id]; !ok {
					refs[id] = false
				}
			}
		}
	})
}
