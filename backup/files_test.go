package backup

import (
	"fmt"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// TestSelectFiles picks from the layout of a VM with one user snapshot that
// vtpm-backup has not yet snapshotted (vspheretest.ESXiSnapshotLayout).
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
			files, err := selectFiles(vspheretest.ESXiSnapshotLayout(), tc.logs)
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
	vm := vspheretest.ESXiSnapshotLayout()
	vm.Raw.LayoutEx.Disk[0].Chain[1].FileKey = []int32{6, 99}
	if _, err := selectFiles(vm, false); err == nil {
		t.Fatal("a chain with an unknown file key was accepted")
	}
	if _, err := selectFiles(&vsphere.VMInfo{Name: "vm1", Raw: &mo.VirtualMachine{}}, false); err == nil {
		t.Fatal("a VM without layoutEx was accepted")
	}
}
