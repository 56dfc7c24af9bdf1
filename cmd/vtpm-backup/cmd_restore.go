package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// restoreOptions are the flags of "vtpm-backup restore".
type restoreOptions struct {
	Repo      repoFlags
	Trust     trustFlags
	VCenter   vcenterFlags
	Name      string
	Datastore string
	Folder    string
	Pool      string
	Host      string
	PowerOn   bool
	UUID      string
	DryRun    bool
	Identity  string
	ToDir     string
	Files     []string
	Workers   int
}

// AddFlags registers the flags of the restore command.
func (o *restoreOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.Trust.AddFlags(fs)
	o.VCenter.AddFlags(fs)
	fs.StringVar(&o.Name, "name", "", "`name` of the restored VM and of its new home folder (default: the original name)")
	fs.StringVar(&o.Datastore, "datastore", "", "`datastore` for the new home folder (default: the original datastore)")
	fs.StringVar(&o.Folder, "folder", "", "VM `folder` (inventory path) to register in (default: the original folder)")
	fs.StringVar(&o.Pool, "pool", "", "resource `pool` (inventory path) to run in (default: the original pool)")
	fs.StringVar(&o.Host, "host", "", "`host` to register on (default: the original host when it can take the VM and the pool is the original one or has no DRS; else vCenter chooses, or in a cluster without DRS the first connected host outside maintenance mode that mounts the datastore)")
	fs.BoolVar(&o.PowerOn, "power-on", false, "power the VM on after registration, answering the moved-or-copied question with --uuid")
	fs.Var(newChoiceValue(&o.UUID, string(vsphere.UUIDKeep), string(vsphere.UUIDNew)), "uuid",
		"answer to vSphere's moved-or-copied question at power-on: keep (moved: same BIOS UUID and MACs; default) or new (copied: a new BIOS UUID and MACs)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "run every pre-flight check and print the plan; write nothing")
	fs.StringVar(&o.Identity, "identity", "", "age identity `file` that decrypts the repository (env VTPM_BACKUP_IDENTITY)")
	fs.StringVar(&o.ToDir, "to-dir", "", "write the backed-up files into local `folder` instead of restoring to vCenter (no vCenter needed)")
	fs.StringArrayVar(&o.Files, "files", nil, "with --to-dir: only files whose name matches this `glob` (e.g. '*.nvram'); repeatable")
	fs.IntVar(&o.Workers, "workers", restore.DefaultWorkers, "chunks downloaded and decoded in parallel")
}

// restoreHelp is the long help of "vtpm-backup restore": what is checked
// before anything is written, and in which order.
const restoreHelp = `Restore one backup: as a registered VM on a vCenter, or with --to-dir as
files in a local folder.

The backup is a backup ID, or a VM (name or inventory path at backup time):
VM and VM@latest pick its latest backup, VM@TIME the latest one at or before
TIME (2006-01-02 for the end of that day, 2006-01-02T15:04 in UTC, or RFC 3339
with a zone).

Refuse early, write late. Before writing anything, restore checks in this
order: the backup's manifest; that the target vCenter can serve every key
the VM needs (VM and disk keys, one QueryCryptoKeyStatus call; there is no
way to skip this: an encrypted VM without its key is a locked VM); that the
datastore, folder, resource pool and host exist (in a cluster without DRS,
which vCenter does not place VMs in by itself, a host that can take the VM),
and that neither a VM
with the new name nor its home folder [datastore] NAME/ exists (restore
never overwrites); that the datastore has room; and that --identity
decrypts the repository. --dry-run stops there and prints the plan.

Files keep their original names: the .vmx of an encrypted VM cannot be
rewritten, and it names the .nvram and disks. A restore under a new name
writes them into a new folder named after the VM and registers
[datastore] NEW/ORIGINAL.vmx as NEW. A backup whose disks lived outside the
VM home folder cannot be restored this way; use --to-dir.

Every chunk and every file is verified against the backup while it streams
to the datastore. After registering, restore checks that vCenter did not
leave the VM locked: vCenter registers an encrypted VM even when its host may
not get the key (the account lacks Cryptographer.RegisterVM, or the host is
not in encryption mode and the account lacks Cryptographer.RegisterHost).
If anything fails, or on Ctrl-C, restore unregisters the VM it registered
and deletes exactly the files and the folder it created.

--uuid answers vSphere's question at the first power-on ("moved or copied?").
keep (the default) says "moved": the VM keeps its BIOS UUID and MAC
addresses, right for replacing a lost VM. Use new ("copied") for a copy that
runs beside the original, so the two do not share UUID and MACs.
--power-on with keep is refused (exit 3) while a VM with the backup's BIOS
UUID is powered on, usually the original: two running VMs with one BIOS
UUID and the same MACs on the same networks; power the original off first
if the restore replaces it. Without --power-on the question comes at the
first power-on in the vSphere Client.
If the restored VM does not power on, it is kept and the error says so.

--to-dir needs no vCenter: it writes the files (e.g. the .nvram for another
tool) as they were on the datastore, verified, never overwriting a file.

Backups are signed by the backup hosts' writer key. A backup counts only when
its signature verifies with a trusted writer key: one pinned with
--trust-writer, in the identity file ("# writer key:" lines), or this host's
own writer key file; with none pinned, the keys of the repository config,
with a warning (whoever can write to the bucket can change them).
VM@latest and VM@TIME never pick a rejected backup; a rejected backup named
by its ID is refused (exit 3) with the reason: unsigned, forged, or foreign.
--allow-unsigned restores backups written before signing existed.

EXIT STATUS
  0  restored (or --dry-run: every check passed)
  1  failure (storage, vCenter or network error, corrupt chunk, failed
     power-on of a restored VM); a failed restore leaves nothing behind
  2  usage error or bad input: unknown backup or VM, a VM name matching
     several VMs (the candidates are listed), wrong --identity, a --folder,
     --pool, --host or --datastore that does not exist, no host of a
     cluster without DRS that can take the VM, bad --files
  3  refused: a key is not available on the target vCenter (each key is
     listed with its provider and the remedy), the VM name or its home
     folder already exists, not enough free space, a backup that cannot
     be restored to vCenter, --power-on --uuid keep while a VM with the
     same BIOS UUID runs, a backup rejected as unsigned, forged or
     foreign, or a restored VM vCenter left locked (the missing privilege
     is named; the VM and its files are removed)`

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore BACKUP-ID|VM[@latest|@TIME] [flags]",
		Short: "Restore a backup as a new VM on vCenter, or its files to a folder",
		Long:  restoreHelp,
		Example: `  # the latest backup of a lost VM, in its original place, powered on
  vtpm-backup restore --repo s3://s3.example.com/backups/vtpm --identity ~/vtpm-backup.key \
      win11-01@latest --power-on

  # check a restore to the DR vCenter without writing anything
  GOVC_URL=vc-dr.example.com vtpm-backup restore win11-01 --dry-run

  # yesterday's state beside the running original, as a copy
  vtpm-backup restore win11-01@2026-05-01 --name win11-01-restored --power-on --uuid new

  # a given backup to another datastore, folder and pool
  vtpm-backup restore 20260501T020000.000Z-1a2b3c4d --datastore ds-ssd-02 \
      --folder /DC1/vm/restored --pool /DC1/host/C1/Resources

  # only the vTPM state file, to a local folder
  vtpm-backup restore win11-01 --to-dir ./win11-01-nvram --files '*.nvram'`,
		Args:              cobra.ArbitraryArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.ValidArgsFunction = completeSpec(g, &opts.Repo, &opts.Trust)
	_ = cmd.RegisterFlagCompletionFunc("uuid", cobra.FixedCompletions([]string{string(vsphere.UUIDKeep), string(vsphere.UUIDNew)}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runRestore(ctx context.Context, opts restoreOptions, g *globalOptions, args []string) error {
	if err := opts.validate(args); err != nil {
		return err
	}
	repo, err := opts.Trust.open(ctx, g, &opts.Repo, opts.Identity)
	if err != nil {
		return err
	}
	defer repo.Close()
	if err := g.loadIdentity(repo, opts.Identity); err != nil {
		return err
	}
	m, err := repository.Select(ctx, repo, args[0])
	if err != nil {
		return err
	}
	p := g.printer()
	ev := &restoreEvents{p: p, log: g.logger(), vm: m.VM.Name}
	if opts.ToDir != "" {
		return runRestoreToDir(ctx, opts, g, p, ev, repo, m)
	}

	c, err := opts.VCenter.connect(ctx, g.lookupEnv)
	if err != nil {
		return err
	}
	defer logout(ctx, c)
	plan, err := restore.Preflight(ctx, c, repo, m, restore.Options{
		Name: opts.Name, Datastore: opts.Datastore, Folder: opts.Folder, Pool: opts.Pool, Host: opts.Host,
		PowerOn: opts.PowerOn, UUID: vsphere.UUIDAction(opts.UUID), Workers: opts.Workers, Events: ev,
	})
	if err != nil {
		return err
	}
	note := unsignedSuffix(&m.ManifestHeader)
	printRestorePlan(p, plan, opts.DryRun, note)
	if opts.DryRun {
		p.P("dry run: every pre-flight check passed; nothing was written")
		return nil
	}

	progress := g.progress()
	ev.bar = progress.NewBar(plan.Name, plan.TotalSize)
	start := g.clock.Now()
	res, err := restore.Run(ctx, c, repo, plan)
	if err == nil && res.PowerOnErr != nil {
		err = res.PowerOnErr // the VM is kept; the command still fails (exit 1)
	}
	ev.bar.Done(runErr(res, err))
	progress.Wait()
	if res != nil {
		printRestoreDone(p, res, err, note)
	}
	p.JSON(restoreSummary(res, err, g.clock.Now().Sub(start)))
	return err
}

// runErr is the error that failed the restore itself: a power-on failure
// still leaves a complete VM.
func runErr(res *restore.Result, err error) error {
	if res != nil {
		return nil
	}
	return err
}

func runRestoreToDir(ctx context.Context, opts restoreOptions, g *globalOptions, p ui.Printer, ev *restoreEvents, repo *repository.Repository, m *repository.Manifest) error {
	dopts := restore.DirOptions{Patterns: opts.Files, Workers: opts.Workers, Events: ev}
	plan, err := restore.PlanDir(ctx, repo, m, opts.ToDir, dopts)
	if err != nil {
		return err
	}
	note := unsignedSuffix(&m.ManifestHeader)
	msg := restoreDirPlanMessage(m, opts.ToDir, plan.Files, opts.DryRun)
	p.P("restore of backup %s%s of VM %s to %s:", m.BackupID, note, m.VM.Name, opts.ToDir)
	for _, f := range plan.Files {
		p.P("  %-16s %10s  %s", f.Type, humanize.IBytes(uint64(f.Size)), f.Target)
	}
	p.JSON(msg)
	if opts.DryRun {
		p.P("dry run: every pre-flight check passed; nothing was written")
		return nil
	}
	progress := g.progress()
	ev.bar = progress.NewBar(m.VM.Name, msg.TotalBytes)
	start := g.clock.Now()
	res, err := restore.RunDir(ctx, repo, plan)
	ev.bar.Done(err)
	progress.Wait()
	if res != nil {
		printRestoreDone(p, res, nil, note)
	}
	p.JSON(restoreSummary(res, err, g.clock.Now().Sub(start)))
	return err
}

// validate checks the command line before anything is opened.
func (o *restoreOptions) validate(args []string) error {
	hint := "run 'vtpm-backup restore --help' for usage"
	switch {
	case len(args) != 1:
		return newUsageError(fmt.Errorf("restore takes one backup (BACKUP-ID or VM[@latest|@TIME]), got %d arguments", len(args)), hint)
	case o.UUID != "" && o.UUID != string(vsphere.UUIDKeep) && o.UUID != string(vsphere.UUIDNew):
		return newUsageError(fmt.Errorf("--uuid %q: use keep or new", o.UUID), hint)
	case o.Workers < 1:
		return newUsageError(fmt.Errorf("--workers %d: must be at least 1", o.Workers), hint)
	case o.ToDir == "" && len(o.Files) > 0:
		return newUsageError(errors.New("--files selects files for --to-dir"), "add --to-dir DIR, or drop --files (a VM restore needs every file)")
	}
	if o.ToDir != "" {
		for flag, set := range map[string]bool{
			"--name": o.Name != "", "--datastore": o.Datastore != "", "--folder": o.Folder != "", "--pool": o.Pool != "",
			"--host": o.Host != "", "--power-on": o.PowerOn, "--uuid": o.UUID != "",
		} {
			if set {
				return newUsageError(fmt.Errorf("%s places a VM on vCenter; --to-dir writes files only", flag), "use either --to-dir or the vCenter placement flags")
			}
		}
	}
	return nil
}

// restoreEvents turns restore progress into a bar, log lines and JSON
// status messages.
type restoreEvents struct {
	p   ui.Printer
	log *slog.Logger
	bar ui.Bar
	// vm is the backed-up VM, for the status messages.
	vm string
}

func (e *restoreEvents) Status(step string) {
	e.log.Info(step)
	e.p.JSON(statusMessage(e.vm, step))
}

func (e *restoreEvents) Progress(n int64) {
	if e.bar != nil {
		e.bar.Add(n)
	}
}

// printRestorePlan prints the plan; note marks an unsigned backup
// (unsignedSuffix).
func printRestorePlan(p ui.Printer, plan *restore.Plan, dryRun bool, note string) {
	p.P("restore of backup %s%s of VM %s:", plan.BackupID, note, plan.SourceVM)
	where := plan.Pool
	if plan.Host != "" {
		where += ", host " + plan.Host
	}
	p.P("  new VM %s in %s (pool %s)", plan.Name, plan.Folder, where)
	p.P("  home   %s (%s to write, %s free)", plan.HomeFolder, humanize.IBytes(uint64(plan.TotalSize)), humanize.IBytes(uint64(plan.FreeSpace)))
	p.P("  vmx    %s", plan.VMXPath)
	for _, k := range plan.Keys {
		p.P("  key    %s (%s) of provider %s (%s): available (checked: %s)", k.Ref.KeyID, k.Ref.Use, k.Ref.ProviderID, k.ProviderType, k.Check)
	}
	if len(plan.Keys) == 0 {
		p.P("  key    none (the VM is not encrypted)")
	}
	for _, f := range plan.Files {
		p.P("  file   %-16s %10s  %s", f.Type, humanize.IBytes(uint64(f.Size)), f.Target)
	}
	if plan.PowerOn {
		p.P("  then power on, answering the moved-or-copied question with %q", plan.UUID)
	}
	for _, w := range plan.Warnings {
		p.P("warning: %s", w)
	}
	msg := restorePlanMessage(plan, dryRun)
	msg.Unsigned = note != ""
	p.JSON(msg)
}

// printRestoreDone reports the restore; note marks an unsigned backup.
func printRestoreDone(p ui.Printer, res *restore.Result, err error, note string) {
	rate := fmt.Sprintf("%d files, %s in %s (%.0f MB/s)", len(res.Files), humanize.IBytes(uint64(res.Bytes)),
		res.Duration().Round(10*time.Millisecond), res.MBPerSecond())
	switch {
	case res.Dir != "":
		p.P("restored backup %s%s of VM %s to %s: %s", res.BackupID, note, res.SourceVM, res.Dir, rate)
	default:
		p.P("restored VM %s (%s) from backup %s%s of %s: %s", res.Name, res.MoRef, res.BackupID, note, res.SourceVM, rate)
		if res.PoweredOn {
			p.P("VM %s is powered on", res.Name)
		}
	}
	done := restoreDoneMessage(res, err)
	done.Unsigned = note != ""
	p.JSON(done)
}

func restoreSummary(res *restore.Result, err error, took time.Duration) ui.SummaryMessage {
	if res != nil && err == nil {
		return summaryMessage("restore", 1, 0, took)
	}
	return summaryMessage("restore", 0, 1, took)
}
