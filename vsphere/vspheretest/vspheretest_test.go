package vspheretest_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"path"
	"testing"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

func TestCreateVTPMVM(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "web01", DiskSize: 16 << 20, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID == nil || info.KeyID.KeyId == "" || info.KeyID.ProviderId == nil || info.KeyID.ProviderId.Id != vspheretest.DefaultProviderID {
		t.Errorf("keyId = %+v, want a key of %s", info.KeyID, vspheretest.DefaultProviderID)
	}
	if !info.VTPM || info.Firmware != "efi" || info.HWVersion != "vmx-19" || !info.SecureBoot {
		t.Errorf("vTPM=%v firmware=%q version=%q secureBoot=%v", info.VTPM, info.Firmware, info.HWVersion, info.SecureBoot)
	}
	if v.KeyID != info.KeyID.KeyId {
		t.Errorf("fixture KeyID %q != config.keyId %q", v.KeyID, info.KeyID.KeyId)
	}
	rc, size, err := env.Client.Download(ctx, v.Datastore, v.NvramPath, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(v.Nvram)) || !bytes.Equal(got, v.Nvram) || sha256.Sum256(got) != v.NvramSHA256 {
		t.Errorf("nvram over HTTP differs (size %d, want %d)", size, len(v.Nvram))
	}
	layout, err := info.Layout()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("files: %+v", layout)
	t.Logf("vmx:\n%s", v.VMX[:300])
}

// copyHome copies the fixture VM's home files from one env to another (or to
// another folder of the same env), the way a restore uploads them.
func copyHome(t *testing.T, from, to *vspheretest.Env, v *vspheretest.VTPMVM, dir string) {
	t.Helper()
	ctx := t.Context()
	for _, f := range []string{v.VMXPath, v.NvramPath, v.DescriptorPath, v.FlatPath} {
		rc, size, err := from.Client.Download(ctx, v.Datastore, f, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		err = to.Client.Upload(ctx, v.Datastore, path.Join(dir, path.Base(f)), rc, size)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func register(t *testing.T, env *vspheretest.Env, vmx, name string) (*object.VirtualMachine, error) {
	t.Helper()
	ctx := t.Context()
	folder, err := env.Client.FindFolder(ctx, vspheretest.VMFolder)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := env.Client.FindResourcePool(ctx, vspheretest.ResourcePool)
	if err != nil {
		t.Fatal(err)
	}
	return env.Client.RegisterVM(ctx, folder, vmx, name, pool, nil)
}

func TestRegisterParsesVMX(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "app01", DiskSize: 8 << 20, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Restore under a new name into a new folder: the nvram keeps its
	// original file name, as the vmx names it.
	copyHome(t, env, env, v, "app01-restored")
	vm, err := register(t, env, "[LocalDS_0] app01-restored/app01.vmx", "app01-restored")
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID == nil || info.KeyID.KeyId != v.KeyID || info.KeyID.ProviderId.Id != v.ProviderID {
		t.Errorf("keyId = %+v, want %s/%s", info.KeyID, v.ProviderID, v.KeyID)
	}
	if !info.VTPM || info.Firmware != "efi" || info.HWVersion != "vmx-19" || !info.SecureBoot {
		t.Errorf("vTPM=%v firmware=%q version=%q secureBoot=%v", info.VTPM, info.Firmware, info.HWVersion, info.SecureBoot)
	}
	if len(info.Disks) != 1 || info.Disks[0].FileName != "[LocalDS_0] app01-restored/app01.vmdk" || info.Disks[0].CapacityInBytes != 8<<20 {
		t.Errorf("disks = %+v", info.Disks)
	}
	if info.ExtraConfig["nvram"] != "app01.nvram" {
		t.Errorf("extraConfig nvram = %q", info.ExtraConfig["nvram"])
	}
	if ok, _ := env.Client.Exists(ctx, v.Datastore, "app01-restored/app01-restored.nvram"); ok {
		t.Error("registration left a <name>.nvram behind")
	}
	// Like ESXi, layoutEx lists the nvram the vmx names, not the
	// simulator's stand-in <name>.nvram (issue 15 item 4: a backup of the
	// restored VM then failed on a missing app01-restored.nvram).
	nvrams, err := info.Layout(vsphere.FileNvram)
	if err != nil {
		t.Fatal(err)
	}
	if len(nvrams) != 1 || nvrams[0].Dir != "app01-restored" || nvrams[0].Name != "app01.nvram" || nvrams[0].Size != int64(len(v.Nvram)) {
		t.Errorf("layoutEx nvram files = %+v, want app01-restored/app01.nvram of %d bytes", nvrams, len(v.Nvram))
	}
}

func TestRegisterRefusedWithoutKey(t *testing.T) {
	src := simtest.Start(t)
	dst := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
	ctx := t.Context()
	v, err := src.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "dc01", DiskSize: 4 << 20, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	copyHome(t, src, dst, v, "dc01")
	vmx := "[LocalDS_0] dc01/dc01.vmx"
	_, err = register(t, dst, vmx, "dc01")
	if !fault.Is(err, &types.EncryptionKeyRequired{}) || !errors.Is(err, vsphere.ErrKeyRequired) {
		t.Fatalf("register without key: %v, want EncryptionKeyRequired (vsphere.ErrKeyRequired)", err)
	}
	if vms, _ := dst.Client.ListVMs(ctx, ""); len(vms) != 4 {
		t.Errorf("a refused registration left a VM: %d VMs", len(vms))
	}
	if err := dst.RegisterKeyProvider(ctx, v.ProviderID); err != nil {
		t.Fatal(err)
	}
	if _, err := register(t, dst, vmx, "dc01"); !fault.Is(err, &types.EncryptionKeyRequired{}) {
		t.Fatalf("provider without the key: %v", err)
	}
	if err := dst.AddKey(v.KeyID, v.ProviderID); err != nil {
		t.Fatal(err)
	}
	vm, err := register(t, dst, vmx, "dc01")
	if err != nil {
		t.Fatal(err)
	}
	info, err := dst.Client.VMInfo(ctx, vm)
	if err != nil || info.KeyID == nil || info.KeyID.KeyId != v.KeyID || !info.VTPM {
		t.Fatalf("restored VM: %+v, %v", info, err)
	}
}

func TestDiskContent(t *testing.T) {
	data, err := io.ReadAll(vspheretest.NewDiskContent(9, 5*vspheretest.RegionSize+123))
	if err != nil {
		t.Fatal(err)
	}
	r := vspheretest.RegionSize
	region := func(i int) []byte { return data[i*r : min((i+1)*r, len(data))] }
	if !bytes.Equal(region(1), make([]byte, r)) {
		t.Error("region 1 not zero")
	}
	if !bytes.Equal(region(3), region(0)) {
		t.Error("region 3 not a repeat of region 0")
	}
	if bytes.Equal(region(2), region(0)) || bytes.Equal(region(4), region(2)) || len(region(5)) != 123 {
		t.Error("random regions repeat or tail size wrong")
	}
	again, _ := io.ReadAll(vspheretest.NewDiskContent(9, int64(len(data))))
	if !bytes.Equal(again, data) {
		t.Error("not deterministic")
	}
}

func TestHelpers(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "h01", DiskSize: 1 << 20, NvramSize: 8 << 10})
	got, err := env.ReadFile(ctx, v.Datastore, v.NvramPath)
	if err != nil || !bytes.Equal(got, v.Nvram) {
		t.Fatalf("ReadFile: %d bytes, %v", len(got), err)
	}
	vmx, err := env.ReadFile(ctx, v.Datastore, v.VMXPath)
	if err != nil {
		t.Fatal(err)
	}
	kv := vspheretest.ParseVMX(vmx)
	if kv["nvram"] != "h01.nvram" || kv["vtpm.present"] != "TRUE" || kv["encryption.keysafe"] == "" || kv["encryption.data"] == "" {
		t.Errorf("vmx entries: %v", kv)
	}

	env.InjectFault(vspheretest.Fault{Method: "CreateSnapshot_Task", ObjectName: "h01", Count: 1})
	if _, err := env.Client.CreateSnapshot(ctx, v.VM, "s", "", false); !fault.Is(err, &types.InvalidState{}) {
		t.Errorf("injected fault: %v", err)
	}
	if _, err := env.Client.CreateSnapshot(ctx, v.VM, "s", "", false); err != nil {
		t.Errorf("fault injected more than Count times: %v", err)
	}
	env.ClearFaults()

	if err := env.RemoveNvram(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ReadFile(ctx, v.Datastore, v.NvramPath); !errors.Is(err, vsphere.ErrFileNotFound) {
		t.Errorf("nvram after RemoveNvram: %v", err)
	}
	if err := env.DeleteVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.FindVM(ctx, "h01"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("after DeleteVM: %v", err)
	}
}

func TestNativeProvider(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{NativeProviderID: "nkp-prod", NativeHasBackup: false})
	ctx := t.Context()
	m, err := crypto.GetManagerKmip(env.Client.Vim25())
	if err != nil {
		t.Fatal(err)
	}
	native, err := m.IsNativeProvider(ctx, "nkp-prod")
	if err != nil || !native {
		t.Fatalf("nkp-prod native = %v, %v", native, err)
	}
	v, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "nkp01", DiskSize: 1 << 20, ProviderID: "nkp-prod"})
	if err != nil {
		t.Fatal(err)
	}
	if v.ProviderID != "nkp-prod" || v.KeyID == "" {
		t.Errorf("key %s/%s", v.ProviderID, v.KeyID)
	}
}

// DeleteVM returns once the home folder is gone, as vCenter's Destroy_Task
// does; the simulator deletes it in a task of its own, delayed here so that
// returning early would be seen.
func TestDeleteVMWaitsForTheFolder(t *testing.T) {
	simulator.TaskDelay.MethodDelay = map[string]int{"DeleteDatastoreFile": 300}
	t.Cleanup(func() { simulator.TaskDelay.MethodDelay = nil })
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "gone01", DiskSize: 1 << 20})
	if err := env.DeleteVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	if ok, err := env.Client.Exists(ctx, v.Datastore, v.Dir); err != nil || ok {
		t.Fatalf("home folder after DeleteVM: exists %v, %v", ok, err)
	}
}
