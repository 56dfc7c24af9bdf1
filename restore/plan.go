package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// maxVMNameLen is vSphere's limit for VM names.
const maxVMNameLen = 80

// Options say where and how to restore. Empty placement fields default to
// the VM's placement at backup time (see Preflight).
type Options struct {
	// Name of the restored VM; default the original name. It also names
	// the new home folder "[Datastore] Name/".
	Name string
	// Datastore for the home folder; default the original one.
	Datastore string
	// Folder is the VM folder (inventory path); default the original
	// folder, else the datacenter's VM folder.
	Folder string
	// Pool is the resource pool (inventory path); default the original
	// pool, else the datacenter's only pool.
	Pool string
	// Host pins the VM to a host; default the original host when the
	// original pool is used and the host exists, else vCenter chooses.
	Host string
	// PowerOn powers the VM on after registration, answering the "moved
	// or copied" question with UUID.
	PowerOn bool
	// UUID answers that question: vsphere.UUIDKeep (default: the restore
	// replaces a lost VM, so it keeps its BIOS UUID and MAC addresses) or
	// vsphere.UUIDNew (a copy running beside the original).
	UUID vsphere.UUIDAction
	// Workers decode chunks in parallel; default DefaultWorkers.
	Workers int
	// Events receives progress; may be nil.
	Events Events
	// Clock times the restore; nil means the repository's clock.
	Clock clock.Clock
}

// PlannedFile is one file a restore writes.
type PlannedFile struct {
	// Name is the file name, kept from the backup.
	Name string
	Type string
	Size int64
	// Target is "[ds] dir/name" on the datastore, or the local path.
	Target string
}

// Plan is the outcome of Preflight: every check passed, and this is what
// Run will do. Its exported fields are for display (dry run, --json).
type Plan struct {
	BackupID string
	SourceVM string
	// Name is the new VM's name and its home folder's name.
	Name      string
	Datastore string
	// HomeFolder is "[ds] Name/".
	HomeFolder string
	// VMXPath is the .vmx to register, "[ds] Name/original.vmx".
	VMXPath   string
	Folder    string
	Pool      string
	Host      string
	Files     []PlannedFile
	TotalSize int64
	FreeSpace int64
	Keys      []keys.KeyStatus
	PowerOn   bool
	UUID      vsphere.UUIDAction
	Warnings  []string
	// Leftover is an incomplete restore of a killed run in the home
	// folder, which Run removes first; nil when the folder is new.
	Leftover *Leftover

	m         *repository.Manifest
	host      repository.Host
	vcenter   string
	placement *vsphere.Placement
	workers   int
	events    Events
	clock     clock.Clock
}

// SpaceMargin is the free space a restore leaves on the datastore besides
// the restored files: the VM's swap file, logs and vSphere's own headroom
// need room too. 1% of the restore plus 256 MiB.
func SpaceMargin(total int64) int64 { return total/100 + 256<<20 }

// Preflight runs every check a restore of m to the vCenter behind c needs,
// in this order, and writes nothing:
//
//  1. the manifest is valid and passes keys.Restorability, the checks
//     audit reports too (one .vmx, every file in the home folder, the
//     .nvram of a vTPM VM, a recorded VM key for an encrypted VM), else
//     ErrNotRestorable;
//  2. every key in the manifest is available on the vCenter (else a
//     *keys.NotAvailableError, which wraps keys.ErrKeyNotAvailable);
//  3. datastore, folder, pool and host exist (ErrBadTarget); no VM with
//     the new name and no home folder "[ds] NAME/" exist (ErrCollision);
//     the hosts the VM may run on can get its Native Key Provider keys: in
//     a cluster, with a TPM 2.0 when the provider requires one
//     (*KeyHostError, which wraps ErrKeyHost);
//  4. the datastore has room for the files plus SpaceMargin (ErrNoSpace);
//  5. the repository's identity decrypts a sample chunk
//     (repository.ErrWrongIdentity, ErrNoIdentity).
func Preflight(ctx context.Context, c *vsphere.Client, repo *repository.Repository, m *repository.Manifest, opts Options) (*Plan, error) {
	p, err := newPlan(c, repo, m, opts)
	if err != nil {
		return nil, err
	}
	ev := p.events

	ev.Status("checking backup " + m.BackupID)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	vmxName, err := p.checkLayout()
	if err != nil {
		return nil, err
	}

	// The keys, before anything else touches the target.
	ev.Status("checking keys on " + p.vcenter)
	if err := p.checkKeys(ctx, c); err != nil {
		return nil, err
	}

	ev.Status("checking placement")
	if err := p.resolvePlacement(ctx, c, opts); err != nil {
		return nil, err
	}
	c = p.placement.Client // the target's datacenter, from here on
	if err := p.checkKeyHosts(ctx, c); err != nil {
		return nil, err
	}
	if err := p.refuseIdentityClash(ctx, c); err != nil {
		return nil, err
	}
	p.planFiles(vmxName)
	if err := p.checkSpace(ctx, c); err != nil {
		return nil, err
	}

	ev.Status("checking the identity")
	if err := checkIdentity(ctx, repo, m); err != nil {
		return nil, err
	}
	return p, nil
}

// newPlan starts the plan of restoring m from opts and their defaults.
func newPlan(c *vsphere.Client, repo *repository.Repository, m *repository.Manifest, opts Options) (*Plan, error) {
	p := &Plan{
		BackupID: m.BackupID,
		SourceVM: m.VM.Name,
		PowerOn:  opts.PowerOn,
		UUID:     opts.UUID,
		m:        m,
		vcenter:  keys.VCenterName(c.Vim25()),
		workers:  opts.Workers,
		events:   opts.Events,
		clock:    opts.Clock,
		host:     repo.Host(),
	}
	if p.UUID == "" {
		p.UUID = vsphere.UUIDKeep
	}
	if p.UUID != vsphere.UUIDKeep && p.UUID != vsphere.UUIDNew {
		return nil, fmt.Errorf("%w: uuid action %q: use keep or new", ErrBadTarget, p.UUID)
	}
	if p.events == nil {
		p.events = NopEvents{}
	}
	if p.clock == nil {
		p.clock = repo.Clock()
	}
	return p, nil
}

// checkKeys asks the vCenter about every key of the backup (one
// QueryCryptoKeyStatus call) and refuses unless all are available.
func (p *Plan) checkKeys(ctx context.Context, c *vsphere.Client) error {
	m := p.m
	vk := keys.FromManifest(m) // a missing VM key was refused by checkLayout
	refs := vk.Refs()
	if len(refs) == 0 {
		return nil
	}
	statuses, err := keys.Check(ctx, c.Vim25(), refs, vk.Providers)
	if err != nil {
		return fmt.Errorf("check the keys of backup %s on %s: %w", m.BackupID, p.vcenter, err)
	}
	p.Keys = statuses
	note := keys.ProvidersFromBackupNote(statuses, p.vcenter)
	if err := keys.AvailabilityError(p.vcenter, statuses); err != nil {
		if note != "" {
			return fmt.Errorf("%w\n(%s)", err, note)
		}
		return err
	}
	if note != "" {
		p.Warnings = append(p.Warnings, note)
	}
	return nil
}

// planFiles names the target of every file: the original name in the new
// home folder.
func (p *Plan) planFiles(vmxName string) {
	p.VMXPath = fmt.Sprintf("[%s] %s/%s", p.Datastore, p.Name, vmxName)
	for _, f := range p.m.Files {
		p.Files = append(p.Files, PlannedFile{
			Name: f.Name, Type: f.Type, Size: f.Size,
			Target: fmt.Sprintf("[%s] %s/%s", p.Datastore, p.Name, f.Name),
		})
		p.TotalSize += f.Size
	}
}

// checkSpace refuses a datastore that is not accessible or lacks room for
// the files plus SpaceMargin.
func (p *Plan) checkSpace(ctx context.Context, c *vsphere.Client) error {
	space, err := c.DatastoreSpace(ctx, p.Datastore)
	if err != nil {
		return err
	}
	p.FreeSpace = space.FreeSpace
	if !space.Accessible {
		return fmt.Errorf("%w: datastore %s is not accessible on %s: pass --datastore with another one", ErrBadTarget, p.Datastore, p.vcenter)
	}
	if need := p.TotalSize + SpaceMargin(p.TotalSize); space.FreeSpace < need {
		return fmt.Errorf("%w: datastore %s has %s free, the restore needs %s (%s of files + %s margin): free space there or pass --datastore",
			ErrNoSpace, p.Datastore, humanize.IBytes(uint64(space.FreeSpace)), humanize.IBytes(uint64(need)), humanize.IBytes(uint64(p.TotalSize)), humanize.IBytes(uint64(SpaceMargin(p.TotalSize))))
	}
	return nil
}

// checkLayout returns the .vmx file name and refuses backups a vCenter
// restore cannot reproduce, by the checks audit runs too
// (keys.Restorability); its warnings go into the plan.
func (p *Plan) checkLayout() (string, error) {
	r := keys.Restorability(p.m)
	if len(r.Problems) > 0 {
		return "", fmt.Errorf("%w: %s", ErrNotRestorable, strings.Join(r.Problems, "; "))
	}
	p.Warnings = append(p.Warnings, r.Warnings...)
	return r.VMX, nil
}

// resolvePlacement names the new VM and resolves its placement on the
// vCenter in one call (vsphere.ResolvePlacement), then refuses what
// restore never does: overwrite a VM or a home folder.
func (p *Plan) resolvePlacement(ctx context.Context, c *vsphere.Client, opts Options) error {
	m := p.m
	p.Name = opts.Name
	if p.Name == "" {
		p.Name = m.VM.Name
	}
	if err := validName(p.Name); err != nil {
		return err
	}
	pl, err := c.ResolvePlacement(ctx, vsphere.PlacementRequest{
		Name: p.Name, Datastore: opts.Datastore, Folder: opts.Folder, Pool: opts.Pool, Host: opts.Host,
		Original: vsphere.OriginalPlacement{
			Name: m.VM.Name, Datastore: m.VM.Datastore, Folder: m.VM.Folder, Pool: m.VM.ResourcePool, Host: m.VM.Host,
		},
	})
	var pe *vsphere.PlacementError
	if errors.As(err, &pe) {
		return placementError(pe, p.vcenter)
	}
	if err != nil {
		return err
	}
	p.placement = pl
	p.Datastore, p.HomeFolder, p.Folder, p.Pool = pl.Datastore, pl.HomeFolder, pl.Folder.InventoryPath, pl.Pool.InventoryPath
	if pl.Host != nil {
		p.Host = pl.Host.InventoryPath
	}
	p.Warnings = append(p.Warnings, pl.Warnings...)
	return p.refuseCollisions(ctx, c)
}

// refuseCollisions: never overwrite, neither a VM of that name nor its home
// folder, unless both are an incomplete restore a killed run left (its
// marker in the folder, see findLeftover): Run then removes that first.
func (p *Plan) refuseCollisions(ctx context.Context, c *vsphere.Client) error {
	pl := p.placement
	if pl.HomeExists {
		lo, err := p.findLeftover(ctx, c)
		if err != nil {
			return err
		}
		if lo != nil {
			p.Leftover = lo
			return nil
		}
	}
	switch n := len(pl.NameTaken); {
	case n == 1:
		vm := pl.NameTaken[0]
		return fmt.Errorf("%w: a VM named %q already exists on %s (%s, %s): restore never replaces a VM; pass --name NEW to restore beside it",
			ErrCollision, p.Name, p.vcenter, vm.InventoryPath, vm.MoRef)
	case n > 1:
		return fmt.Errorf("%w: several VMs named %q exist on %s: pass --name NEW", ErrCollision, p.Name, p.vcenter)
	}
	if pl.HomeExists {
		return fmt.Errorf("%w: the home folder %s already exists (files of another or an unregistered VM?): restore never writes into an existing folder; pass --name NEW (the folder is named after the VM) or --datastore",
			ErrCollision, p.HomeFolder)
	}
	return nil
}

// refuseIdentityClash refuses to power on, with --uuid keep ("moved"), a
// restored VM while a VM with its BIOS UUID runs: both would then run with
// the same BIOS UUID and MAC addresses, on the same networks. Restoring
// such a VM without powering it on, powering it on as a copy (--uuid new),
// or as the replacement of an original that is gone or powered off is fine.
func (p *Plan) refuseIdentityClash(ctx context.Context, c *vsphere.Client) error {
	if !p.PowerOn || p.UUID != vsphere.UUIDKeep {
		return nil
	}
	m := p.m
	holders, err := p.uuidHolders(ctx, c)
	if err != nil {
		return err
	}
	for _, h := range holders {
		if h.PowerState == types.VirtualMachinePowerStatePoweredOff {
			p.Warnings = append(p.Warnings, fmt.Sprintf("VM %s (%s) on %s has the same BIOS UUID and MAC addresses as the restored VM will have: it is powered off; do not power it on while the restored VM runs",
				h.Name, h.MoRef, p.vcenter))
			continue
		}
		return fmt.Errorf("%w: VM %s (%s) on %s is %s with BIOS UUID %s, the one backup %s of %s restores with --uuid keep: powering the restore on beside it would run two VMs with the same BIOS UUID and MAC addresses on the same networks; pass --uuid new for a copy, power %s off first if the restore replaces it, or leave out --power-on",
			ErrIdentityInUse, h.Name, h.MoRef, p.vcenter, h.PowerState, orUnknown(m.VM.BIOSUUID), m.BackupID, m.VM.Name, h.Name)
	}
	return nil
}

// uuidHolders finds the VMs that share the backup's BIOS UUID; a manifest
// that did not record it falls back to a VM of the original name.
func (p *Plan) uuidHolders(ctx context.Context, c *vsphere.Client) ([]vsphere.UUIDHolder, error) {
	m := p.m
	if m.VM.BIOSUUID != "" {
		holders, err := c.VMsByBIOSUUID(ctx, m.VM.BIOSUUID)
		if err != nil {
			return nil, fmt.Errorf("look for VMs with the BIOS UUID of backup %s on %s: %w", m.BackupID, p.vcenter, err)
		}
		return holders, nil
	}
	vm, err := c.FindVM(ctx, m.VM.Name)
	switch {
	case errors.Is(err, vsphere.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look for the original VM %s on %s: %w", m.VM.Name, p.vcenter, err)
	}
	info, err := c.VMInfo(ctx, vm)
	if err != nil {
		return nil, fmt.Errorf("read the original VM %s on %s: %w", m.VM.Name, p.vcenter, err)
	}
	return []vsphere.UUIDHolder{{Name: info.Name, MoRef: info.Ref.Value, PowerState: info.PowerState}}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}

// placementFlags are the restore options that name each placement item.
var placementFlags = map[vsphere.PlacementItem]string{
	vsphere.PlacementDatastore: "--datastore",
	vsphere.PlacementFolder:    "--folder",
	vsphere.PlacementPool:      "--pool",
	vsphere.PlacementHost:      "--host",
	// Any absolute --folder or --pool names the datacenter too.
	vsphere.PlacementDatacenter: "--datacenter",
}

// placementError turns the missing placement items into one ErrBadTarget
// naming each item and the flag that fixes it.
func placementError(pe *vsphere.PlacementError, vcenter string) error {
	msgs := make([]string, 0, len(pe.Missing))
	for _, it := range pe.Missing {
		flag := placementFlags[it.Item]
		switch {
		case it.Requested:
			msgs = append(msgs, fmt.Sprintf("%s %q does not exist on %s: check %s", it.Item, it.Name, vcenter, flag))
		case it.Default != nil && it.Name == "":
			msgs = append(msgs, fmt.Sprintf("no %s on %s can take the VM: %v: pass %s", it.Item, vcenter, it.Default, flag))
		case it.Default != nil:
			msgs = append(msgs, fmt.Sprintf("the original %s %s does not exist on %s and %v: pass %s", it.Item, it.Name, vcenter, it.Default, flag))
		default:
			msgs = append(msgs, fmt.Sprintf("the original %s %q does not exist on %s: pass %s", it.Item, it.Name, vcenter, flag))
		}
	}
	return fmt.Errorf("%w: %s", ErrBadTarget, strings.Join(msgs, "; "))
}

// validName checks a new VM name: it names a datastore folder too.
func validName(name string) error {
	switch {
	case name == "", strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: VM name %q: empty or with leading/trailing spaces", ErrBadTarget, name)
	case len(name) > maxVMNameLen:
		return fmt.Errorf("%w: VM name %q: longer than %d characters", ErrBadTarget, name, maxVMNameLen)
	case strings.ContainsAny(name, "/\\[]%\x00"), name == "." || name == "..":
		// The message ends with the name "..", not with punctuation.
		return fmt.Errorf("%w: VM name %q: it also names the home folder, so it may not contain / \\ [ ] %% or be . or ..", ErrBadTarget, name) //nolint:staticcheck // ST1005: see above
	}
	return nil
}

// checkIdentity decrypts one stored chunk, so a wrong identity fails before
// the first upload rather than after half of it. The smallest file's first
// stored chunk keeps the check cheap.
func checkIdentity(ctx context.Context, repo *repository.Repository, m *repository.Manifest) error {
	var sample string
	var sampleSize int64 = -1
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if c == repository.ZeroChunk {
				continue
			}
			if sampleSize < 0 || m.Objects[c].StoredSize < sampleSize {
				sample, sampleSize = c, m.Objects[c].StoredSize
			}
			break
		}
	}
	if sample == "" {
		return nil // nothing stored: every file is empty or zeros
	}
	id, err := repository.ParseChunkID(sample)
	if err != nil {
		return err
	}
	so := m.Objects[sample]
	cr := repo.NewChunkReader()
	defer cr.Close()
	if _, err := cr.Read(ctx, id, &so, nil); err != nil {
		return fmt.Errorf("identity check on backup %s: %w", m.BackupID, err)
	}
	return nil
}
