package vspheretest_test

import (
	"bytes"
	"path"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// AddDeltaDisk must leave the VM as ESXi leaves it after a user snapshot:
// layoutEx reports a two-link chain (delta first, base last) and the .vmx
// names the delta.
func TestAddDeltaDisk(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "delta", Seed: 1, DiskSize: 8 << 20})
	data := bytes.Repeat([]byte("changed block "), 1<<16)
	d, err := env.AddDeltaDisk(t.Context(), vm, data)
	if err != nil {
		t.Fatal(err)
	}
	var m mo.VirtualMachine
	if err := vm.VM.Properties(t.Context(), vm.VM.Reference(), []string{"layoutEx"}, &m); err != nil {
		t.Fatal(err)
	}
	names := map[int32]string{}
	for _, f := range m.LayoutEx.File {
		names[f.Key] = path.Base(f.Name)
	}
	if len(m.LayoutEx.Disk) != 1 || len(m.LayoutEx.Disk[0].Chain) != 2 {
		t.Fatalf("disk layout %+v, want one disk with a two-link chain", m.LayoutEx.Disk)
	}
	var chain [][]string
	for _, u := range m.LayoutEx.Disk[0].Chain {
		var link []string
		for _, k := range u.FileKey {
			link = append(link, names[k])
		}
		chain = append(chain, link)
	}
	if chain[0][1] != path.Base(d.DescriptorPath) || chain[1][1] != "delta.vmdk" {
		t.Fatalf("chain %v, want the delta first and the base last", chain)
	}
	vmx, err := env.ReadFile(t.Context(), vm.Datastore, vm.VMXPath)
	if err != nil || !bytes.Contains(vmx, []byte(`scsi0:0.fileName = "delta-000001.vmdk"`)) {
		t.Fatalf("the .vmx does not name the delta: %v\n%s", err, vmx)
	}
	got, err := env.ReadFile(t.Context(), vm.Datastore, d.ExtentPath)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("delta extent: %d bytes, %v", len(got), err)
	}
}
