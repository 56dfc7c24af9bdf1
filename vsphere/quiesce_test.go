package vsphere_test

import (
	"testing"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// vSphere does not quiesce applications in encrypted VMs: a quiesced
// snapshot must ask for file-system quiescing only.
func TestQuiescedSnapshotOfEncryptedVM(t *testing.T) {
	env, v := newVM(t, "q01")
	ctx := t.Context()
	task, err := v.VM.CreateSnapshot(ctx, "app-quiesced", "", false, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	if !fault.Is(err, &types.ApplicationQuiesceFault{}) {
		t.Fatalf("a plain quiesced snapshot of an encrypted Windows VM: %v; want ApplicationQuiesceFault, as vCenter answers", err)
	}
	snap, err := env.Client.CreateSnapshot(ctx, v.VM, "fs-quiesced", "", true)
	if err != nil {
		t.Fatalf("CreateSnapshot with quiesce: %v", err)
	}
	if err := env.Client.RemoveSnapshot(ctx, v.VM, snap); err != nil {
		t.Fatal(err)
	}

	plain, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "q02", DiskSize: 1 << 20, NoEncrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	task, err = plain.VM.CreateSnapshot(ctx, "app-quiesced", "", false, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Errorf("a quiesced snapshot of an unencrypted VM: %v", err)
	}
}
