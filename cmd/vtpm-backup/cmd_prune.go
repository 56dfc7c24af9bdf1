package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// pruneOptions are the flags of "vtpm-backup prune".
type pruneOptions struct {
	Repo                                         repoFlags
	Trust                                        trustFlags
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       keepDuration
	Grace                                        keepDuration
	RetryLock                                    time.Duration
	DryRun                                       bool
}

// AddFlags registers the flags of the prune command.
func (o *pruneOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.Trust.AddFlags(fs)
	fs.IntVar(&o.Last, "keep-last", 0, "keep the `N` newest backups of each VM (-1: all)")
	fs.IntVar(&o.Hourly, "keep-hourly", 0, "keep the newest backup of each of the last `N` hours that have one (-1: all)")
	fs.IntVar(&o.Daily, "keep-daily", 0, "keep the newest backup of each of the last `N` days that have one (-1: all)")
	fs.IntVar(&o.Weekly, "keep-weekly", 0, "keep the newest backup of each of the last `N` ISO weeks that have one (-1: all)")
	fs.IntVar(&o.Monthly, "keep-monthly", 0, "keep the newest backup of each of the last `N` months that have one (-1: all)")
	fs.IntVar(&o.Yearly, "keep-yearly", 0, "keep the newest backup of each of the last `N` years that have one (-1: all)")
	fs.Var(&o.Within, "keep-within", "keep every backup made within this `duration` of the VM's newest backup (weeks, days, hours: 14d, 2w, 36h, 1w3d)")
	o.Grace = keepDuration(repository.DefaultPruneGrace)
	fs.Var(&o.Grace, "grace", "never delete chunks written less than this `duration` ago, referenced or not (e.g. 1h, 2d; 0 to turn off)")
	fs.DurationVar(&o.RetryLock, "retry-lock", 0, "while backups hold the repository lock, retry for this `duration` (e.g. 30m) instead of failing")
	fs.BoolVar(&o.DryRun, "dry-run", false, "show which backups would be removed and how many bytes freed; delete nothing")
}

func (o *pruneOptions) policy() repository.Policy {
	return repository.Policy{Last: o.Last, Hourly: o.Hourly, Daily: o.Daily, Weekly: o.Weekly,
		Monthly: o.Monthly, Yearly: o.Yearly, Within: time.Duration(o.Within)}
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	var opts pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [...] [--dry-run]",
		Short: "Remove old backups by a keep policy and delete data no backup uses",
		Long: `Remove the backups a keep policy does not keep, then delete the chunks that
no remaining backup references (mark and sweep).

The policy works like restic's "forget" and is applied to each VM on its own
(VMs are told apart by instance UUID, else by name):
  --keep-last N      the N newest backups
  --keep-hourly N    the newest backup of each of the N newest hours that
  --keep-daily N     have a backup (days, ISO weeks starting Monday, months,
  --keep-weekly N    years); periods without a backup do not count, and
  --keep-monthly N   while a count is left the VM's oldest backup is kept
  --keep-yearly N    too. Periods are in this host's local time zone.
  --keep-within D    every backup made within D of the VM's newest backup
                     (not of now: a VM no longer backed up keeps its last ones)
N = -1 means unlimited. The rules add up: a backup stays if any rule keeps it,
and the plan names the rules that did. Without any --keep flag every backup
is kept and prune only deletes data left by failed or interrupted backups.

Prune takes the repository's exclusive lock: it waits for no one and fails
(exit 3) while a backup holds its shared lock, unless --retry-lock is given.
A lock whose host stopped refreshing it is taken over after it expires (30
minutes) and reported. Chunks written within --grace (1h) are kept even when
unreferenced, against clock skew and clients that do not lock.

If a backup manifest cannot be read, prune deletes nothing (exit 3): that
backup may use any chunk. On a repository created with --object-lock-days,
objects still under retention are skipped and reported, not errors; a
retained backup keeps its chunks.

A backup whose signature does not verify with a trusted writer key (see
"vtpm-backup list") is never counted as a kept backup of its VM, never
deleted (it is evidence, or a genuine backup of a key this host does not
trust), and the chunks it names stay; the report names it.

With --json, prune prints a prune_plan message (one entry per backup with
keep/remove and reasons) before deleting anything, then prune_done.

EXIT STATUS
  0  the policy was applied (retained objects skipped are not an error)
  1  a storage error; the report says how far prune got
  2  a usage error (bad flag value, bad --repo)
  3  refused: the repository is locked by a backup or another prune, or a
     backup manifest cannot be read`,
		Example: `  # what would go with 7 daily, 4 weekly and 12 monthly backups per VM
  vtpm-backup prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run

  # nightly from cron, after the backups, waiting up to an hour for them
  vtpm-backup prune --keep-within 2d --keep-daily 14 --keep-monthly -1 --retry-lock 1h --json

  # only delete data of failed backups, keep every backup
  vtpm-backup prune`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runPrune(ctx context.Context, opts pruneOptions, g *globalOptions, _ []string) error {
	policy := opts.policy()
	if err := policy.Validate(); err != nil {
		return newUsageError(err, "pass a count of 0 or more, or -1 for unlimited")
	}
	repo, err := opts.Trust.open(ctx, g, &opts.Repo, "")
	if err != nil {
		return err
	}
	defer repo.Close()

	grace := time.Duration(opts.Grace)
	if grace == 0 {
		grace = -1 // the API's "none"
	}
	p := g.printer()
	start := g.clock.Now()
	plan, err := repository.PlanPrune(ctx, repo, policy, repository.PruneOptions{
		DryRun: opts.DryRun,
		Grace:  grace,
		Lock:   repository.LockOptions{RetryFor: opts.RetryLock},
		Log:    g.logger(),
	})
	var rep *repository.PruneReport
	if plan != nil {
		rep = plan.Report
	}
	if err == nil {
		printPrunePlan(p, rep)
		rep, err = plan.Execute(ctx)
	}
	if rep != nil {
		printPruneDone(p, rep, g.clock.Now().Sub(start))
	}
	return err // ErrLocked and ErrUnreadableManifest: exit 3 (exitRules)
}

func printPrunePlan(p ui.Printer, r *repository.PruneReport) {
	p.JSON(prunePlanMessage(r))
	for _, s := range r.StaleLocks {
		p.P("warning: took over stale %s", s.Describe(r.Started))
	}
	p.P("%s per VM: keeping %d, removing %d of %d backups", r.Policy, r.Kept, r.Forgotten, len(r.Decisions))
	if len(r.Decisions) == 0 {
		return
	}
	t := p.Table("VM", "Backup", "Time", "Action", "Reasons")
	for _, d := range r.Decisions {
		id := d.BackupID
		if d.Unsigned {
			id += " (" + unsignedNote + ")"
		}
		t.Row(d.VMName, id, d.Time.Local().Format("2006-01-02 15:04 MST"), pruneAction(d), orDash(strings.Join(d.Reasons, ", ")))
	}
	_ = t.Flush()
}

func printPruneDone(p ui.Printer, r *repository.PruneReport, took time.Duration) {
	p.JSON(pruneDoneMessage(r, took))
	verb, deleted := "deleted", "freed"
	if r.DryRun {
		verb, deleted = "would delete", "would free"
	}
	p.P("%s %d backup manifest(s) and %d of %d chunks: %s %s", verb, r.ManifestsDeleted, r.ChunksDeleted, r.ChunksTotal, deleted, humanBytes(r.BytesFreed()))
	p.P("kept %d chunks in use and %d unused chunks written after %s (grace period)",
		r.ChunksReferenced-r.ChunksMissing, r.ChunksYoung, r.Cutoff.Local().Format("2006-01-02 15:04 MST"))
	if n := len(r.RetainedManifests); n > 0 || r.ChunksRetained > 0 {
		until := "unknown"
		if !r.RetainedUntil.IsZero() {
			until = r.RetainedUntil.Local().Format("2006-01-02 15:04 MST")
		}
		p.P("skipped under Object Lock retention: %d backup manifest(s) (their chunks stay) and %d chunks (%s, retained until %s at the latest)",
			n, r.ChunksRetained, humanBytes(r.ChunkBytesRetained), until)
	}
	if r.DebrisRemoved > 0 {
		p.P("removed %d leftover(s) of interrupted uploads", r.DebrisRemoved)
	}
	for _, w := range r.Warnings {
		p.P("warning: %s", w)
	}
}

// keepDuration is a duration flag in weeks, days and hours: "14d", "2w",
// "36h", "1w3d12h". Minutes are not accepted on purpose: restic users read
// "6m" as six months. Months and years vary in length: write 30d or 365d.
type keepDuration time.Duration

var keepDurationSyntax = regexp.MustCompile(`^(\d+[wdh])+$`)
var keepDurationPart = regexp.MustCompile(`(\d+)([wdh])`)

// Set implements pflag.Value.
func (d *keepDuration) Set(s string) error {
	if s == "0" {
		*d = 0
		return nil
	}
	if !keepDurationSyntax.MatchString(s) {
		return fmt.Errorf("%q is not a duration: use weeks, days and hours, e.g. 14d, 2w, 36h or 1w3d (months and years vary in length: write 30d or 365d)", s)
	}
	var total time.Duration
	for _, m := range keepDurationPart.FindAllStringSubmatch(s, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 1<<20 {
			return fmt.Errorf("%q: number too large", s)
		}
		unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour}[m[2]]
		total += time.Duration(n) * unit
	}
	*d = keepDuration(total)
	return nil
}

// String implements pflag.Value, in a form Set accepts.
func (d *keepDuration) String() string {
	v := time.Duration(*d)
	if v == 0 {
		return "0"
	}
	if v%time.Hour != 0 {
		return v.String()
	}
	var b strings.Builder
	if days := v / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if hours := (v % (24 * time.Hour)) / time.Hour; hours > 0 {
		fmt.Fprintf(&b, "%dh", hours)
	}
	return b.String()
}

// Type implements pflag.Value.
func (d *keepDuration) Type() string { return "duration" }
