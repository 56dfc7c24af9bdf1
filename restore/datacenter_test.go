package restore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// Two datacenters, each with a datastore LocalDS_0 and a running VM app01
// at the same path, and a backup client without --datacenter (the
// finder's "please specify a datacenter") or with the other one (the same
// path names the other VM's files). The backup of DC1's app01 survives
// three connection resets and a session ended in the middle of its disk,
// reads only DC1's files, each locked file through the VM's host; the
// restore goes back to DC1, whose cluster has no DRS and whose original
// host is in maintenance mode, onto another host: .nvram and disk byte for
// byte, no snapshot left.
func TestRoundTripTwoDatacenters(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{Datacenters: 2})
	ctx := t.Context()
	decoy := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "app01", Seed: 1, DiskSize: testDiskSize, PowerOn: true})
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "app01", Datacenter: "DC1", Seed: 2, DiskSize: testDiskSize, PowerOn: true})
	if decoy.Datastore != vm.Datastore || decoy.NvramPath != vm.NvramPath || bytes.Equal(decoy.Nvram, vm.Nvram) {
		t.Fatal("the two VMs should have different files at the same datastore paths")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(ctx, storagetest.NewMemory(), repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	wantNvram := sha256.Sum256(vm.Nvram)

	// With --datacenter DC0, the VM of DC1 (named by its reference).
	dc0, err := vsphere.Connect(ctx, vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true, Datacenter: "DC0", KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dc0.Logout(ctx) }()
	res := backup.New(dc0, repo, backup.Options{}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		t.Fatalf("backup of DC1's VM with --datacenter DC0: %v", res.Err)
	}
	checkNvram(t, res.Manifest, wantNvram)

	// Without --datacenter, through resets and an ended session.
	env.Client.SetRetry(vsphere.RetryPolicy{Attempts: 4})
	env.CutAt(vm.Datastore, vm.FlatPath, 2<<20+100, 7<<20, 13<<20+5)
	env.Interrupt(vspheretest.Interrupt{Datastore: vm.Datastore, Path: vm.FlatPath, Offset: 11 << 20, Do: func() { endSessions(t, env) }})
	before := env.Transfers()
	res = backup.New(env.Client, repo, backup.Options{}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		t.Fatalf("backup without --datacenter: %v", res.Err)
	}
	checkNvram(t, res.Manifest, wantNvram)
	if s := env.Transfers(); s.Cuts-before.Cuts != 3 || s.DirectLocked != 0 {
		t.Errorf("backup transfers %+v: want 3 cuts and no locked file through vCenter", s)
	}
	if snaps, err := vm.Client.FindSnapshots(ctx, vm.VM, ""); err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left: %+v, %v", snaps, err)
	}

	// Restore refuses a name taken anywhere in the vCenter; the decoy has
	// done its part.
	if err := env.DeleteVM(ctx, decoy); err != nil {
		t.Fatal(err)
	}
	restoreToDC1(t, env, repo, id, vm, res.BackupID)
}

// restoreToDC1 deletes vm and restores backupID without placement flags:
// back to DC1, whose cluster has DRS off and the original host in
// maintenance mode.
func restoreToDC1(t *testing.T, env *vspheretest.Env, repo *repository.Repository, id *age.X25519Identity, vm *vspheretest.VTPMVM, backupID string) {
	t.Helper()
	ctx := t.Context()
	cluster, err := env.Client.Finder().ClusterComputeResource(ctx, "/DC1/host/DC1_C0")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.SetDRS(ctx, cluster, false); err != nil {
		t.Fatal(err)
	}
	orig, err := env.VMHost(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.DeleteVM(ctx, vm); err != nil {
		t.Fatal(err)
	}
	h, err := vm.Client.FindHost(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	task, err := h.EnterMaintenanceMode(ctx, 0, false, nil)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	repo.SetIdentities([]age.Identity{id})
	m, err := repo.ReadManifest(ctx, backupID)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := restore.Preflight(ctx, env.Client, repo, m, restore.Options{})
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	res, err := restore.Run(ctx, env.Client, repo, plan)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	restored, err := env.Client.FindVM(ctx, res.MoRef)
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, restored)
	if err != nil || info.PoolPath != "/DC1/host/DC1_C0/Resources" || info.HostName == orig || info.HostName == "" {
		t.Fatalf("restored VM: pool %s on host %q (%v); want DC1_C0 on a host other than %s", info.PoolPath, info.HostName, err, orig)
	}
	dc1, err := env.In(ctx, "DC1")
	if err != nil {
		t.Fatal(err)
	}
	nvram, err := env.ReadFileWith(ctx, dc1, vm.Datastore, vm.NvramPath)
	if err != nil || !bytes.Equal(nvram, vm.Nvram) {
		t.Errorf("restored .nvram in DC1 (%d bytes, %v) differs from the original", len(nvram), err)
	}
	disk, err := env.ReadFileWith(ctx, dc1, vm.Datastore, vm.FlatPath)
	if err != nil || sha256.Sum256(disk) != vm.DiskSHA256 {
		t.Errorf("restored disk in DC1 (%d bytes, %v) differs from the original", len(disk), err)
	}
}

func checkNvram(t *testing.T, m *repository.Manifest, want [32]byte) {
	t.Helper()
	nv := m.FileByType(repository.FileNvram)
	if len(nv) != 1 || nv[0].SHA256 != hexSum(want) {
		t.Fatalf("backed-up .nvram %+v: want the DC1 VM's (sha256 %x), not the same path's in DC0", nv, want)
	}
}

func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }
