package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// SnapshotPrefix names our snapshots; stale ones with this prefix are
// swept at the start of the next backup of the VM.
const SnapshotPrefix = "vtpm-backup-"

// ErrBusy: another backup run is backing up the VM right now.
var ErrBusy = errors.New("VM is being backed up by another run")

// ErrNoNvram: a vTPM VM's .nvram could not be backed up. Such a backup
// would restore a VM whose TPM secrets are gone, so it is a failure.
var ErrNoNvram = errors.New("vTPM VM without .nvram")

// ErrNoVMX: the VM's .vmx could not be backed up. Without it a backup has
// no VM to register (restore and audit refuse it), so it is a failure too.
var ErrNoVMX = errors.New("VM without .vmx")

// cleanupTimeout bounds snapshot removal after a failure or Ctrl-C.
const cleanupTimeout = 10 * time.Minute

// Options tune a backup run.
type Options struct {
	// Workers is the number of chunk workers per VM (hash, compress,
	// encrypt, upload). Default 2.
	Workers int
	// Parallel is the number of VMs backed up at once. Default 1.
	Parallel int
	// MaxMemory bounds the chunk buffers and chunk writers of the whole
	// run, in bytes, shared by the VMs backed up in parallel: more VMs at
	// once share it rather than multiply it. Zero means DefaultMaxMemory;
	// less than MinMaxMemory is raised to it.
	MaxMemory int64
	// IncludeLogs adds vmware*.log files.
	IncludeLogs bool
	// Quiesce asks VMware Tools to quiesce the guest file systems.
	Quiesce bool
	// SkipUncapturable backs up a VM whose disks this transport cannot
	// capture all (see ErrUncapturable) without them, recording in the
	// manifest which disks were left out and why. Without it such a VM
	// fails before its snapshot.
	SkipUncapturable bool
	// DryRun lists what would be backed up and touches nothing.
	DryRun bool
	// CBT says whether disks are read through Changed Block Tracking;
	// default CBTAuto.
	CBT CBTMode
	// EnableCBT turns CBT on for VMs that have it off, with a warning.
	EnableCBT bool
	// FullEvery, when > 0, reads a disk whole when the FullEvery-1
	// backups before read it in part through CBT.
	FullEvery int
	// VerifyCBT reads every disk whole and reports the chunks CBT would
	// have missed (Result.CBTMissed).
	VerifyCBT bool
	// ToolVersion goes into manifests.
	ToolVersion string
	// Clock dates backups and judges snapshot ages; nil means the
	// repository's clock, which also times its locks.
	Clock clock.Clock
	// Log receives the run's steps at info level, each with its VM,
	// object and duration, and each VM's result; nil logs nothing.
	Log *slog.Logger
	// Lock takes the repository's shared lock for a Run; nil means a
	// shared lock with default expiry and refresh. Tests hook in here to
	// act while the lock is held.
	Lock func(ctx context.Context, repo *repository.Repository) (*repository.Lock, error)
}

// PlannedFile is one file a backup copies (dry run output and results).
type PlannedFile struct {
	Path string
	Type string
	Size int64
}

// Result is the outcome of one VM's backup.
type Result struct {
	VM       string
	MoRef    string
	BackupID string
	Started  time.Time
	Finished time.Time
	// Previous is the time of the VM's latest backup before this run, zero
	// when it had none or the run failed before finding the VM: the last
	// success a failed run reports to monitoring.
	Previous time.Time
	Stats
	// Files and Keys are filled for dry runs and successful backups.
	Files    []PlannedFile
	Keys     []repository.KeyInfo
	Warnings []string
	// SweptSnapshots names stale snapshots of ours that were removed.
	SweptSnapshots []string
	// Disks says per disk how it was read and, when CBT did not spare
	// reading it whole, why (the manifest's records).
	Disks []repository.DiskRecord
	// DiskBytesRead is the disk data read from the datastore (BytesRead
	// less the home files).
	DiskBytesRead int64
	// CBTEnabled: this run turned CBT on for the VM (EnableCBT).
	CBTEnabled bool
	// CBTMissed counts chunks CBT reported unchanged that had changed
	// (VerifyCBT).
	CBTMissed int
	Manifest  *repository.Manifest
	Err       error
}

// Backuper backs up VMs of one vCenter into one repository.
type Backuper struct {
	client *vsphere.Client
	repo   *repository.Repository
	opts   Options
	events Events
	index  *repository.Index
	mem    *memoryPool

	// lockID is the repository lock of the current Run ("" outside Run).
	lockID string

	prevMu sync.Mutex
	prev   map[string]repository.Backup // latest backup by vmKey, from the catalog
}

// New returns a Backuper. Events may be nil.
func New(c *vsphere.Client, repo *repository.Repository, opts Options, events Events) *Backuper {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.CBT == "" {
		opts.CBT = CBTAuto
	}
	if events == nil {
		events = NopEvents{}
	}
	if opts.Clock == nil {
		opts.Clock = repo.Clock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMemory == 0 {
		opts.MaxMemory = DefaultMaxMemory
	}
	opts.MaxMemory = max(opts.MaxMemory, MinMaxMemory)
	events = newLogEvents(events, opts.Log, opts.Clock)
	return &Backuper{
		client: c, repo: repo, opts: opts, events: events, index: repository.NewIndex(),
		mem: newMemoryPool(repo, opts.Workers, opts.Parallel, opts.MaxMemory),
	}
}

// loadPrevious reads the repository's catalog (manifest headers only) once
// per run and notes each VM's latest backup, whose chunks need not be
// uploaded again. Damaged manifests are skipped: they only cost
// re-uploading.
func (b *Backuper) loadPrevious(ctx context.Context) error {
	b.prevMu.Lock()
	defer b.prevMu.Unlock()
	if b.prev != nil {
		return nil
	}
	cat, err := repository.LoadCatalog(ctx, b.repo)
	if err != nil {
		return err
	}
	b.prev = map[string]repository.Backup{}
	for _, bk := range cat.All() { // newest first
		if bk.Header == nil {
			continue
		}
		key := vmKey(bk.Header.VM.InstanceUUID, bk.Header.VM.Name)
		if _, ok := b.prev[key]; !ok {
			b.prev[key] = bk
		}
	}
	return nil
}

// indexPrevious adds the chunks of the VM's latest backup to the index and
// returns that backup (nil when none), whose change IDs CBT starts from. A
// manifest that turns out unreadable only costs re-uploading.
func (b *Backuper) indexPrevious(ctx context.Context, info *vsphere.VMInfo, res *Result) (*repository.Manifest, error) {
	if err := b.loadPrevious(ctx); err != nil {
		return nil, err
	}
	b.prevMu.Lock()
	prev, ok := b.prev[vmKey(info.InstanceUUID, info.Name)]
	b.prevMu.Unlock()
	if !ok {
		return nil, nil
	}
	id := prev.ID
	res.Previous = prev.Time
	m, err := b.repo.ReadManifest(ctx, id)
	switch {
	case errors.Is(err, repository.ErrCorruptManifest) || errors.Is(err, repository.ErrManifestNotFound):
		res.Warnings = append(res.Warnings, fmt.Sprintf("previous backup %s unusable (%v): every chunk is checked against storage instead", id, err))
		return nil, nil
	case err != nil:
		return nil, err
	}
	b.index.AddManifest(m)
	return m, nil
}

// lockRun takes the shared lock a Run holds from before it learns which
// chunks exist until its manifests are written, so prune (exclusive) can
// never delete a chunk the run is about to reference. What earlier runs of
// this Backuper learnt is dropped: prune may have run in between.
func (b *Backuper) lockRun(ctx context.Context) (*repository.Lock, error) {
	lock := b.opts.Lock
	if lock == nil {
		lock = func(ctx context.Context, r *repository.Repository) (*repository.Lock, error) {
			return r.LockWithOptions(ctx, repository.LockOptions{Purpose: "backup"})
		}
	}
	l, err := lock(ctx, b.repo)
	if err != nil {
		return nil, fmt.Errorf("lock repository %s for backup: %w", b.repo.Location(), err)
	}
	b.prevMu.Lock()
	b.prev = nil
	b.index = repository.NewIndex()
	b.prevMu.Unlock()
	return l, nil
}

// Tags in our snapshots' descriptions: the repository and the repository
// lock of the run that took the snapshot. The sweep at the start of another
// run spares a snapshot whose run still holds its lock, and a recent one of
// another repository's run, whose locks it cannot see.
const (
	snapshotRepoTag = "repo="
	snapshotLockTag = "lock="
	// foreignSnapshotAge is how old a snapshot of another repository's run
	// must be before it counts as stale: no backup runs that long.
	foreignSnapshotAge = 24 * time.Hour
)

func (b *Backuper) snapshotDescription() string {
	d := "vtpm-backup: temporary snapshot, removed when the backup ends " + snapshotRepoTag + b.repo.Config().ID
	if b.lockID != "" {
		d += " " + snapshotLockTag + b.lockID
	}
	return d
}

// descriptionTag returns the value of "tag=value" in a snapshot description.
func descriptionTag(desc, tag string) string {
	for _, f := range strings.Fields(desc) {
		if v, ok := strings.CutPrefix(f, tag); ok {
			return v
		}
	}
	return ""
}

// sweepSnapshots removes the VM's vtpm-backup-* snapshots left by runs that
// died, sparing those of runs still going: two runs backing up one VM at
// once (a nightly run still going when the next starts, or runs into two
// repositories) must never remove each other's snapshot while it is read.
// It returns ErrBusy when a run of this repository still holds the VM, and
// a warning for another repository's recent snapshot left in place.
func (b *Backuper) sweepSnapshots(ctx context.Context, vm *object.VirtualMachine, vmName string) (swept []string, warnings []string, err error) {
	var (
		locks   []repository.LockInfo
		lockErr error
		loaded  bool
		busy    string
		ourRepo = b.repo.Config().ID
		now     = b.opts.Clock.Now()
	)
	// Decided on the very listing the sweep removes from, with locks read
	// after it: a run's lock predates its snapshot, so a snapshot in the
	// listing has its live lock in the lock listing.
	keep := func(s vsphere.SnapshotInfo) bool {
		repo, lock := descriptionTag(s.Description, snapshotRepoTag), descriptionTag(s.Description, snapshotLockTag)
		if repo != "" && repo != ourRepo {
			if now.Sub(s.Created) < foreignSnapshotAge {
				warnings = append(warnings, fmt.Sprintf("left snapshot %s in place: it belongs to a backup into another repository (%s) taken %s ago", s.Name, repo, now.Sub(s.Created).Round(time.Minute)))
				return true
			}
			return false
		}
		if lock == "" || lock == b.lockID {
			return false
		}
		if !loaded {
			locks, lockErr = b.repo.ListLocks(ctx)
			loaded = true
		}
		if lockErr != nil {
			return true // cannot tell: touch nothing
		}
		// A stale lock is one that expired or, on this host, one whose
		// process is gone (killed): its snapshot is swept at once.
		for _, l := range locks {
			if l.ID == lock && !l.Stale(now) {
				busy = fmt.Sprintf("snapshot %s belongs to a backup that is still running (%s)", s.Name, l.Describe(now))
				return true
			}
		}
		return false
	}
	swept, err = b.client.SweepSnapshots(ctx, vm, SnapshotPrefix, keep)
	switch {
	case err != nil:
		return swept, warnings, fmt.Errorf("VM %s: remove stale %s* snapshots: %w", vmName, SnapshotPrefix, err)
	case lockErr != nil:
		return swept, warnings, fmt.Errorf("VM %s: check whether another run owns its snapshots: %w", vmName, lockErr)
	case busy != "":
		return swept, warnings, fmt.Errorf("%w: VM %s: %s; not touching it", ErrBusy, vmName, busy)
	}
	return swept, warnings, nil
}

func vmKey(instanceUUID, name string) string {
	if instanceUUID != "" {
		return "uuid:" + instanceUUID
	}
	return "name:" + name
}

// BackupVM backs up one VM. It always returns a Result; Result.Err tells
// whether it failed.
func (b *Backuper) BackupVM(ctx context.Context, vm *object.VirtualMachine) *Result {
	res := &Result{VM: vm.Reference().Value, MoRef: vm.Reference().Value, Started: b.opts.Clock.Now().UTC()}
	res.Err = b.backupVM(ctx, vm, res)
	res.Finished = b.opts.Clock.Now().UTC()
	b.events.VMDone(res)
	return res
}

func (b *Backuper) backupVM(ctx context.Context, vm *object.VirtualMachine, res *Result) error {
	j := &vmBackup{b: b, vm: vm, res: res}
	if err := j.inspect(ctx); err != nil {
		return err
	}
	j.captureKeys(ctx)
	if err := j.chooseFiles(); err != nil {
		return err
	}
	if b.opts.DryRun {
		// The real run would fail on a file the layout lists but the
		// datastore lacks; so does the dry run.
		return j.checkFilesExist(ctx)
	}
	prev, err := b.indexPrevious(ctx, j.info, res)
	if err != nil {
		return err
	}
	j.prev = prev
	if err := j.prepareCBT(ctx); err != nil {
		return err
	}
	j.start()
	defer j.p.close()
	defer func() { res.Stats = j.p.stats() }()
	if err := j.copyFiles(ctx, true); err != nil {
		return err
	}
	if err := j.snapshotAndCopyDisks(ctx); err != nil {
		return err
	}
	return j.writeManifest(ctx)
}

// vmBackup is one VM's backup in progress: each step of backupVM records
// what the next ones need.
type vmBackup struct {
	b   *Backuper
	vm  *object.VirtualMachine
	res *Result

	info  *vsphere.VMInfo
	keys  keys.VMKeys
	files []sourceFile
	// skipped are the disks left out; notRegistrable says why the backup
	// could not be registered on a vCenter (see the manifest's fields).
	skipped        []repository.SkippedDisk
	notRegistrable []string
	// id is the backup ID; p stores the files' chunks, stored describes
	// the files copied so far.
	id     string
	p      *pipeline
	stored []repository.File
	// c is the client in the VM's datacenter, with the VM's datastores
	// (vsphere.Client.ForVM): the VM's "[ds] path" names mean its own
	// datastores, whatever datastore of another datacenter has that name.
	c *vsphere.Client
	// prev is the VM's previous backup (nil: none); snap our snapshot and
	// snapDisks its disks by key (snapErr when they could not be read);
	// disks the manifest's disk records (cbt.go).
	prev      *repository.Manifest
	snap      types.ManagedObjectReference
	snapDisks map[int32]vsphere.DiskInfo
	snapErr   error
	disks     []repository.DiskRecord
}

// inspect reads the VM and, for a real run, removes the stale snapshots of
// interrupted runs first (reading the VM again if any went).
func (j *vmBackup) inspect(ctx context.Context) error {
	b, res := j.b, j.res
	c, err := b.client.ForVM(ctx, j.vm)
	if err != nil {
		return err
	}
	j.c = c
	info, err := c.VMInfo(ctx, j.vm)
	if err != nil {
		return err
	}
	j.info = info
	res.VM = info.Name
	if b.opts.DryRun {
		return nil
	}
	b.events.Status(info.Name, "sweeping stale snapshots")
	swept, warnings, err := b.sweepSnapshots(ctx, j.vm, info.Name)
	res.Warnings = append(res.Warnings, warnings...)
	res.SweptSnapshots = swept
	if err != nil {
		return err
	}
	if len(swept) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("removed %d stale snapshot(s) left by an interrupted backup: %s", len(swept), strings.Join(swept, ", ")))
		if j.info, err = c.VMInfo(ctx, j.vm); err != nil {
			return err
		}
	}
	return nil
}

// captureKeys records the VM's keys and their providers. The key IDs come
// from the VM config and are always recorded; a provider listing that
// fails only leaves the providers' types out, with a warning.
func (j *vmBackup) captureKeys(ctx context.Context) {
	res, cfg := j.res, j.info.Raw.Config
	vmKeys, err := keys.Capture(ctx, j.b.client.Vim25(), cfg)
	if err != nil {
		vmKeys = keys.FromVMConfig(cfg)
		res.Warnings = append(res.Warnings, fmt.Sprintf("key providers could not be read (provider types not recorded): %v", err))
	}
	if vmKeys.VMKey != nil {
		if ks, ok := vmKeys.EncryptionExtraConfig["encryption.keySafe"]; ok {
			if err := keys.VerifyKeySafe(*vmKeys.VMKey, ks); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("encryption.keySafe does not match config.keyId: %v", err))
			}
		}
	}
	j.keys = vmKeys
	res.Keys = manifestKeys(vmKeys)
}

// chooseFiles decides which files to copy. A vTPM VM without a .nvram,
// and one with disks this transport cannot capture (unless they are to be
// left out), fail here, before anything is written.
func (j *vmBackup) chooseFiles() error {
	info := j.info
	files, err := selectFiles(info, j.b.opts.IncludeLogs)
	if err != nil {
		return err
	}
	if files, err = j.leaveOutUncapturable(files); err != nil {
		return err
	}
	j.notRegistrable = notRegistrable(info, files)
	for _, f := range files {
		j.res.Files = append(j.res.Files, PlannedFile{Path: f.String(), Type: f.Type, Size: f.Size})
	}
	if info.VTPM && !hasType(files, repository.FileNvram) {
		return fmt.Errorf("%w: VM %s has a virtual TPM but vCenter lists no .nvram file in its home folder %s: the TPM state cannot be backed up; check the VM's files", ErrNoNvram, info.Name, info.HomeFolder())
	}
	if !slices.ContainsFunc(files, sourceFile.isVMX) {
		return fmt.Errorf("%w: vCenter lists no .vmx file for VM %s in its home folder %s: a backup without it has no VM to restore; check the VM's files", ErrNoVMX, info.Name, info.HomeFolder())
	}
	j.files = files
	return nil
}

// missingFile is the error for a file of VM vm that the layout lists and
// the datastore lacks: ErrNoNvram or ErrNoVMX for the files a backup cannot
// do without, vsphere.ErrFileNotFound for the others.
func missingFile(vm string, f sourceFile) error {
	switch {
	case f.Type == repository.FileNvram:
		return fmt.Errorf("%w: VM %s: %s is missing on the datastore: the TPM state cannot be backed up", ErrNoNvram, vm, f)
	case f.isVMX():
		return fmt.Errorf("%w: VM %s: %s is missing on the datastore: a backup without it has no VM to restore", ErrNoVMX, vm, f)
	}
	return fmt.Errorf("VM %s: read %s: %w", vm, f, vsphere.ErrFileNotFound)
}

// checkFilesExist lists the folders of the chosen files (one datastore
// search per folder) and fails, as the copy would, when one is missing. It
// also puts the sizes the datastore reports into the plan: layoutEx may be
// stale.
func (j *vmBackup) checkFilesExist(ctx context.Context) error {
	type folder struct{ ds, dir string }
	listed := map[folder]map[string]int64{}
	for i, f := range j.files {
		d := folder{f.Datastore, f.Dir}
		if _, ok := listed[d]; !ok {
			entries, err := j.c.ListFolder(ctx, f.Datastore, f.Dir)
			if err != nil && !errors.Is(err, vsphere.ErrFileNotFound) {
				return fmt.Errorf("VM %s: list [%s] %s: %w", j.info.Name, f.Datastore, f.Dir, err)
			}
			sizes := map[string]int64{}
			for _, e := range entries {
				sizes[e.Name] = e.Size
			}
			listed[d] = sizes
		}
		size, ok := listed[d][f.Name]
		if !ok {
			return missingFile(j.info.Name, f)
		}
		j.res.Files[i].Size = size
	}
	return nil
}

// start announces the copy and sets up the backup ID and chunk pipeline.
func (j *vmBackup) start() {
	b, name := j.b, j.info.Name
	var total int64
	for _, f := range j.files {
		total += f.Size
	}
	b.events.VMStarted(name, total)
	j.id = repository.NewBackupID(j.res.Started)
	j.p = newPipeline(b.repo, b.index, b.opts.Workers, b.mem, func(n int64) { b.events.Progress(name, n) })
}

// copyFiles stores the home files (home) or the disk extents (!home),
// reading them through the VM's runtime host, which owns the locks of a
// running VM's files.
func (j *vmBackup) copyFiles(ctx context.Context, home bool) error {
	name := j.info.Name
	files := j.c.VMFiles(j.vm)
	for _, f := range j.files {
		if f.Home != home {
			continue
		}
		j.b.events.Status(name, "copying "+f.String())
		var mf repository.File
		var err error
		if !home && f.Disk && f.Type == repository.FileDiskExtent {
			mf, err = j.storeDisk(ctx, files, f)
		} else {
			mf, err = j.b.storeFile(ctx, j.p, j.c, files, f)
		}
		if err != nil {
			if errors.Is(err, vsphere.ErrFileNotFound) {
				return missingFile(name, f)
			}
			return fmt.Errorf("VM %s: %w", name, err)
		}
		j.stored = append(j.stored, mf)
	}
	return nil
}

// snapshotAndCopyDisks takes our snapshot, copies the disks under it and
// removes it: always, on error and Ctrl-C too (with a fresh context).
func (j *vmBackup) snapshotAndCopyDisks(ctx context.Context) (err error) {
	b, vm, name := j.b, j.vm, j.info.Name
	snapName := SnapshotPrefix + j.id
	b.events.Status(name, "creating snapshot "+snapName)
	snap, err := b.client.CreateSnapshot(ctx, vm, snapName, b.snapshotDescription(), b.opts.Quiesce)
	if err != nil {
		// Cancelled while vCenter was still taking it, the snapshot may
		// exist anyway: remove it now rather than at the next run.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, serr := b.client.SweepSnapshots(cctx, vm, snapName, nil); serr != nil {
			err = errors.Join(err, fmt.Errorf("remove the half-created snapshot %s (the next backup of this VM removes it): %w", snapName, serr))
		}
		return fmt.Errorf("VM %s: %w", name, err)
	}
	j.readSnapshotDisks(ctx, snap)
	snapRemoved := false
	defer func() {
		if snapRemoved {
			return
		}
		// A fresh context: the run's may be cancelled (Ctrl-C), and the
		// snapshot must still go.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := b.client.RemoveSnapshot(cctx, vm, snap); rerr != nil {
			err = errors.Join(err, fmt.Errorf("VM %s: remove snapshot %s (the next backup of this VM removes it): %w", name, snapName, rerr))
		}
	}()
	if err := j.copyFiles(ctx, false); err != nil {
		return err
	}
	b.events.Status(name, "removing snapshot "+snapName)
	if rerr := b.client.RemoveSnapshot(ctx, vm, snap); rerr != nil {
		// The copy is complete: a refusal that a second attempt overcomes
		// (a task in progress, a busy host) must not cost the backup.
		snapRemoved = true // the deferred cleanup would only try a third time
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := b.client.RemoveSnapshot(cctx, vm, snap); err != nil {
			return fmt.Errorf("VM %s: remove snapshot %s (the next backup of this VM removes it): %w", name, snapName, errors.Join(rerr, err))
		}
		j.res.Warnings = append(j.res.Warnings, fmt.Sprintf("removing snapshot %s failed once (%v); removed at the second attempt", snapName, rerr))
		return ctx.Err()
	}
	snapRemoved = true
	return nil
}

// writeManifest commits the backup: a backup without its manifest does
// not exist.
func (j *vmBackup) writeManifest(ctx context.Context) error {
	b, info, res := j.b, j.info, j.res
	m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{
		BackupID:    j.id,
		ToolVersion: b.opts.ToolVersion,
		Started:     res.Started,
		Finished:    b.opts.Clock.Now().UTC(),
		ChunkSize:   b.repo.Config().ChunkSize,
		VCenter:     repository.VCenterInfo{Host: info.VCenterHost, InstanceUUID: info.VCenterUUID},
		VM: repository.VMInfo{
			Name:            info.Name,
			InventoryPath:   info.InventoryPath,
			InstanceUUID:    info.InstanceUUID,
			BIOSUUID:        info.UUID,
			MoRef:           info.Ref.Value,
			Host:            info.HostName,
			ResourcePool:    info.PoolPath,
			Folder:          info.FolderPath,
			Datastore:       info.HomeDatastore,
			HomeFolder:      info.HomeDir,
			Firmware:        info.Firmware,
			SecureBoot:      info.SecureBoot,
			HardwareVersion: info.HWVersion,
			VTPM:            info.VTPM,
			Encrypted:       info.KeyID != nil,
			ChangeTracking:  &info.ChangeTracking,
		},
		Keys:             res.Keys,
		Providers:        keys.ManifestProviders(j.keys),
		EncryptionConfig: j.keys.EncryptionExtraConfig,
		SkippedDisks:     j.skipped,
		NotRegistrable:   j.notRegistrable,
		Disks:            j.disks,
	},
		Files:   j.stored,
		Objects: j.p.objects,
	}
	b.events.Status(info.Name, "writing manifest "+j.id)
	if err := b.repo.WriteManifest(ctx, m); err != nil {
		return fmt.Errorf("VM %s: %w", info.Name, err)
	}
	res.BackupID = j.id
	res.Manifest = m
	res.Disks = j.disks
	return nil
}

// storeFile reads f in ranged, chunk-aligned requests that resume at the
// chunk they were reading when the transfer fails.
func (b *Backuper) storeFile(ctx context.Context, p *pipeline, c *vsphere.Client, files *vsphere.Files, f sourceFile) (repository.File, error) {
	src, err := files.Open(ctx, f.Datastore, f.path())
	if err != nil {
		return repository.File{}, openError(f, err)
	}
	return b.storeSource(ctx, p, c, src, f)
}

func openError(f sourceFile, err error) error {
	if f.Type == repository.FileDiskExtent && errors.Is(err, vsphere.ErrFileRefused) {
		return fmt.Errorf("read %s: %w: the VM's host would not serve this disk over the datastore file service; see README, How the data travels", f, err)
	}
	return fmt.Errorf("read %s: %w", f, err)
}

// storeSource stores an opened file whole.
func (b *Backuper) storeSource(ctx context.Context, p *pipeline, c *vsphere.Client, src vsphere.DiskSource, f sourceFile) (repository.File, error) {
	cr := c.NewChunkReader(src, p.chunkSize)
	defer cr.Close()
	size, sum, chunks, err := p.storeChunks(ctx, cr)
	if err != nil {
		return repository.File{}, fmt.Errorf("back up %s: %w", f, err)
	}
	return repository.File{
		Name: f.Name, Datastore: f.Datastore, Dir: f.Dir, Type: f.Type,
		Size: size, SHA256: sum, Chunks: chunks,
	}, nil
}

func hasType(files []sourceFile, typ string) bool {
	for _, f := range files {
		if f.Type == typ {
			return true
		}
	}
	return false
}
