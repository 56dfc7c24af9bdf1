package vsphere_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// esxiInfo is what VMInfo holds for a VM with one user snapshot (delta
// -000001) as real ESXi lays it out: the simulator creates no delta disks.
// Its swap file sits at a path that does not parse, as a swap on a
// datastore with an odd name might.
func esxiInfo() *vsphere.VMInfo {
	f := func(key int32, name, typ string, size int64) types.VirtualMachineFileLayoutExFileInfo {
		return types.VirtualMachineFileLayoutExFileInfo{Key: key, Name: "[ds1] vm1/" + name, Type: typ, Size: size}
	}
	swap := types.VirtualMachineFileLayoutExFileInfo{Key: 10, Name: "swap-ds/vm1-abc.vswp", Type: "swap", Size: 4 << 30}
	return &vsphere.VMInfo{Name: "vm1", Raw: &mo.VirtualMachine{
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
				swap,
				f(11, "vm1-orphan-flat.vmdk", "diskExtent", 1<<20),
				f(12, "vm1.nvram", "nvram", 270000), // listed twice
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

func TestLayout(t *testing.T) {
	home := []vsphere.FileType{vsphere.FileConfig, vsphere.FileExtendedConfig, vsphere.FileNvram, vsphere.FileSnapshotList,
		vsphere.FileSnapshotData, vsphere.FileDiskDescriptor, vsphere.FileDiskExtent}
	tests := []struct {
		name    string
		keep    []vsphere.FileType
		want    []string
		wantErr string
	}{
		{"home and disk chain; the odd swap path is not parsed", home, []string{
			"[ds1] vm1/vm1.vmx config", "[ds1] vm1/vm1.vmxf extendedConfig", "[ds1] vm1/vm1.nvram nvram",
			"[ds1] vm1/vm1.vmsd snapshotList", "[ds1] vm1/vm1-Snapshot1.vmsn snapshotData",
			"[ds1] vm1/vm1.vmdk diskDescriptor disk", "[ds1] vm1/vm1-flat.vmdk diskExtent disk",
			"[ds1] vm1/vm1-000001.vmdk diskDescriptor disk", "[ds1] vm1/vm1-000001-sesparse.vmdk diskExtent disk",
		}, ""},
		{"only the nvram and the log", []vsphere.FileType{vsphere.FileNvram, vsphere.FileLog}, []string{
			"[ds1] vm1/vm1.nvram nvram", "[ds1] vm1/vmware.log log",
		}, ""},
		{"a kept swap file must parse", []vsphere.FileType{vsphere.FileSwap}, nil, `cannot parse datastore path "swap-ds/vm1-abc.vswp"`},
		{"every type", nil, nil, "cannot parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := esxiInfo().Layout(tc.keep...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Layout = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				s := fmt.Sprintf("%s %s", f, f.Type)
				if f.Disk {
					s += " disk"
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("layout\n%q\nwant\n%q", got, tc.want)
			}
		})
	}

	broken := esxiInfo()
	broken.Raw.LayoutEx.Disk[0].Chain[1].FileKey = []int32{6, 99}
	if _, err := broken.Layout(home...); err == nil || !strings.Contains(err.Error(), "unknown layout file 99") {
		t.Errorf("a chain naming a missing file: %v", err)
	}
	if _, err := (&vsphere.VMInfo{Name: "vm1", Raw: &mo.VirtualMachine{}}).Layout(); err == nil {
		t.Error("a VM without layoutEx was accepted")
	}
}
