package vsphere_test

import (
	"errors"
	"testing"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// cbtSnapshot takes a snapshot and returns it with its one disk.
func cbtSnapshot(t *testing.T, env *vspheretest.Env, v *vspheretest.VTPMVM, name string) (types.ManagedObjectReference, vsphere.DiskInfo) {
	t.Helper()
	ctx := t.Context()
	snap, err := env.Client.CreateSnapshot(ctx, v.VM, name, "", false)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := env.Client.SnapshotDisks(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 1 {
		t.Fatalf("snapshot %s: %d disks, want 1", name, len(disks))
	}
	return snap, disks[0]
}

func removeSnapshot(t *testing.T, env *vspheretest.Env, v *vspheretest.VTPMVM, snap types.ManagedObjectReference) {
	t.Helper()
	if err := env.Client.RemoveSnapshot(t.Context(), v.VM, snap); err != nil {
		t.Fatal(err)
	}
}

func sumAreas(areas []vsphere.DiskArea) int64 {
	var n int64
	for _, a := range areas {
		n += a.Length
	}
	return n
}

// TestChangeTracking follows a disk through the life of CBT as vCenter
// applies it: nothing before the stun that follows enabling it, change IDs
// on snapshots after, changed areas between two change IDs, faults for
// what vCenter refuses.
func TestChangeTracking(t *testing.T) {
	env, v := newVM(t, "cbt-vm")
	ctx := t.Context()
	env.SetCBTWindow(4 << 20) // a 16 MiB disk takes four answers
	keys, err := vspheretest.DiskKeys(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	key := keys[0]

	snap, disk := cbtSnapshot(t, env, v, "before")
	if disk.ChangeID != "" || disk.UUID == "" || disk.CapacityInBytes != 16<<20 || disk.Key != key {
		t.Fatalf("snapshot disk before CBT: %+v", disk)
	}
	if _, err := env.Client.QueryChangedAreas(ctx, v.VM, snap, key, disk.CapacityInBytes, vsphere.AllAreas); !errors.Is(err, vsphere.ErrCBTReset) {
		t.Fatalf("query without CBT: %v, want ErrCBTReset", err)
	}
	removeSnapshot(t, env, v, snap)

	if err := env.Client.EnableChangeTracking(ctx, v.VM); err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil || !info.ChangeTracking {
		t.Fatalf("VMInfo after enabling CBT: %v, ChangeTracking %v", err, info != nil && info.ChangeTracking)
	}
	// The snapshot's stun starts tracking: it carries the first change ID.
	s1, d1 := cbtSnapshot(t, env, v, "s1")
	if d1.ChangeID == "" {
		t.Fatal("snapshot after enabling CBT has no change ID")
	}
	before := env.CBTQueries()
	all, err := env.Client.QueryChangedAreas(ctx, v.VM, s1, key, d1.CapacityInBytes, vsphere.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	if got := sumAreas(all); got != 16<<20 {
		t.Errorf("allocated areas of a fully written disk: %d bytes, want %d", got, 16<<20)
	}
	if q := env.CBTQueries() - before; q != 4 {
		t.Errorf("%d queries for a 16 MiB disk with a 4 MiB window, want 4", q)
	}
	removeSnapshot(t, env, v, s1)

	for _, off := range []int64{1<<20 + 100, 9 << 20} {
		if err := env.WriteDisk(ctx, v, key, off, []byte("changed!")); err != nil {
			t.Fatal(err)
		}
	}
	s2, d2 := cbtSnapshot(t, env, v, "s2")
	if d2.ChangeID == d1.ChangeID || d2.UUID != d1.UUID {
		t.Fatalf("second snapshot: change ID %q (first %q), UUID %q (first %q)", d2.ChangeID, d1.ChangeID, d2.UUID, d1.UUID)
	}
	changed, err := env.Client.QueryChangedAreas(ctx, v.VM, s2, key, d2.CapacityInBytes, d1.ChangeID)
	if err != nil {
		t.Fatal(err)
	}
	want := []vsphere.DiskArea{{Start: 1 << 20, Length: vspheretest.CBTBlockSize}, {Start: 9 << 20, Length: vspheretest.CBTBlockSize}}
	if len(changed) != len(want) || changed[0] != want[0] || changed[1] != want[1] {
		t.Errorf("changed areas since s1: %+v, want %+v", changed, want)
	}
	if none, err := env.Client.QueryChangedAreas(ctx, v.VM, s2, key, d2.CapacityInBytes, d2.ChangeID); err != nil || len(none) != 0 {
		t.Errorf("changes since the snapshot's own change ID: %+v, %v; want none", none, err)
	}

	other := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cbt-other", DiskSize: 1 << 20, Seed: 2})
	otherSnap, _ := cbtSnapshot(t, env, other, "o1")
	defer removeSnapshot(t, env, other, otherSnap)
	tests := []struct {
		name     string
		snap     types.ManagedObjectReference
		key      int32
		changeID string
		reset    bool
		want     types.BaseMethodFault
	}{
		{"snapshot of another VM", otherSnap, key, d1.ChangeID, false, &types.InvalidArgument{}},
		{"device that is no disk", s2, 1, d1.ChangeID, false, &types.InvalidArgument{}},
		{"malformed change ID", s2, key, "no-slash", false, &types.InvalidArgument{}},
		{"change ID of another disk", s2, key, "52 aa bb/3", false, &types.FileFault{}},
		{"CBT reset", s2, key, d1.ChangeID, true, &types.FileFault{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reset {
				env.ResetCBT(v)
			}
			_, err := env.Client.QueryChangedAreas(ctx, v.VM, tt.snap, tt.key, d2.CapacityInBytes, tt.changeID)
			if !fault.Is(err, tt.want) {
				t.Fatalf("err = %v, want %T", err, tt.want)
			}
			if _, isFile := tt.want.(*types.FileFault); isFile != errors.Is(err, vsphere.ErrCBTReset) {
				t.Errorf("errors.Is(err, ErrCBTReset) = %v for %T", !isFile, tt.want)
			}
		})
	}
	removeSnapshot(t, env, v, s2)

	env.InjectCBTFault(&types.NotAuthenticated{}, 1)
	s3, d3 := cbtSnapshot(t, env, v, "s3")
	if _, err := env.Client.QueryChangedAreas(ctx, v.VM, s3, key, d3.CapacityInBytes, d3.ChangeID); err == nil || errors.Is(err, vsphere.ErrCBTReset) {
		t.Errorf("injected fault: %v", err)
	}
	removeSnapshot(t, env, v, s3)
	if err := env.EnableCBT(ctx, v, false); err != nil {
		t.Fatal(err)
	}
	s4, d4 := cbtSnapshot(t, env, v, "s4")
	defer removeSnapshot(t, env, v, s4)
	if d4.ChangeID != "" {
		t.Errorf("snapshot after disabling CBT has change ID %q", d4.ChangeID)
	}
	if _, err := env.Client.QueryChangedAreas(ctx, v.VM, s4, key, d4.CapacityInBytes, vsphere.AllAreas); !errors.Is(err, vsphere.ErrCBTReset) {
		t.Errorf("query after disabling CBT: %v, want ErrCBTReset", err)
	}
}

// TestThinAllocation: a thin disk's allocated areas are what was written.
func TestThinAllocation(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "thin", DiskSize: 8 << 20, Seed: 3, EmptyDisk: true})
	keys, err := vspheretest.DiskKeys(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.EnableCBT(ctx, v, true); err != nil {
		t.Fatal(err)
	}
	if err := env.WriteDisk(ctx, v, keys[0], 3<<20, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	snap, d := cbtSnapshot(t, env, v, "thin")
	defer removeSnapshot(t, env, v, snap)
	areas, err := env.Client.QueryChangedAreas(ctx, v.VM, snap, keys[0], d.CapacityInBytes, vsphere.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	want := vsphere.DiskArea{Start: 3 << 20, Length: 2 * vspheretest.CBTBlockSize}
	if len(areas) != 1 || areas[0] != want {
		t.Errorf("allocated areas: %+v, want %+v", areas, want)
	}
	if n, err := env.AllocatedBytes(v, keys[0]); err != nil || n != want.Length {
		t.Errorf("AllocatedBytes = %d, %v; want %d", n, err, want.Length)
	}
}
