package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// unlockOptions are the flags of "vtpm-backup unlock".
type unlockOptions struct {
	Repo      repoFlags
	RemoveAll bool
}

// AddFlags registers the flags of the unlock command.
func (o *unlockOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	fs.BoolVar(&o.RemoveAll, "remove-all", false, "also remove locks that are still alive (only when you know their holders are gone)")
}

func newUnlockCommand(g *globalOptions) *cobra.Command {
	var opts unlockOptions
	cmd := &cobra.Command{
		Use:   "unlock [--remove-all]",
		Short: "List the repository's locks and remove stale ones",
		Long: `List the repository's locks (backups hold shared ones, prune an exclusive
one) and remove the stale ones. A lock is stale by one of two rules:

  - Its holder ran on this host and is gone: the lock records the host
    name, the boot ID, the pid and the process start time, so a run that
    was killed (kill -9, the OOM killer) or whose host rebooted is known
    dead at once, even when its pid now belongs to another process (a
    restarted container is pid 1 again).
  - It expired: a running holder refreshes its lock every 5 minutes and a
    lock not refreshed for 30 minutes is stale. Locks of other hosts, and
    locks written by versions that did not record a boot ID and start
    time, are judged by this rule only, since their process cannot be
    looked up from here.

Stale locks never block anyone: backup sweeps the snapshot a dead run left
and proceeds, and prune takes stale locks over by itself, so this is
housekeeping, not a repair. The first rule trusts host names: give every
backup host (and container) its own, or two of them could take each
other's live lock for a dead one.

--remove-all also removes live locks. Do that only when you are sure their
holders are gone (the host is down for good): a backup whose lock is
removed stops at its next refresh, and a prune running meanwhile could
delete chunks that backup was about to reference.

EXIT STATUS
  0 done (also when there was nothing to remove); 1 storage error;
  2 usage error.`,
		Example: `  vtpm-backup unlock
  vtpm-backup unlock --json
  # the backup host burnt down with a backup running
  vtpm-backup unlock --remove-all`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnlock(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runUnlock(ctx context.Context, opts unlockOptions, g *globalOptions, _ []string) error {
	repo, err := opts.Repo.open(ctx, g.clock)
	if err != nil {
		return err
	}
	defer repo.Close()
	now := g.clock.Now()
	locks, err := repo.ListLocks(ctx)
	if err != nil {
		return err
	}
	removed, err := repo.RemoveStaleLocks(ctx, now, opts.RemoveAll)
	gone := map[string]bool{}
	listed := map[string]bool{}
	for _, l := range locks {
		listed[l.ID] = true
	}
	for _, l := range removed {
		gone[l.ID] = true
		if !listed[l.ID] { // taken between the two listings
			locks = append(locks, l)
		}
	}
	p := g.printer()
	for _, l := range locks {
		p.JSON(lockMessage(l, now, gone[l.ID]))
		verb := "kept   "
		if gone[l.ID] {
			verb = "removed"
		}
		p.P("%s %s", verb, l.Describe(now))
	}
	if len(locks) == 0 {
		p.P("no locks in %s", repo.Location())
	}
	sum := unlockSummaryMessage(repo.Location(), len(locks), len(gone))
	if sum.Kept > 0 {
		// A lock left after a killed run is still live until it expires:
		// say how to get out instead of only "kept".
		sum.Hint = fmt.Sprintf("%d live lock(s) kept: each expires %s after its holder stopped refreshing it; if you are sure a holder is gone for good (its host is down, its process killed), remove the locks now with 'vtpm-backup unlock --remove-all'",
			sum.Kept, humanAge(repository.DefaultLockExpiry))
		p.P("%s", sum.Hint)
	}
	p.JSON(sum)
	return err
}
