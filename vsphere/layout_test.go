package vsphere_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// esxiInfo is vspheretest.ESXiSnapshotLayout with its swap file at a path
// that does not parse, as a swap on a datastore with an odd name might,
// and the nvram listed twice.
func esxiInfo() *vsphere.VMInfo {
	info := vspheretest.ESXiSnapshotLayout()
	files := info.Raw.LayoutEx.File
	files[10].Name = "swap-ds/vm1-abc.vswp"
	info.Raw.LayoutEx.File = append(files, types.VirtualMachineFileLayoutExFileInfo{Key: 12, Name: files[2].Name, Type: "nvram", Size: files[2].Size})
	return info
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
