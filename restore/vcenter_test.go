package restore_test

import (
	"context"
	"errors"
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

// The simulated vCenter behaves like a real one here (see vspheretest's
// doc): a running VM's files are served only by its runtime host,
// connections drop, sessions end, VMs move.

// TestRoundTripRealVCenter backs up a running vTPM VM while its disk
// transfer is reset three times, the VM moves to another host and vCenter
// ends the session, then restores it with the session ended again in the
// middle of the disk upload: the .nvram and the disk come back byte for
// byte, every transfer of a locked file went through the VM's host, the
// uploads through the host the VM is registered on, and no snapshot is
// left.
func TestRoundTripRealVCenter(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(ctx, storagetest.NewMemory(), repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "real01", Seed: 11, DiskSize: testDiskSize, PowerOn: true})
	env.Client.SetRetry(vsphere.RetryPolicy{Attempts: 4})
	others, err := env.ClusterHosts(ctx, vm)
	if err != nil || len(others) == 0 {
		t.Fatalf("hosts to move to: %v, %v", others, err)
	}
	env.CutAt(vm.Datastore, vm.FlatPath, 2<<20+100, 7<<20, 13<<20+5)
	env.Interrupt(vspheretest.Interrupt{Datastore: vm.Datastore, Path: vm.FlatPath, Offset: 9 << 20, Cut: true, Do: func() {
		if err := env.Migrate(ctx, vm, others[0]); err != nil {
			t.Error(err)
		}
	}})
	env.Interrupt(vspheretest.Interrupt{Datastore: vm.Datastore, Path: vm.FlatPath, Offset: 11 << 20, Do: func() { endSessions(t, env) }})

	res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	if snaps, err := env.Client.FindSnapshots(ctx, vm.VM, ""); err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left: %+v, %v", snaps, err)
	}
	if s := env.Transfers(); s.Cuts != 4 || s.DirectLocked != 0 || s.RoutedTo[others[0]] == 0 {
		t.Fatalf("backup transfers %+v: want 4 cuts, the disk's end from %s, no locked file through vCenter", s, others[0])
	}

	if err := env.DeleteVM(ctx, vm); err != nil {
		t.Fatal(err)
	}
	repo.SetIdentities([]age.Identity{id})
	m, err := repo.ReadManifest(ctx, res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, repo: repo, id: id, vm: vm, m: m}
	env.Interrupt(vspheretest.Interrupt{Datastore: vm.Datastore, Path: vm.Name + "/" + vm.Name + "-flat.vmdk", Offset: 6 << 20, Do: func() { endSessions(t, env) }})
	before := env.Transfers()
	rres, err := f.restoreTo(t, ctx, env, restore.Options{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	after := env.Transfers()
	// The files and the restore marker (restore.MarkerName).
	if after.Direct != before.Direct || after.Routed-before.Routed != int64(len(m.Files))+1 {
		t.Errorf("restore transfers: %d direct, %d routed; want the %d files and the marker through the host", after.Direct-before.Direct, after.Routed-before.Routed, len(m.Files))
	}
	f.checkRestoredVM(t, env, rres, vm.Name)
	if env.Client.SessionRenewals() < 2 {
		t.Errorf("%d session renewals, want one in the backup and one in the restore", env.Client.SessionRenewals())
	}
}

// endSessions ends the client's session, as vCenter does after 30 to 60
// idle minutes.
func endSessions(t *testing.T, env *vspheretest.Env) {
	t.Helper()
	n, err := env.EndSessions(context.WithoutCancel(t.Context()))
	if err != nil || n == 0 {
		t.Errorf("EndSessions = %d, %v", n, err)
	}
}

// A restore cancelled (Ctrl-C) in the middle of the disk upload, after
// vCenter ended its session: it still deletes everything it wrote, in a new
// session. Fails before sessions are renewed: the cleanup's deletions fail
// with NotAuthenticated and the folder stays.
func TestCancelledRestoreSessionEnded(t *testing.T) {
	f := newFixture(t, "gone01")
	before := state(t, f.env)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	target := "gone01-copy/" + f.vm.Name + "-flat.vmdk"
	f.env.Interrupt(vspheretest.Interrupt{Datastore: f.vm.Datastore, Path: target, Offset: 5 << 20, Do: func() {
		endSessions(t, f.env)
		cancel()
	}})
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "gone01-copy"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := restore.Run(ctx, f.env.Client, f.repo, plan)
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Run = %+v, %v; want it cancelled", res, err)
	}
	t.Logf("error: %v", err)
	if after := state(t, f.env); after != before {
		t.Fatalf("the cancelled restore left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if f.env.Client.SessionRenewals() == 0 {
		t.Error("the client did not log in again")
	}
}
