package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/metrics"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// backupOptions are the flags of "vtpm-backup backup".
type backupOptions struct {
	Repo        repoFlags
	VCenter     vcenterFlags
	All         bool
	VTPMOnly    bool
	Folder      string
	Tags        []string
	Exclude     []string
	Parallel    int
	Workers     int
	MaxMemory   byteSize
	Quiesce     bool
	SkipUncap   bool
	DryRun      bool
	IncludeLogs bool
	WriterKey   writerKeyFlag
	Metrics     metricsFlags
	CBT         string
	EnableCBT   bool
	FullEvery   int
	VerifyCBT   bool
}

// AddFlags registers the flags of the backup command.
func (o *backupOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.VCenter.AddFlags(fs)
	fs.BoolVar(&o.All, "all", false, "back up every VM of the datacenter (templates excluded)")
	fs.BoolVar(&o.VTPMOnly, "vtpm-only", false, "with --all, --folder or --vsphere-tag: only VMs that have a virtual TPM")
	fs.StringVar(&o.Folder, "folder", "", "back up every VM below this inventory `folder` (e.g. /DC1/vm/prod)")
	fs.StringArrayVar(&o.Tags, "vsphere-tag", nil, "back up every VM carrying this vSphere tag, given as `CATEGORY/NAME` (e.g. backup/shard-a); repeatable")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "skip VMs whose name matches this `glob` (e.g. 'test-*'); repeatable")
	fs.IntVar(&o.Parallel, "parallel", 1, "back up `N` VMs at once")
	fs.IntVar(&o.Workers, "workers", 2, "chunk workers per VM (hash, compress, encrypt, upload)")
	o.MaxMemory = backup.DefaultMaxMemory
	fs.Var(&o.MaxMemory, "max-memory", "memory `size` for the chunk buffers of the whole run, shared by all VMs (e.g. 256MiB); see MEMORY")
	fs.BoolVar(&o.Quiesce, "quiesce", false, "quiesce the guest's file systems with VMware Tools before the snapshot (file systems only: vSphere does not quiesce applications of encrypted VMs, and vTPM VMs are encrypted)")
	fs.BoolVar(&o.SkipUncap, "skip-uncapturable", false, "back up a VM without the disks this backup cannot capture (vSAN, vVols, independent, RDM) instead of failing it; the backup records what it left out")
	fs.BoolVar(&o.DryRun, "dry-run", false, "list the files, sizes and keys that would be backed up; touch nothing")
	fs.BoolVar(&o.IncludeLogs, "include-logs", false, "also back up the VM's vmware*.log files")
	fs.StringVar(&o.CBT, "cbt", "auto", "read disks through Changed Block Tracking: `auto` (only what changed since the VM's previous backup when CBT allows it, else everything, saying why), on (like auto, but a VM without CBT fails), off (always read everything)")
	fs.BoolVar(&o.EnableCBT, "enable-cbt", false, "turn Changed Block Tracking on for VMs that have it off (a reconfigure of the VM; it takes effect at the backup's snapshot, so the next backup reads only changes); each VM it is turned on for is reported")
	fs.IntVar(&o.FullEvery, "full-every", 0, "read a disk whole when the `N`-1 backups before read only its changes (0: never force it); bounds how long a CBT error could go unnoticed")
	fs.BoolVar(&o.VerifyCBT, "verify-cbt", false, "read every disk whole and report the chunks CBT reported unchanged that had changed (a check of CBT; as slow as a full backup)")
	o.WriterKey.AddFlags(fs, "sign backups with the writer key in `file`")
	o.Metrics.AddFlags(fs)
}

// backupMemoryHelp is the MEMORY section of the backup command's help.
const backupMemoryHelp = `MEMORY
  The chunk buffers and encoders of a run come from one budget, --max-memory
  (default 128MiB, at least 32MiB), shared by the VMs backed up at once:
  --parallel 8 shares it rather than taking eight times as much, so VMs wait
  for a buffer instead of growing the process. Unless GOMEMLIMIT is set, the
  Go runtime is told to collect garbage before the heap outgrows the budget
  plus 64 MiB. Measured with the default: 50 small VMs at --parallel 8 into
  S3, with audit running beside them, peak at 220 MiB resident (make
  scaletest).
  Raise it for large chunk sizes (a writer holds two stored chunks) or
  many --workers; more memory than --parallel x (3 x --workers + 2) chunks
  is never used.

`

// backupLong is the backup command's help.
const backupLong = `Back up VMs into the repository.

For each VM, vtpm-backup copies every home file (.vmx, .vmxf, .nvram, .vmsd,
disk descriptors) before taking a snapshot named vtpm-backup-<backup id>,
then streams every disk of the VM's chain into the repository and removes
the snapshot, also on failure or Ctrl-C. The manifest is signed with the
writer key (--writer-key FILE, VTPM_BACKUP_WRITER_KEY, or the file init
created); into a repository created before writer keys existed, the first
backup creates one and says so. A stale vtpm-backup-* snapshot left
by a killed run is removed at the start of the next backup of that VM.

The backup records the VM's key IDs (config.keyId and disk keys), their key
providers and types, and whether a Native Key Provider was backed up: a
restore checks these keys on the target vCenter before writing anything.
A VM with a vTPM whose .nvram cannot be read fails: without it the TPM
secrets (BitLocker, Windows Hello, Credential Guard) are lost.

--quiesce asks VMware Tools to quiesce the guest's file systems before the
snapshot (on Windows a VSS snapshot without application writers). vSphere
does not support application-consistent (VSS writer) snapshots of encrypted
VMs, and a vTPM makes a VM encrypted, so application quiescing is never
asked for: stop or flush databases inside the guest if they need more than
a file-system-consistent copy.

Disks are read as files over the datastore file service. What that cannot
capture is refused before the snapshot, one line per disk with its reason:
disks on vSAN or vVols datastores (objects without a -flat.vmdk file),
independent disks (a snapshot does not cover them: the copy would be torn)
and raw device mappings (a LUN, not a file). --skip-uncapturable backs up
the rest of such a VM and records in the backup which disks it left out.
Change tracking files (-ctk.vmdk) are never copied. A linked clone, or a
VM with disks outside its home folder, is backed up, and the backup records
that it can be extracted with restore --to-dir but not registered on a
vCenter (audit reports it NOT READY for vCenter restore).

Disks are cut into aligned chunks; all-zero chunks are not stored, and
chunks the VM's previous backup already stored are not uploaded again, so a
nightly backup of an unchanged VM uploads only its small home files.

CHANGED BLOCK TRACKING
  With CBT on for a VM (config.changeTrackingEnabled), a backup asks
  vCenter, after its snapshot, which areas of each disk changed since the
  change ID the VM's previous backup recorded for that disk, reads only the
  chunks holding them (ranged, resumable reads) and takes every other
  chunk from the previous backup: an unchanged VM's disks are not read at
  all. Without a usable previous change ID (first backup, a disk whose
  UUID, capacity, device key or file changed) it reads the disk's
  allocated areas: a thin disk's never-written areas become zero chunks
  without being read. It reads a disk whole, and says why in the output
  (text and --json), when CBT is off or not active yet, when CBT was reset
  or the query fails, and for a disk with snapshots of its own (a chain of
  files). Every backup records each disk's device key, UUID, capacity and
  change ID in its manifest.
  --enable-cbt turns CBT on for VMs that have it off and says so: vSphere
  starts tracking at the VM's next stun, which the backup's own snapshot
  is, so the backup after reads only changes. --cbt on fails a VM without
  CBT (unless --enable-cbt); --cbt off never asks vCenter about changes.
  --full-every N reads a disk whole when the N-1 backups before it read
  only changes; --verify-cbt reads everything and reports (as a warning
  and cbt_missed_chunks) any chunk CBT reported unchanged that had changed.
  A disk read in part has no whole-file SHA-256 in the manifest: each
  chunk's ID, the SHA-256 of its content, is checked on restore.

VMs are named by name, inventory path or managed object reference (vm-42),
or selected with --all, --folder or --vsphere-tag; the criteria add up and
a VM selected twice is backed up once. --vtpm-only and --exclude apply to
the VMs of --all, --folder and --vsphere-tag; templates are never selected.
--vsphere-tag CATEGORY/NAME selects the VMs the tag is attached to (a tag
on a folder or host does not select the VMs in it); the category and tag
must exist, names are case-sensitive. Tags are read from the vCenter's vAPI
(REST) endpoint with the same user, so they need a vCenter, not an ESXi.
One VM's failure does not stop the others.

` + backupMemoryHelp + `METRICS
  --metrics-file writes Prometheus gauges for node_exporter's textfile
  collector (atomically); --metrics-push sends them to a Pushgateway,
  replacing the group job="vtpm-backup-backup", instance=--metrics-instance
  (default: the host name; give each shard its own). Per VM (label vm):
  vtpm_backup_backup_success, vtpm_backup_backup_last_success_timestamp_seconds
  (for a failed VM, its previous backup), vtpm_backup_backup_duration_seconds,
  vtpm_backup_backup_read_bytes, vtpm_backup_backup_uploaded_bytes,
  vtpm_backup_backup_chunks (label state: new, known, zero, reused),
  vtpm_backup_backup_disk_bytes (label state: read, skipped by CBT); for the run:
  vtpm_backup_backup_vms (label result: ok, failed),
  vtpm_backup_backup_run_timestamp_seconds and
  vtpm_backup_backup_run_duration_seconds. Metrics that cannot be written or
  pushed are a warning: they never fail a backup.

EXIT STATUS
  0 every VM was backed up; 1 at least one VM failed (the summary names
  each); 2 usage error (no VM selected, bad glob, bad or unknown
  --vsphere-tag, bad --repo); 3 the repository is locked by a prune (the
  error names its host, pid and age, and how to list and remove it).`

func newBackupCommand(g *globalOptions) *cobra.Command {
	var opts backupOptions
	cmd := &cobra.Command{
		Use:   "backup [VM...] [--all | --folder PATH | --vsphere-tag CATEGORY/NAME] [flags]",
		Short: "Back up VMs, their vTPM state (.nvram) and key references",
		Long:  backupLong,
		Example: `  # one VM, vCenter from the usual govc variables
  export GOVC_URL=vcenter.example.com GOVC_USERNAME=backup@vsphere.local
  vtpm-backup backup --repo s3://s3.example.com/backups/vtpm --password-file /etc/vtpm-backup/vc.pass win11-01

  # every vTPM VM of a folder, 4 at a time, except test VMs
  vtpm-backup backup --folder /DC1/vm/prod --vtpm-only --exclude 'test-*' --parallel 4

  # one cron job per shard: the VMs an administrator tagged backup/shard-a
  vtpm-backup backup --vsphere-tag backup/shard-a --vtpm-only

  # what would be backed up, and which keys the VMs need
  vtpm-backup backup --all --vtpm-only --dry-run

  # nightly, reading only what changed; turn CBT on where it is off
  vtpm-backup backup --folder /DC1/vm/prod --enable-cbt --full-every 30

  # for cron and monitoring: one JSON object per line
  vtpm-backup backup --all --vtpm-only --json --no-progress

  # a Kubernetes CronJob per shard, metrics to the Pushgateway
  vtpm-backup backup --vsphere-tag backup/shard-a --metrics-push http://pushgateway.monitoring:9091 --metrics-instance shard-a`,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Metrics.changed(cmd.Flags())
			return runBackup(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.ValidArgsFunction = completeVCenterVMs(g, &opts.VCenter)
	return cmd
}

func runBackup(ctx context.Context, opts backupOptions, g *globalOptions, args []string) error {
	sel := backup.Selection{Names: args, All: opts.All, Folder: opts.Folder, Tags: opts.Tags, VTPMOnly: opts.VTPMOnly, Exclude: opts.Exclude}
	if len(args) == 0 && !opts.All && opts.Folder == "" && len(opts.Tags) == 0 {
		return newUsageError(errors.New("no VM selected"), "name VMs, or use --all, --folder PATH or --vsphere-tag CATEGORY/NAME (see 'vtpm-backup backup --help')")
	}
	// A malformed tag is a usage error before the repository and the
	// vCenter are touched.
	for _, t := range opts.Tags {
		if _, _, err := backup.ParseTag(t); err != nil {
			return err
		}
	}
	if opts.Parallel < 1 || opts.Workers < 1 {
		return newUsageError(fmt.Errorf("--parallel %d / --workers %d: must be at least 1", opts.Parallel, opts.Workers), "")
	}
	if opts.MaxMemory < backup.MinMaxMemory {
		return newUsageError(fmt.Errorf("--max-memory %s: must be at least %s", &opts.MaxMemory, formatByteSize(backup.MinMaxMemory)), "")
	}
	if err := opts.Metrics.check(opts.DryRun); err != nil {
		return err
	}
	limitHeap(g, int64(opts.MaxMemory))
	cbtMode, err := opts.cbtMode()
	if err != nil {
		return err
	}
	repo, err := opts.Repo.open(ctx, g.clock)
	if err != nil {
		return err
	}
	defer repo.Close()
	p := g.printer()
	if !opts.DryRun {
		if err := opts.WriterKey.useWriterKey(ctx, g, repo, p); err != nil {
			return err
		}
	}
	c, err := opts.VCenter.connect(ctx, g.lookupEnv)
	if err != nil {
		return err
	}
	defer logout(ctx, c)

	start := g.clock.Now()
	ev := newBackupEvents(p, g.progress())
	b := backup.New(c, repo, backup.Options{
		Workers:          opts.Workers,
		Parallel:         opts.Parallel,
		MaxMemory:        int64(opts.MaxMemory),
		IncludeLogs:      opts.IncludeLogs,
		Quiesce:          opts.Quiesce,
		SkipUncapturable: opts.SkipUncap,
		DryRun:           opts.DryRun,
		CBT:              cbtMode,
		EnableCBT:        opts.EnableCBT,
		FullEvery:        opts.FullEvery,
		VerifyCBT:        opts.VerifyCBT,
		ToolVersion:      toolVersion(),
		Log:              g.logger(),
	}, ev)
	results, err := b.Run(ctx, sel)
	ev.progress.Wait()
	if err != nil {
		return err // a bad or empty selection is exit 2 (exitRules)
	}
	if opts.DryRun {
		printPlan(p, results)
	} else {
		printBackupSummary(p, results)
		// Metrics never fail a backup: a failed delivery is a warning.
		run := metrics.BackupRun{Started: start, Finished: g.clock.Now(), Results: results}
		printMetrics(p, "backup", opts.Metrics.target().Deliver(ctx, metrics.JobBackup, metrics.Backup(run)))
	}
	failed := backup.Failed(results)
	p.JSON(summaryMessage("backup", len(results)-failed, failed, g.clock.Now().Sub(start)))
	if failed > 0 {
		var names []string
		var errs []error
		for _, r := range results {
			if r.Err != nil {
				names = append(names, r.VM)
				errs = append(errs, r.Err)
			}
		}
		// The VMs' errors were printed with them; the remedy of the first
		// one that has one (S3 failing, a lock) goes with the summary.
		return hintFrom(fmt.Errorf("%d of %d VMs failed: %s", failed, len(results), strings.Join(names, ", ")), errs)
	}
	return nil
}

// heapSlack is what the Go heap may hold beyond the chunk memory budget:
// manifests, the index of known chunks, connections, garbage not yet
// collected.
const heapSlack = 64 << 20

// limitHeap sets the Go runtime's soft memory limit to the budget plus
// heapSlack, unless the user set GOMEMLIMIT: without it the collector lets
// the heap grow to twice what is live before it runs, and a run whose
// buffers are bounded still doubles its resident memory with garbage.
func limitHeap(g *globalOptions, budget int64) {
	if _, set := g.lookupEnv("GOMEMLIMIT"); set {
		return
	}
	debug.SetMemoryLimit(budget + heapSlack)
}

// backupEvents turns backup progress into bars and JSON lines.
type backupEvents struct {
	p        ui.Printer
	progress ui.Progress
	mu       sync.Mutex
	bars     map[string]ui.Bar
}

func newBackupEvents(p ui.Printer, progress ui.Progress) *backupEvents {
	return &backupEvents{p: p, progress: progress, bars: map[string]ui.Bar{}}
}

func (e *backupEvents) VMStarted(vm string, total int64) {
	e.mu.Lock()
	e.bars[vm] = e.progress.NewBar(vm, total)
	e.mu.Unlock()
}

func (e *backupEvents) Status(vm, step string) {
	e.p.JSON(statusMessage(vm, step))
}

func (e *backupEvents) Progress(vm string, n int64) {
	e.mu.Lock()
	b := e.bars[vm]
	e.mu.Unlock()
	if b != nil {
		b.Add(n)
	}
}

func (e *backupEvents) VMDone(r *backup.Result) {
	e.mu.Lock()
	b := e.bars[r.VM]
	e.mu.Unlock()
	if b != nil {
		b.Done(r.Err)
	}
	if r.BackupID == "" && r.Err == nil {
		return // dry run: reported by printPlan
	}
	e.p.JSON(vmDoneMessage(r))
}

// cbtMode checks the CBT flags.
func (o *backupOptions) cbtMode() (backup.CBTMode, error) {
	m, err := backup.ParseCBTMode(o.CBT)
	switch {
	case err != nil:
		return "", newUsageError(err, "")
	case o.FullEvery < 0:
		return "", newUsageError(fmt.Errorf("--full-every %d: must be 0 (never) or more", o.FullEvery), "")
	case m == backup.CBTOff && (o.EnableCBT || o.VerifyCBT):
		return "", newUsageError(errors.New("--cbt off reads every disk whole: --enable-cbt and --verify-cbt need CBT"), "drop --cbt off, or the CBT flags")
	}
	return m, nil
}

// printDiskReads says, per disk, how CBT let the backup read it and why
// it read more than the changes.
func printDiskReads(p ui.Printer, r *backup.Result) {
	for _, d := range r.Disks {
		switch {
		case d.Read == repository.DiskReadChanged:
			p.P("cbt: %s: %s: read only the changes", r.VM, d.Label)
		case d.Fallback != "":
			p.P("cbt: %s: %s: read %s: %s", r.VM, d.Label, map[string]string{repository.DiskReadFull: "whole", repository.DiskReadAllocated: "the allocated areas"}[d.Read], d.Fallback)
		}
	}
}

func printBackupSummary(p ui.Printer, results []*backup.Result) {
	t := p.Table("VM", "RESULT", "BACKUP ID", "READ", "SKIPPED (CBT)", "UPLOADED", "CHUNKS NEW/KNOWN/ZERO", "TIME")
	for _, r := range results {
		status := "ok"
		if r.Err != nil {
			status = "FAILED"
		}
		t.Row(r.VM, status, r.BackupID, humanize.IBytes(uint64(r.BytesRead)), humanize.IBytes(uint64(r.BytesSkipped)), humanize.IBytes(uint64(r.BytesUploaded)),
			fmt.Sprintf("%d/%d/%d", r.ChunksNew, r.ChunksKnown, r.ChunksZero), r.Finished.Sub(r.Started).Round(100*time.Millisecond))
	}
	_ = t.Flush()
	for _, r := range results {
		printDiskReads(p, r)
		for _, w := range r.Warnings {
			p.P("warning: %s: %s", r.VM, w)
		}
		if r.Err != nil {
			p.P("error: %s: %v", r.VM, r.Err)
		}
	}
}

func printPlan(p ui.Printer, results []*backup.Result) {
	for _, r := range results {
		if r.Err != nil {
			p.P("%s: cannot back up: %v", r.VM, r.Err)
		} else {
			p.P("%s:", r.VM)
		}
		for _, f := range r.Files {
			p.P("  %-16s %10s  %s", f.Type, humanize.IBytes(uint64(f.Size)), f.Path)
		}
		for _, k := range r.Keys {
			p.P("  key %s of provider %s (%s), protects %s", k.KeyID, k.ProviderID, k.ProviderType, k.Use)
		}
		if r.Err == nil && len(r.Keys) == 0 {
			p.P("  no encryption keys (VM not encrypted)")
		}
		p.JSON(backupPlanMessage(r))
	}
}
