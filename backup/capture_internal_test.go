package backup

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

func TestUncapturableReason(t *testing.T) {
	flat := vsphere.DiskInfo{Label: "Hard disk 1", FileName: "[ds1] vm/vm.vmdk", Backing: vsphere.BackingFlat, Mode: "persistent"}
	with := func(f func(*vsphere.DiskInfo)) vsphere.DiskInfo {
		d := flat
		f(&d)
		return d
	}
	types := map[string]string{"ds1": "VMFS", "vsanDatastore": "vsan", "vvolDS": "VVOL"}
	tests := []struct {
		name   string
		disk   vsphere.DiskInfo
		extent bool
		want   string // "" when capturable
	}{
		{"a flat disk", flat, true, ""},
		{"a seSparse delta", with(func(d *vsphere.DiskInfo) { d.Backing = vsphere.BackingSeSparse }), true, ""},
		{"no data extent listed", flat, false, "no data extent"},
		{"independent nonpersistent", with(func(d *vsphere.DiskInfo) { d.Mode = "independent_nonpersistent" }), true, "independent disk"},
		{"virtual RDM", with(func(d *vsphere.DiskInfo) { d.Backing, d.RDMCompatibility = vsphere.BackingRDM, "virtualMode" }), true, "raw device mapping (virtualMode)"},
		{"raw disk", with(func(d *vsphere.DiskInfo) { d.Backing = vsphere.BackingRaw }), true, "raw disk"},
		{"vSAN", with(func(d *vsphere.DiskInfo) { d.FileName = "[vsanDatastore] 1234-abcd/vm.vmdk" }), true, "of type vsan"},
		{"vVols", with(func(d *vsphere.DiskInfo) { d.FileName = "[vvolDS] rfc4122.1234/vm.vmdk" }), true, "of type VVOL"},
		{"backing object", with(func(d *vsphere.DiskInfo) { d.BackingObjectID = "52 1c 9e" }), true, "object-backed"},
		{"another backing", with(func(d *vsphere.DiskInfo) { d.Backing = "VirtualDiskLocalPMemBackingInfo" }), true, "VirtualDiskLocalPMemBackingInfo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := uncapturableReason(tc.disk, types, tc.extent)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("reason %q, want one with %q", got, tc.want)
			}
		})
	}
}
