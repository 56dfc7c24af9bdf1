package backup_test

import (
	"encoding/hex"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// The simulated vCenter behaves like a real one in these tests (see
// vspheretest's doc): a running VM's files are served only by its runtime
// host, connections drop, sessions end.

// runningVM creates a running vTPM VM of 32 MiB; the client retries
// without backoff.
func (f *fixture) runningVM(t *testing.T, name string) *vspheretest.VTPMVM {
	t.Helper()
	vm, err := f.env.CreateVTPMVM(t.Context(), vspheretest.VMOptions{Name: name, Seed: 5, DiskSize: 32 << 20, PowerOn: true})
	if err != nil {
		t.Fatalf("create VM %s: %v", name, err)
	}
	f.env.Client.SetRetry(vsphere.RetryPolicy{Attempts: 4})
	return vm
}

// backupIntact backs vm up and checks that the manifest holds its .nvram and
// disk byte for byte and that no snapshot is left.
func (f *fixture) backupIntact(t *testing.T, vm *vspheretest.VTPMVM) *backup.Result {
	t.Helper()
	res := backup.New(f.env.Client, f.repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(t.Context(), vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	nv, ext := res.Manifest.FileByType(repository.FileNvram), res.Manifest.FileByType(repository.FileDiskExtent)
	if len(nv) != 1 || nv[0].SHA256 != hex.EncodeToString(vm.NvramSHA256[:]) {
		t.Errorf("nvram in the manifest: %+v, want sha256 %x", nv, vm.NvramSHA256)
	}
	if len(ext) != 1 || ext[0].SHA256 != hex.EncodeToString(vm.DiskSHA256[:]) || ext[0].Size != vm.DiskSize {
		t.Errorf("disk in the manifest: %+v, want sha256 %x", ext, vm.DiskSHA256)
	}
	if s := f.ourSnapshots(t, vm); len(s) != 0 {
		t.Errorf("snapshots left: %v", s)
	}
	return res
}

// A running VM's .vmx, .nvram and disk are locked: every file is read
// through its runtime host, none through vCenter. A vMotion in the middle
// of the disk (the connection to the old host drops, which then refuses the
// files) is followed to the new host. Fails before host-routed transfers:
// vCenter refuses the .nvram with 500 "locked".
func TestBackupRunningVMThroughItsHost(t *testing.T) {
	f := newFixture(t)
	vm := f.runningVM(t, "run01")
	ctx := t.Context()
	others, err := f.env.ClusterHosts(ctx, vm)
	if err != nil || len(others) == 0 {
		t.Fatalf("hosts to move to: %v, %v", others, err)
	}
	moved := make(chan error, 1)
	f.env.Interrupt(vspheretest.Interrupt{
		Datastore: vm.Datastore, Path: vm.FlatPath, Offset: 8<<20 + 4096, Cut: true,
		Do: func() { moved <- f.env.Migrate(ctx, vm, others[0]) },
	})
	before := f.env.Transfers()
	f.backupIntact(t, vm)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	s := f.env.Transfers()
	if s.Direct != before.Direct || s.DirectLocked != 0 {
		t.Errorf("%d requests through vCenter (%d for locked files), want none: %+v", s.Direct-before.Direct, s.DirectLocked, s)
	}
	if s.RoutedTo[others[0]] == 0 || s.Cuts != 1 || s.Refused != 1 {
		t.Errorf("stats %+v: want the rest of the disk from %s after one refusal by the old host", s, others[0])
	}
}

// Three connection resets in one disk: the backup resumes each time at the
// chunk it was reading and completes. Fails before ranged, resumable reads.
func TestBackupResumesResetDisk(t *testing.T) {
	f := newFixture(t)
	vm := f.runningVM(t, "reset01")
	f.env.CutAt(vm.Datastore, vm.FlatPath, 5<<20+1, 17<<20, 29<<20+777)
	f.backupIntact(t, vm)
	if s := f.env.Transfers(); s.Cuts != 3 {
		t.Errorf("%d connections cut, want 3", s.Cuts)
	}
}

// vCenter ends the session 8 MiB into the disk (an administrator, or its
// idle timeout during hours of streaming): the transfer goes on, and the
// snapshot is still removed, in a new session. Fails before sessions are
// renewed: RemoveSnapshot fails with NotAuthenticated.
func TestBackupSessionEndedMidDisk(t *testing.T) {
	f := newFixture(t)
	vm := f.runningVM(t, "sess01")
	ctx := t.Context()
	ended := make(chan int, 1)
	f.env.Interrupt(vspheretest.Interrupt{
		Datastore: vm.Datastore, Path: vm.FlatPath, Offset: 8 << 20,
		Do: func() {
			n, err := f.env.EndSessions(ctx)
			if err != nil {
				t.Error(err)
			}
			ended <- n
		},
	})
	f.backupIntact(t, vm)
	if n := <-ended; n == 0 {
		t.Fatal("no session was ended")
	}
	if f.env.Client.SessionRenewals() == 0 {
		t.Error("the client did not log in again")
	}
}
