package vspheretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// Defaults of VMOptions.
const (
	DefaultDiskSize  = 64 << 20
	DefaultNvramSize = 128 << 10
	// RegionSize is the granularity of the generated disk content (zero,
	// repeated and random regions), the size of a default backup chunk.
	RegionSize = 4 << 20
)

// VMOptions describes the vTPM VM to create.
type VMOptions struct {
	Name      string
	DiskSize  int64  // bytes, a multiple of 1 MiB; default DefaultDiskSize
	NvramSize int    // bytes; default DefaultNvramSize
	Seed      uint64 // drives nvram and disk content
	// NoEncrypt leaves the VM unencrypted (no key ID): an invalid vTPM VM
	// that real vCenter would not allow, for negative tests.
	NoEncrypt bool
	// ProviderID is the key provider to encrypt with; default: the env's.
	ProviderID string
	// Datacenter is where the VM lives; default Datacenter (DC0). Its
	// pool is that datacenter's cluster's, its datastore LocalDS_0 there.
	Datacenter string
	// Folder is the VM folder path; default the datacenter's VM folder
	// (VMFolder in DC0).
	Folder string
	// PowerOn starts the VM once its files are written, as a VM being
	// backed up usually runs: its files are then locked (see doc.go).
	PowerOn bool
	// EmptyDisk leaves the thin disk unwritten: its flat extent is a
	// sparse file of zeros with no block allocated (Env.WriteDisk then
	// allocates what it writes), instead of the generated content.
	EmptyDisk bool
}

// VTPMVM is a created fixture VM and what tests compare against.
type VTPMVM struct {
	VM   *object.VirtualMachine
	Ref  types.ManagedObjectReference
	Name string
	// Datastore and Dir locate the home folder: "[Datastore] Dir/".
	Datastore string
	Dir       string
	// Paths relative to the datastore.
	VMXPath, NvramPath, DescriptorPath, FlatPath string
	VMX                                          []byte
	Nvram                                        []byte
	NvramSHA256                                  [32]byte
	DiskSize                                     int64
	DiskSHA256                                   [32]byte
	// KeyID is config.keyId.
	KeyID      string
	ProviderID string
	// Client is the env's client in the VM's datacenter, knowing the VM's
	// datastores (vsphere.Client.ForVM): the one for its files.
	Client *vsphere.Client
}

// DatastorePath returns "[ds] p" for a path relative to the datastore.
func (v *VTPMVM) DatastorePath(p string) string { return fmt.Sprintf("[%s] %s", v.Datastore, p) }

// CreateVTPMVM creates an EFI, secure boot, vmx-19 VM with a VirtualTPM and
// one thin disk, encrypts it (create plain, then reconfigure: the simulator
// ignores CryptoSpecEncrypt with a key ID at creation), then uploads
// realistic home contents over the datastore file service: a .vmx text, a
// random .nvram and disk data with zero, repeated and random regions.
func (e *Env) CreateVTPMVM(ctx context.Context, o VMOptions) (*VTPMVM, error) {
	if err := o.setDefaults(e.ProviderID); err != nil {
		return nil, err
	}
	vm, err := e.createVM(ctx, o)
	if err != nil {
		return nil, err
	}
	if !o.NoEncrypt {
		if err := encrypt(ctx, vm, o.ProviderID); err != nil {
			return nil, fmt.Errorf("encrypt VM %s with provider %s: %w", o.Name, o.ProviderID, err)
		}
		e.encrypted(vm.Reference())
	}
	vc, err := e.Client.ForVM(ctx, vm)
	if err != nil {
		return nil, err
	}
	out, err := e.describe(ctx, vc, vm, o)
	if err != nil {
		return nil, err
	}
	out.generateHome(o)
	if err := e.uploadHome(ctx, out, o); err != nil {
		return nil, err
	}
	if o.PowerOn {
		if err := e.PowerOn(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setDefaults fills the blank options and refuses impossible ones.
func (o *VMOptions) setDefaults(envProvider string) error {
	if o.Name == "" {
		return fmt.Errorf("create vTPM VM: a name is required")
	}
	if o.DiskSize == 0 {
		o.DiskSize = DefaultDiskSize
	}
	if o.DiskSize%(1<<20) != 0 {
		return fmt.Errorf("create vTPM VM %s: disk size %d is not a multiple of 1 MiB", o.Name, o.DiskSize)
	}
	if o.NvramSize == 0 {
		o.NvramSize = DefaultNvramSize
	}
	if o.ProviderID == "" {
		o.ProviderID = envProvider
	}
	if !o.NoEncrypt && o.ProviderID == "" {
		return fmt.Errorf("create vTPM VM %s: no key provider on this vCenter", o.Name)
	}
	if o.Datacenter == "" {
		o.Datacenter = Datacenter
	}
	if o.Folder == "" {
		o.Folder = "/" + o.Datacenter + "/vm"
	}
	return nil
}

// createVM creates the (still plain) VM in o.Folder and the fixture's pool.
func (e *Env) createVM(ctx context.Context, o VMOptions) (*object.VirtualMachine, error) {
	folder, err := e.Client.FindFolder(ctx, o.Folder)
	if err != nil {
		return nil, err
	}
	pool, err := e.Client.FindResourcePool(ctx, fmt.Sprintf("/%s/host/%s_C0/Resources", o.Datacenter, o.Datacenter))
	if err != nil {
		return nil, err
	}
	task, err := folder.CreateVM(ctx, vTPMConfigSpec(o), pool, nil)
	if err != nil {
		return nil, fmt.Errorf("create VM %s: %w", o.Name, err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create VM %s: %w", o.Name, err)
	}
	return object.NewVirtualMachine(e.Client.Vim25(), info.Result.(types.ManagedObjectReference)), nil
}

// vTPMConfigSpec is the creation spec of a vTPM VM as the vSphere Client
// makes it: EFI with secure boot, vmx-19, a PVSCSI controller with one thin
// disk, and a VirtualTPM.
func vTPMConfigSpec(o VMOptions) types.VirtualMachineConfigSpec {
	ctrlKey := int32(-100)
	unit := int32(0)
	add := func(d types.BaseVirtualDevice) *types.VirtualDeviceConfigSpec {
		return &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: d}
	}
	disk := add(&types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{
			Key:           -101,
			ControllerKey: ctrlKey,
			UnitNumber:    &unit,
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				DiskMode:        string(types.VirtualDiskModePersistent),
				ThinProvisioned: types.NewBool(true),
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
					FileName: fmt.Sprintf("[%s] %s/%s.vmdk", Datastore, o.Name, o.Name),
				},
			},
		},
		CapacityInBytes: o.DiskSize,
		CapacityInKB:    o.DiskSize / 1024,
	})
	disk.FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
	return types.VirtualMachineConfigSpec{
		Name:     o.Name,
		GuestId:  "windows2019srvNext_64Guest",
		NumCPUs:  2,
		MemoryMB: 4096,
		Version:  "vmx-19",
		Firmware: string(types.GuestOsDescriptorFirmwareTypeEfi),
		BootOptions: &types.VirtualMachineBootOptions{
			EfiSecureBootEnabled: types.NewBool(true),
		},
		Files: &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", Datastore)},
		DeviceChange: []types.BaseVirtualDeviceConfigSpec{
			add(&types.ParaVirtualSCSIController{VirtualSCSIController: types.VirtualSCSIController{
				SharedBus: types.VirtualSCSISharingNoSharing,
				VirtualController: types.VirtualController{
					BusNumber:     0,
					VirtualDevice: types.VirtualDevice{Key: ctrlKey},
				},
			}}),
			disk,
			add(&types.VirtualTPM{VirtualDevice: types.VirtualDevice{Key: -102}}),
		},
	}
}

// encrypt encrypts the VM home with a new key of providerID.
func encrypt(ctx context.Context, vm *object.VirtualMachine, providerID string) error {
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{
		Crypto: &types.CryptoSpecEncrypt{CryptoKeyId: types.CryptoKeyId{
			ProviderId: &types.KeyProviderId{Id: providerID},
		}},
	})
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// describe reads back what vCenter made of the VM: home folder, key and
// file paths.
func (e *Env) describe(ctx context.Context, vc *vsphere.Client, vm *object.VirtualMachine, o VMOptions) (*VTPMVM, error) {
	vi, err := vc.VMInfo(ctx, vm)
	if err != nil {
		return nil, err
	}
	if len(vi.Disks) != 1 {
		return nil, fmt.Errorf("create VM %s: expected 1 disk, got %d", o.Name, len(vi.Disks))
	}
	out := &VTPMVM{
		VM:        vm,
		Ref:       vm.Reference(),
		Name:      o.Name,
		Datastore: vi.HomeDatastore,
		Dir:       vi.HomeDir,
		DiskSize:  o.DiskSize,
		Client:    vc,
	}
	if vi.KeyID != nil {
		out.KeyID = vi.KeyID.KeyId
		if vi.KeyID.ProviderId != nil {
			out.ProviderID = vi.KeyID.ProviderId.Id
		}
	}
	var desc object.DatastorePath
	desc.FromString(vi.Disks[0].FileName)
	out.DescriptorPath = desc.Path
	out.FlatPath = strings.TrimSuffix(desc.Path, ".vmdk") + "-flat.vmdk"
	out.VMXPath = path.Join(out.Dir, o.Name+".vmx")
	out.NvramPath = path.Join(out.Dir, o.Name+".nvram")
	return out, nil
}

// generateHome makes the .nvram (random bytes of o.Seed) and the .vmx text.
func (v *VTPMVM) generateHome(o VMOptions) {
	rng := rand.New(rand.NewChaCha8(seedBytes(o.Seed, "nvram")))
	v.Nvram = make([]byte, o.NvramSize)
	for i := range v.Nvram {
		v.Nvram[i] = byte(rng.Uint32())
	}
	v.NvramSHA256 = sha256.Sum256(v.Nvram)
	v.VMX = VMXText(VMXParams{
		Name: o.Name, Nvram: path.Base(v.NvramPath), Disk: path.Base(v.DescriptorPath),
		KeyID: v.KeyID, ProviderID: v.ProviderID, Seed: o.Seed,
	})
}

// uploadHome writes the .vmx, the .nvram and the disk content of seed over
// the datastore file service, then has vCenter rescan the files (layoutEx
// sizes change only then in the simulator).
func (e *Env) uploadHome(ctx context.Context, v *VTPMVM, o VMOptions) error {
	c := v.Client
	if err := c.Upload(ctx, v.Datastore, v.VMXPath, bytes.NewReader(v.VMX), int64(len(v.VMX))); err != nil {
		return err
	}
	if err := c.Upload(ctx, v.Datastore, v.NvramPath, bytes.NewReader(v.Nvram), int64(len(v.Nvram))); err != nil {
		return err
	}
	h := sha256.New()
	if o.EmptyDisk {
		if err := e.emptyDisk(v); err != nil {
			return err
		}
		if _, err := io.CopyN(h, zeroReader{}, v.DiskSize); err != nil {
			return err
		}
	} else {
		disk := io.TeeReader(NewDiskContent(o.Seed, v.DiskSize), h)
		if err := c.Upload(ctx, v.Datastore, v.FlatPath, disk, v.DiskSize); err != nil {
			return err
		}
	}
	copy(v.DiskSHA256[:], h.Sum(nil))
	return c.RefreshStorageInfo(ctx, v.VM)
}

func seedBytes(seed uint64, purpose string) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "vspheretest/%s/%d", purpose, seed))
}

// VMXParams are the values VMXText writes.
type VMXParams struct {
	Name       string
	Nvram      string // file name of the nvram, relative to the home folder
	Disk       string // descriptor file name of scsi0:0
	KeyID      string // empty: an unencrypted vmx
	ProviderID string
	Seed       uint64
}

// VMXText renders a .vmx like ESXi writes for an encrypted VM, plus the
// plaintext entries the registration emulation parses. Honesty note: on
// real ESXi only .encoding, displayName and encryption.* are plaintext in an
// encrypted VM's vmx; firmware, virtualHW.version, nvram, vtpm.present and
// the disks live inside the encryption.data ciphertext. The fixture keeps
// them in clear (and encryption.data is random bytes) because the simulator
// cannot decrypt; vtpm-backup itself never parses the vmx.
func VMXText(p VMXParams) []byte {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %q\n", k, v) }
	line(".encoding", "UTF-8")
	line("displayName", p.Name)
	if p.KeyID != "" {
		line("encryption.keySafe", KeySafe(p.KeyID, p.ProviderID, p.Seed))
		rng := rand.New(rand.NewChaCha8(seedBytes(p.Seed, "vmx")))
		blob := make([]byte, 3072)
		for i := range blob {
			blob[i] = byte(rng.Uint32())
		}
		line("encryption.data", base64.StdEncoding.EncodeToString(blob))
	}
	b.WriteString("# vspheretest: the entries below are inside encryption.data on real ESXi\n")
	line("config.version", "8")
	line("virtualHW.version", "19")
	line("firmware", "efi")
	line("uefi.secureBoot.enabled", "TRUE")
	line("nvram", p.Nvram)
	line("vtpm.present", "TRUE")
	line("guestOS", "windows2019srvnext-64")
	line("numvcpus", "2")
	line("memSize", "4096")
	line("scsi0.present", "TRUE")
	line("scsi0.virtualDev", "pvscsi")
	line("scsi0:0.present", "TRUE")
	line("scsi0:0.fileName", p.Disk)
	return []byte(b.String())
}

// KeySafe returns an encryption.keySafe value naming keyID of providerID,
// in the VMware key locator syntax ESXi writes.
func KeySafe(keyID, providerID string, seed uint64) string {
	rng := rand.New(rand.NewChaCha8(seedBytes(seed, "keysafe")))
	locked := make([]byte, 96)
	for i := range locked {
		locked[i] = byte(rng.Uint32())
	}
	kl := crypto.KeyLocator{
		Type: crypto.KeyLocatorTypeList,
		List: []*crypto.KeyLocator{{
			Type: crypto.KeyLocatorTypePair,
			Pair: &crypto.KeyLocatorPair{
				Locker: &crypto.KeyLocator{
					Type: crypto.KeyLocatorTypeFQID,
					Indirect: &crypto.KeyLocatorIndirect{
						Type: crypto.KeyLocatorTypeFQID,
						FQID: crypto.KeyLocatorFQIDParams{KeyServerID: providerID, KeyID: keyID},
					},
				},
				CryptoMAC:      "HMAC-SHA-256",
				LockedData:     locked,
				LockedDataSize: len(locked),
			},
		}},
	}
	return kl.String()
}

// NewDiskContent returns a reader of size bytes of deterministic disk data
// for seed: 4 MiB regions that are random, all zero (every 4th region from
// the 2nd) or a copy of region 0 (every 4th from the 4th), the last region
// possibly short. Memory use is one region.
func NewDiskContent(seed uint64, size int64) io.Reader {
	return &diskContent{seed: seed, size: size}
}

type diskContent struct {
	seed   uint64
	size   int64
	off    int64
	region []byte // current region
	first  []byte // region 0, for repeats
	idx    int64  // index of current region
}

func (d *diskContent) Read(p []byte) (int, error) {
	if d.off >= d.size {
		return 0, io.EOF
	}
	idx := d.off / RegionSize
	if d.region == nil || idx != d.idx {
		d.fill(idx)
	}
	n := copy(p, d.region[d.off-idx*RegionSize:])
	if rem := d.size - d.off; int64(n) > rem {
		n = int(rem)
	}
	d.off += int64(n)
	return n, nil
}

func (d *diskContent) fill(idx int64) {
	d.idx = idx
	switch idx % 4 {
	case 1:
		d.region = make([]byte, RegionSize)
	case 3:
		if d.first == nil {
			d.first = d.random(0)
		}
		d.region = d.first
	default:
		d.region = d.random(idx)
		if idx == 0 {
			d.first = d.region
		}
	}
}

func (d *diskContent) random(idx int64) []byte {
	buf := make([]byte, RegionSize)
	rng := rand.New(rand.NewChaCha8(seedBytes(d.seed+uint64(idx)*0x9e3779b97f4a7c15, "disk")))
	for i := 0; i+8 <= len(buf); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	return buf
}
