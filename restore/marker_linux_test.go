//go:build linux

package restore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// plantMarker writes a restore marker into [ds] dir as a run of process p
// restoring into folder name would have.
func plantMarker(t *testing.T, f *fixture, dir, name string, p repository.Process) {
	t.Helper()
	data, err := json.Marshal(map[string]any{
		"kind": "vtpm-backup incomplete restore", "backup_id": f.m.BackupID, "name": name,
		"process": p, "started": time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.Client.Upload(t.Context(), vspheretest.Datastore, dir+"/"+restore.MarkerName, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// partialFolder creates [ds] dir with a truncated disk in it, what a
// restore killed during its uploads leaves.
func partialFolder(t *testing.T, f *fixture, dir string) {
	t.Helper()
	if err := f.env.Client.MakeDirectory(t.Context(), vspheretest.Datastore, dir); err != nil {
		t.Fatal(err)
	}
	part := []byte("the first bytes of a disk")
	if err := f.env.Client.Upload(t.Context(), vspheretest.Datastore, dir+"/"+f.vm.Name+"-flat.vmdk", bytes.NewReader(part), int64(len(part))); err != nil {
		t.Fatal(err)
	}
}

// A rerun with the same target name removes the incomplete restore a dead
// run left (files only, or a VM already registered from them) and restores;
// a folder without our marker, with a marker of another folder, or with
// the marker of a run that may still be going is refused and left as is.
func TestRerunRemovesIncompleteRestore(t *testing.T) {
	f := newFixture(t, "marked")
	ctx := t.Context()
	self := f.repo.Host().Self()
	if self.BootID == "" || self.StartTicks == 0 {
		t.Skip("no /proc: this host cannot tell a dead process")
	}
	dead := self
	dead.StartTicks++ // this pid, but another process: gone

	partialFolder(t, f, "r1")
	plantMarker(t, f, "r1", "r1", dead)
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "r1"})
	if err != nil {
		t.Fatalf("rerun over a killed run's files: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, "r1")
	if ok, err := f.env.Client.Exists(ctx, vspheretest.Datastore, "r1/"+restore.MarkerName); err != nil || ok {
		t.Fatalf("marker left in a complete restore: %v, %v", ok, err)
	}

	// Killed after registering, before removing its marker.
	plantMarker(t, f, "r1", "r1", dead)
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "r1"})
	if err != nil {
		t.Fatalf("preflight over a killed run's registered VM: %v", err)
	}
	if plan.Leftover == nil || plan.Leftover.VM == "" || !strings.Contains(plan.Leftover.Gone, "another process") {
		t.Fatalf("leftover %+v, want the registered VM, its run gone", plan.Leftover)
	}
	res2, err := restore.Run(ctx, f.env.Client, f.repo, plan)
	if err != nil {
		t.Fatalf("rerun over a killed run's registered VM: %v", err)
	}
	f.checkRestoredVM(t, f.env, res2, "r1")
	if _, err := f.env.Client.FindVM(ctx, res.MoRef); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("the killed run's VM %s is still registered: %v", res.MoRef, err)
	}

	refused := []struct {
		dir    string
		marker func()
		want   string
	}{
		{"r2", func() {}, "already exists"},
		{"r3", func() { plantMarker(t, f, "r3", "r1", dead) }, "already exists"},
		{"r4", func() { plantMarker(t, f, "r4", "r4", self) }, "may still be running"},
	}
	for _, tc := range refused {
		partialFolder(t, f, tc.dir)
		tc.marker()
		before := state(t, f.env)
		_, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: tc.dir})
		if !errors.Is(err, restore.ErrCollision) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrCollision saying %q", tc.dir, err, tc.want)
		}
		if after := state(t, f.env); after != before {
			t.Errorf("%s: a refused restore changed the target:\nbefore %s\nafter  %s", tc.dir, before, after)
		}
	}
}
