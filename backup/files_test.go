package backup

import (
	"fmt"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// esxiLayout is the layout real ESXi reports for a VM with one user
// snapshot (delta -000001) that vtpm-backup has not yet snapshotted: the
// simulator cannot produce delta disks, so the chain is built by hand.
func esxiLayout() *vsphere.VMInfo {
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

func TestSelectFiles(t *testing.T) {
	tests := []struct {
		name string
		logs bool
		want []string
	}{
		{"without logs", false, []string{
			"[ds1] vm1/vm1.vmx config home", "[ds1] vm1/vm1.vmxf config home", "[ds1] vm1/vm1.nvram nvram home",
			"[ds1] vm1/vm1.vmsd snapshot-list home", "[ds1] vm1/vm1-Snapshot1.vmsn snapshot-data home",
			"[ds1] vm1/vm1.vmdk disk-descriptor home", "[ds1] vm1/vm1-flat.vmdk disk-extent disk",
			"[ds1] vm1/vm1-000001.vmdk disk-descriptor home", "[ds1] vm1/vm1-000001-sesparse.vmdk disk-extent disk",
		}},
		{"with logs", true, []string{
			"[ds1] vm1/vm1.vmx config home", "[ds1] vm1/vm1.vmxf config home", "[ds1] vm1/vm1.nvram nvram home",
			"[ds1] vm1/vm1.vmsd snapshot-list home", "[ds1] vm1/vm1-Snapshot1.vmsn snapshot-data home", "[ds1] vm1/vmware.log log home",
			"[ds1] vm1/vm1.vmdk disk-descriptor home", "[ds1] vm1/vm1-flat.vmdk disk-extent disk",
			"[ds1] vm1/vm1-000001.vmdk disk-descriptor home", "[ds1] vm1/vm1-000001-sesparse.vmdk disk-extent disk",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := selectFiles(esxiLayout(), tc.logs)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				where := "disk"
				if f.Home {
					where = "home"
				}
				got = append(got, fmt.Sprintf("%s %s %s", f, f.Type, where))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("selected\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	// Swap and orphan extents are never selected: checked
	// above by their absence. A chain naming a missing file is an error.
	vm := esxiLayout()
	vm.Raw.LayoutEx.Disk[0].Chain[1].FileKey = []int32{6, 99}
	if _, err := selectFiles(vm, false); err == nil {
		t.Fatal("a chain with an unknown file key was accepted")
	}
	if _, err := selectFiles(&vsphere.VMInfo{Name: "vm1", Raw: &mo.VirtualMachine{}}, false); err == nil {
		t.Fatal("a VM without layoutEx was accepted")
	}
}
