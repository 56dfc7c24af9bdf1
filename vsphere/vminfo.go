package vsphere

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
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

	HostName      string
	Host          *types.ManagedObjectReference
	PoolPath      string
	Pool          *types.ManagedObjectReference
	FolderPath    string
	VMXPath       string // "[ds] dir/name.vmx"
	HomeDatastore string // "ds"
	HomeDir       string // "dir" (no brackets, no trailing slash)
	Datastores    []types.ManagedObjectReference
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
}

// VMInfo reads the VM in one property retrieval and derives paths and names.
func (c *Client) VMInfo(ctx context.Context, vm *object.VirtualMachine) (*VMInfo, error) {
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), vmInfoProperties, &m); err != nil {
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
	devs := object.VirtualDeviceList(m.Config.Hardware.Device)
	for _, d := range devs.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		di := DiskInfo{Key: disk.Key, Label: devs.Name(disk), CapacityInBytes: disk.CapacityInBytes}
		if disk.DeviceInfo != nil {
			di.Label = disk.DeviceInfo.GetDescription().Label
		}
		di.FileName, di.Chain, di.KeyID, di.ThinProvisioned = diskBacking(disk.Backing)
		info.Disks = append(info.Disks, di)
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
