package keys_test

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/keys"
)

// TestDiskDescriptorKeySafe adds a disk created encrypted (the simulator
// then writes an encryptionKeys locator into its descriptor, as ESXi does)
// and cross-checks the captured disk key against that locator.
func TestDiskDescriptorKeySafe(t *testing.T) {
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		registerKMIP(ctx, t, c, "kms-a")
		vm, _ := newVTPMVM(ctx, t, c, "enc-disk-vm", "kms-a")
		keyID, err := crypto.NewManagerKmip(c).GenerateKey(ctx, "kms-a")
		if err != nil {
			t.Fatal(err)
		}
		devices, err := vm.Device(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := find.NewFinder(c).Datastore(ctx, "LocalDS_0")
		if err != nil {
			t.Fatal(err)
		}
		scsi := devices.SelectByType((*types.VirtualSCSIController)(nil))
		if len(scsi) == 0 {
			scsi = devices.SelectByType((*types.ParaVirtualSCSIController)(nil))
		}
		disk := devices.CreateDisk(scsi[0].(types.BaseVirtualController), ds.Reference(), "[LocalDS_0] enc-disk-vm/enc-disk-vm_1.vmdk")
		disk.CapacityInKB = 1024
		task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
			&types.VirtualDeviceConfigSpec{
				Operation:     types.VirtualDeviceConfigSpecOperationAdd,
				FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
				Device:        disk,
				Backing: &types.VirtualDeviceConfigSpecBackingSpec{Crypto: &types.CryptoSpecEncrypt{
					CryptoKeyId: types.CryptoKeyId{KeyId: keyID, ProviderId: &types.KeyProviderId{Id: "kms-a"}},
				}},
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			t.Fatalf("add encrypted disk: %v", err)
		}

		k := keys.FromVMConfig(vmConfig(ctx, t, vm))
		var ref keys.KeyRef
		for _, r := range k.DiskKeys {
			if r.KeyID == keyID {
				ref = r
			}
		}
		if ref.KeyID == "" {
			t.Fatalf("DiskKeys = %+v, want key %s", k.DiskKeys, keyID)
		}

		locator := descriptorEncryptionKeys(ctx, t, ds, "enc-disk-vm/enc-disk-vm_1.vmdk")
		if err := keys.VerifyKeySafe(ref, locator); err != nil {
			t.Errorf("VerifyKeySafe(%+v, %q) = %v", ref, locator, err)
		}
	})
}

// descriptorEncryptionKeys downloads a VMDK descriptor and returns its
// encryptionKeys value.
func descriptorEncryptionKeys(ctx context.Context, t *testing.T, ds *object.Datastore, path string) string {
	t.Helper()
	r, _, err := ds.Download(ctx, path, &soap.DefaultDownload)
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "encryptionKeys="); ok {
			return strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("%s has no encryptionKeys", path)
	return ""
}
