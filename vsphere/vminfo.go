package vsphere

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// vmInfoProperties is everything a backup needs, read in one retrieval so the
// picture is consistent.
var vmInfoProperties = []string{
	"name", "config", "layoutEx", "runtime.host", "runtime.powerState",
	"resourcePool", "parent", "datastore", "snapshot",
}

// VMInfo is a VM's configuration and placement as a backup records it.
type VMInfo struct {
	Name          string
	Ref           types.ManagedObjectReference
	InventoryPath string
	UUID          string // config.uuid (BIOS UUID)
	InstanceUUID  string // config.instanceUuid (vCenter identity)
	Firmware      string // "efi" or "bios"
	HWVersion     string // "vmx-19"
	SecureBoot    bool
	VTPM          bool
	// KeyID is config.keyId: the key encrypting the VM home (nil when not
	// encrypted). A vTPM VM always has one.
	KeyID *types.CryptoKeyId
	// Disks lists the virtual disks with their current backing file and key.
	Disks      []DiskInfo
	PowerState types.VirtualMachinePowerState
	// ChangeTracking is config.changeTrackingEnabled: Changed Block
	// Tracking is on (active from the stun after it was turned on).
	ChangeTracking bool

	HostName      string
	Host          *types.ManagedObjectReference
	PoolPath      string
	Pool          *types.ManagedObjectReference
	FolderPath    string
	VMXPath       string // "[ds] dir/name.vmx"
	HomeDatastore string // "ds"
	HomeDir       string // "dir" (no brackets, no trailing slash)
	Datastores    []types.ManagedObjectReference
	// DatastoreTypes maps the name of each datastore the VM uses to its
	// summary.type (VMFS, NFS, vsan, VVOL, ...).
	DatastoreTypes map[string]string
	// ExtraConfig as key → value strings.
	ExtraConfig map[string]string
	// VCenterUUID and VCenterHost identify where the VM lives.
	VCenterUUID string
	VCenterHost string

	// Raw is the retrieved managed object, for fields not summarized here.
	Raw *mo.VirtualMachine
}

// HomeFolder is "[ds] dir/", the VM home as a datastore path.
func (i *VMInfo) HomeFolder() string {
	return fmt.Sprintf("[%s] %s/", i.HomeDatastore, i.HomeDir)
}

// DiskInfo is one virtual disk.
type DiskInfo struct {
	Key             int32
	Label           string
	CapacityInBytes int64
	// FileName is the current backing ("[ds] dir/name.vmdk", or a
	// "-000001.vmdk" delta after a snapshot on ESXi).
	FileName string
	// Chain is the backing chain from the current file to the base disk.
	Chain []string
	KeyID *types.CryptoKeyId
	// ThinProvisioned reports a thin flat backing.
	ThinProvisioned bool
	// Backing is the kind of the current backing: BackingFlat,
	// BackingSparse, BackingSeSparse, BackingRDM, BackingRaw, or the
	// vSphere type name of another one.
	Backing string
	// Mode is the disk mode (persistent, independent_persistent,
	// independent_nonpersistent, ...); RDMs report theirs too.
	Mode string
	// RDMCompatibility is physicalMode or virtualMode for an RDM.
	RDMCompatibility string
	// BackingObjectID is set for object-backed disks (vSAN, vVols): they
	// have no flat file.
	BackingObjectID string
	// UUID is the virtual disk's UUID (backing uuid), ChangeID its
	// backing's CBT change ID: set on a snapshot's disks once change
	// tracking is active, empty otherwise.
	UUID     string
	ChangeID string
}

// Disk backing kinds of DiskInfo.Backing.
const (
	BackingFlat     = "flat"
	BackingSparse   = "sparse"
	BackingSeSparse = "seSparse"
	BackingRDM      = "rdm"
	BackingRaw      = "raw"
)

// Independent reports an independent disk: snapshots leave it out.
func (d DiskInfo) Independent() bool {
	return strings.HasPrefix(d.Mode, "independent")
}

// Datastore is the datastore of the disk's current backing file.
func (d DiskInfo) Datastore() string {
	var dp object.DatastorePath
	if dp.FromString(d.FileName) {
		return dp.Datastore
	}
	return ""
}

// VMInfo reads the VM in one property retrieval and derives paths and names.
func (c *Client) VMInfo(ctx context.Context, vm *object.VirtualMachine) (*VMInfo, error) {
	var m mo.VirtualMachine
	var err error
	if err = vm.Properties(ctx, vm.Reference(), vmInfoProperties, &m); err != nil {
		return nil, fmt.Errorf("read VM %s: %w", vm.Reference().Value, err)
	}
	if m.Config == nil {
		return nil, fmt.Errorf("read VM %s (%s): no configuration (is it inaccessible?)", m.Name, m.Self.Value)
	}
	info := &VMInfo{
		Name:         m.Name,
		Ref:          m.Self,
		UUID:         m.Config.Uuid,
		InstanceUUID: m.Config.InstanceUuid,
		Firmware:     m.Config.Firmware,
		HWVersion:    m.Config.Version,
		KeyID:        m.Config.KeyId,
		VTPM:         hasVTPM(m.Config.Hardware.Device),
		PowerState:   m.Runtime.PowerState,
		Host:         m.Runtime.Host,
		Pool:         m.ResourcePool,
		VMXPath:      m.Config.Files.VmPathName,
		Datastores:   m.Datastore,
		ExtraConfig:  map[string]string{},
		VCenterUUID:  c.instanceUUID,
		VCenterHost:  c.host,
		Raw:          &m,
	}
	if b := m.Config.BootOptions; b != nil && b.EfiSecureBootEnabled != nil {
		info.SecureBoot = *b.EfiSecureBootEnabled
	}
	for _, o := range m.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov != nil {
			info.ExtraConfig[ov.Key] = fmt.Sprint(ov.Value)
		}
	}
	var dp object.DatastorePath
	if dp.FromString(m.Config.Files.VmPathName) {
		info.HomeDatastore = dp.Datastore
		info.HomeDir = strings.TrimSuffix(path.Dir(dp.Path), "/")
		if strings.HasSuffix(dp.Path, "/") || path.Ext(dp.Path) != ".vmx" {
			info.HomeDir = strings.TrimSuffix(dp.Path, "/")
		}
	}
	if t := m.Config.ChangeTrackingEnabled; t != nil {
		info.ChangeTracking = *t
	}
	info.Disks = disksOf(m.Config.Hardware.Device)
	if info.DatastoreTypes, err = c.datastoreTypes(ctx, m.Datastore); err != nil {
		return nil, fmt.Errorf("read the datastores of VM %s: %w", m.Name, err)
	}

	if p, err := find.InventoryPath(ctx, c.Vim25(), m.Self); err == nil {
		info.InventoryPath = p
		info.FolderPath = path.Dir(p)
	} else {
		return nil, fmt.Errorf("inventory path of VM %s: %w", m.Name, err)
	}
	if m.ResourcePool != nil {
		if p, err := find.InventoryPath(ctx, c.Vim25(), *m.ResourcePool); err == nil {
			info.PoolPath = p
		}
	}
	if m.Runtime.Host != nil {
		var h mo.HostSystem
		if err := vm.Properties(ctx, *m.Runtime.Host, []string{"name"}, &h); err == nil {
			info.HostName = h.Name
		}
	}
	return info, nil
}

// disksOf describes the virtual disks among devices.
func disksOf(devices []types.BaseVirtualDevice) []DiskInfo {
	var out []DiskInfo
	devs := object.VirtualDeviceList(devices)
	for _, d := range devs.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		di := DiskInfo{Key: disk.Key, Label: devs.Name(disk), CapacityInBytes: disk.CapacityInBytes}
		if disk.DeviceInfo != nil {
			di.Label = disk.DeviceInfo.GetDescription().Label
		}
		di.FileName, di.Chain, di.KeyID, di.ThinProvisioned = diskBacking(disk.Backing)
		backingKind(&di, disk.Backing)
		di.UUID, di.ChangeID = diskIdentity(disk.Backing)
		out = append(out, di)
	}
	return out
}

// diskIdentity returns the UUID and CBT change ID of a disk backing.
func diskIdentity(b types.BaseVirtualDeviceBackingInfo) (uuid, changeID string) {
	switch x := b.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		return x.Uuid, x.ChangeId
	case *types.VirtualDiskSparseVer2BackingInfo:
		return x.Uuid, x.ChangeId
	case *types.VirtualDiskSeSparseBackingInfo:
		return x.Uuid, x.ChangeId
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
		return x.Uuid, x.ChangeId
	}
	return "", ""
}

// backingKind fills the backing facts of d that decide whether a disk can
// be copied as files: kind, mode, RDM compatibility, backing object.
func backingKind(d *DiskInfo, b types.BaseVirtualDeviceBackingInfo) {
	if fb, ok := b.(types.BaseVirtualDeviceFileBackingInfo); ok {
		if id := fb.GetVirtualDeviceFileBackingInfo().BackingObjectId; id != nil {
			d.BackingObjectID = *id
		}
	}
	switch x := b.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		d.Backing, d.Mode = BackingFlat, x.DiskMode
	case *types.VirtualDiskSparseVer2BackingInfo:
		d.Backing, d.Mode = BackingSparse, x.DiskMode
	case *types.VirtualDiskSeSparseBackingInfo:
		d.Backing, d.Mode = BackingSeSparse, x.DiskMode
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
		d.Backing, d.Mode, d.RDMCompatibility = BackingRDM, x.DiskMode, x.CompatibilityMode
	case *types.VirtualDiskRawDiskVer2BackingInfo, *types.VirtualDiskPartitionedRawDiskVer2BackingInfo:
		d.Backing = BackingRaw
	case nil:
		d.Backing = "none"
	default:
		d.Backing = strings.TrimPrefix(fmt.Sprintf("%T", b), "*types.")
	}
}

// datastoreTypes reads the name and summary.type of datastores.
func (c *Client) datastoreTypes(ctx context.Context, refs []types.ManagedObjectReference) (map[string]string, error) {
	out := map[string]string{}
	if len(refs) == 0 {
		return out, nil
	}
	var dss []mo.Datastore
	if err := property.DefaultCollector(c.Vim25()).Retrieve(ctx, refs, []string{"name", "summary.type"}, &dss); err != nil {
		return nil, err
	}
	for _, ds := range dss {
		out[ds.Name] = ds.Summary.Type
	}
	return out, nil
}

func diskBacking(b types.BaseVirtualDeviceBackingInfo) (file string, chain []string, key *types.CryptoKeyId, thin bool) {
	first := true
	for b != nil {
		var next types.BaseVirtualDeviceBackingInfo
		var name string
		switch x := b.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			name = x.FileName
			if first {
				key = x.KeyId
				thin = x.ThinProvisioned != nil && *x.ThinProvisioned
			}
			if x.Parent != nil {
				next = x.Parent
			}
		case *types.VirtualDiskSeSparseBackingInfo:
			name = x.FileName
			if first {
				key = x.KeyId
			}
			if x.Parent != nil {
				next = x.Parent
			}
		case *types.VirtualDiskSparseVer2BackingInfo:
			name = x.FileName
			if first {
				key = x.KeyId
			}
			if x.Parent != nil {
				next = x.Parent
			}
		case types.BaseVirtualDeviceFileBackingInfo:
			name = x.GetVirtualDeviceFileBackingInfo().FileName
		}
		if first {
			file = name
			first = false
		}
		if name != "" {
			chain = append(chain, name)
		}
		b = next
	}
	return file, chain, key, thin
}

// RefreshStorageInfo asks vCenter to rescan the VM's files so layoutEx sizes
// are current (the simulator only updates layoutEx on this call).
func (c *Client) RefreshStorageInfo(ctx context.Context, vm *object.VirtualMachine) error {
	if err := vm.RefreshStorageInfo(ctx); err != nil {
		return fmt.Errorf("refresh storage info of %s: %w", vm.Reference().Value, err)
	}
	return nil
}
