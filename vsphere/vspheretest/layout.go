package vspheretest

import (
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// ESXiSnapshotLayout is the VMInfo of a VM "vm1" on datastore ds1 with one
// user snapshot (delta -000001), as real ESXi lays it out and before
// vtpm-backup snapshots it: the simulator creates no delta disks, so the
// chain is written by hand. Besides the home files and the disk chain it
// lists a log, a swap file (key 10) and a flat extent in no chain (key
// 11). Each call returns a fresh copy for a test to bend.
func ESXiSnapshotLayout() *vsphere.VMInfo {
	f := func(key int32, name, typ string, size int64) types.VirtualMachineFileLayoutExFileInfo {
		return types.VirtualMachineFileLayoutExFileInfo{Key: key, Name: "[ds1] vm1/" + name, Type: typ, Size: size}
	}
	return &vsphere.VMInfo{Name: "vm1", Raw: &mo.VirtualMachine{
		ManagedEntity: mo.ManagedEntity{Name: "vm1"},
		LayoutEx: &types.VirtualMachineFileLayoutEx{
			File: []types.VirtualMachineFileLayoutExFileInfo{
				f(0, "vm1.vmx", "config", 3000),
				f(1, "vm1.vmxf", "extendedConfig", 200),
				f(2, "vm1.nvram", "nvram", 270000),
				f(3, "vm1.vmsd", "snapshotList", 500),
				f(4, "vm1.vmdk", "diskDescriptor", 600),
				f(5, "vm1-flat.vmdk", "diskExtent", 1<<30),
				f(6, "vm1-000001.vmdk", "diskDescriptor", 400),
				f(7, "vm1-000001-sesparse.vmdk", "diskExtent", 1<<20),
				f(8, "vm1-Snapshot1.vmsn", "snapshotData", 30000),
				f(9, "vmware.log", "log", 100000),
				f(10, "vm1-abc.vswp", "swap", 4<<30),
				f(11, "vm1-orphan-flat.vmdk", "diskExtent", 1<<20),
			},
			Disk: []types.VirtualMachineFileLayoutExDiskLayout{{
				Key: 2000,
				Chain: []types.VirtualMachineFileLayoutExDiskUnit{
					{FileKey: []int32{4, 5}},
					{FileKey: []int32{6, 7}},
				},
			}},
		},
	}}
}
