package main

import (
	"context"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// listOptions are the flags of "vtpm-backup list".
type listOptions struct {
	Repo  repoFlags
	Trust trustFlags
}

// AddFlags registers the flags of the list command.
func (o *listOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.Trust.AddFlags(fs)
}

func newListCommand(g *globalOptions) *cobra.Command {
	var opts listOptions
	cmd := &cobra.Command{
		Use:   "list [VM...]",
		Short: "List backups, grouped by VM, newest first",
		Long: `List the backups in the repository, grouped by VM (by name) and newest first
within each VM. Name VMs to list only theirs.

Columns: backup ID, VM, time (UTC), size of the VM's files, stored size
(compressed and encrypted objects the backup references, including objects
shared with other backups), whether the VM has a vTPM, and the key
provider(s) its keys come from. Sizes are humanized in the table and exact
bytes with --json (one backup_entry object per line).

A backup whose manifest cannot be read is listed with the error; run
"vtpm-backup audit" to see what it means for restores.

Backups are signed by the backup hosts' writer key. A backup counts only when
its signature verifies with a trusted writer key: one pinned with
--trust-writer, in the identity file ("# writer key:" lines), or this host's
own writer key file; with none pinned, the keys of the repository config,
with a warning (whoever can write to the bucket can change them).
Any other backup is listed as REJECTED with the reason (unsigned, forged, or
foreign: signed by a key that is not trusted); its VM is only what it claims.
--allow-unsigned accepts backups written before signing existed, and marks
each of them UNSIGNED.

EXIT STATUS
  0  success (also when there are no backups)
  1  the repository could not be read
  2  usage error (no --repo, bad --repo URL)`,
		Example: `  vtpm-backup list --repo /srv/vtpm-repo
  vtpm-backup list win11-ws01 win11-ws02
  vtpm-backup list --json | jq -r 'select(.vm=="win11-ws01") | .backup_id' | head -1`,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.ValidArgsFunction = completeRepoVMs(g, &opts.Repo, &opts.Trust)
	return cmd
}

func runList(ctx context.Context, opts listOptions, g *globalOptions, args []string) error {
	repo, err := opts.Trust.open(ctx, g, &opts.Repo, "")
	if err != nil {
		return err
	}
	defer repo.Close()
	cat, err := repository.LoadCatalog(ctx, repo)
	if err != nil {
		return err
	}
	vms := args
	if len(vms) == 0 {
		vms = cat.VMs()
	}
	var entries []ui.BackupEntryMessage
	for _, vm := range vms {
		for _, b := range cat.Backups(vm) {
			entries = append(entries, backupEntryMessage(b))
		}
	}
	if len(args) == 0 {
		for _, b := range cat.Unattributed {
			entries = append(entries, backupEntryMessage(b))
		}
	}
	for _, b := range cat.Rejected() {
		if len(args) == 0 || slices.Contains(args, b.VM) {
			entries = append(entries, backupEntryMessage(b))
		}
	}

	p := g.printer()
	for _, e := range entries {
		p.JSON(e)
	}
	p.JSON(listSummaryMessage(repo.Location(), entries))
	if len(entries) == 0 {
		if len(args) > 0 {
			p.P("no backups of %s in %s", strings.Join(args, ", "), repo.Location())
		} else {
			p.P("no backups in %s", repo.Location())
		}
		return nil
	}
	t := p.Table("ID", "VM", "Time", "Size", "Stored", "vTPM", "CBT", "Key provider")
	for _, e := range entries {
		if e.Rejected != "" {
			t.Row(e.BackupID, orDash(e.VM)+" (claimed)", e.Time, "-", "-", "-", "-", "REJECTED ("+e.Rejected+"): "+e.Error)
			continue
		}
		if e.Error != "" {
			vm := e.VM
			if vm == "" {
				vm = "?"
			}
			t.Row(e.BackupID, vm, e.Time, "-", "-", "-", "-", "unreadable: "+e.Error)
			continue
		}
		vm := e.VM
		if e.Unsigned {
			vm += " (" + unsignedNote + ")"
		}
		t.Row(e.BackupID, vm, e.Time, humanBytes(e.Size), humanBytes(e.StoredSize), yesNo(e.VTPM), cbtState(e.CBT), orDash(strings.Join(e.KeyProviders, ",")))
	}
	return t.Flush()
}

// humanBytes writes n in binary units with one decimal: 1.5 GiB, 312 B.
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// cbtState is "on", "off" or "-" (not recorded) for a VM's Changed Block
// Tracking.
func cbtState(b *bool) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
