package restore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/restore"
)

// A cluster without DRS takes a registration only with a host: restore
// picks one (a connected host outside maintenance mode that mounts the
// datastore), and says so when none can take the VM.
func TestRestoreIntoClusterWithoutDRS(t *testing.T) {
	f := newFixture(t, "nodrs01")
	ctx := t.Context()
	if _, err := f.env.AddCluster(ctx, "NODRS", 2, false); err != nil {
		t.Fatal(err)
	}
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "nodrs01-copy", Pool: "/DC0/host/NODRS/Resources"})
	if err != nil {
		t.Fatalf("restore into a cluster without DRS: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, "nodrs01-copy")
	vm, err := f.env.Client.FindVM(ctx, res.MoRef)
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.env.Client.VMInfo(ctx, vm)
	if err != nil || info.HostName != "NODRS_H0" {
		t.Errorf("restored VM on host %q (%v), want NODRS_H0", info.HostName, err)
	}

	for _, h := range []string{"NODRS_H0", "NODRS_H1"} {
		hs, err := f.env.Client.FindHost(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		task, err := hs.EnterMaintenanceMode(ctx, 0, false, nil)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "nodrs01-b", Pool: "/DC0/host/NODRS/Resources"})
	if !errors.Is(err, restore.ErrBadTarget) || !strings.Contains(err.Error(), "cluster NODRS has DRS off") || !strings.Contains(err.Error(), "--host") {
		t.Fatalf("Preflight with every host in maintenance mode = %v; want ErrBadTarget naming the cluster and --host", err)
	}
}
