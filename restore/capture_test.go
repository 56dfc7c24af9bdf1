package restore_test

import (
	"errors"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// newFixtureOpts is newFixtureWith with the backup's options.
func newFixtureOpts(t *testing.T, name string, opts backup.Options, prepare func(*vspheretest.Env, *vspheretest.VTPMVM)) *fixture {
	t.Helper()
	env := simtest.Start(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	be := storagetest.NewFaulty(storagetest.NewMemory())
	repo, err := repository.Init(t.Context(), be, repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: name, Seed: 9, DiskSize: testDiskSize})
	prepare(env, vm)
	res := backup.New(env.Client, repo, opts, nil).BackupVM(t.Context(), vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	repo.SetIdentities([]age.Identity{id})
	return &fixture{env: env, be: be, repo: repo, id: id, vm: vm, m: res.Manifest}
}

// auditRow audits the fixture's VM on its vCenter.
func (f *fixture) auditRow(t *testing.T) audit.VMReport {
	t.Helper()
	rep, err := audit.Run(t.Context(), f.repo, f.env.Client, audit.Options{VMs: []string{f.vm.Name}})
	if err != nil || len(rep.VMs) != 1 {
		t.Fatalf("audit: %+v, %v", rep, err)
	}
	return rep.VMs[0]
}

// A backup that left a disk out restores (the VM comes back without that
// disk's data), and restore and audit both say what is missing.
func TestRestoreWithSkippedDisk(t *testing.T) {
	f := newFixtureOpts(t, "rdm01", backup.Options{SkipUncapturable: true}, func(env *vspheretest.Env, v *vspheretest.VTPMVM) {
		if _, err := env.AddDisk(t.Context(), v, vspheretest.DiskOptions{RDM: types.VirtualDiskCompatibilityModePhysicalMode}); err != nil {
			t.Fatal(err)
		}
	})
	ctx := t.Context()
	if len(f.m.SkippedDisks) != 1 {
		t.Fatalf("skipped disks %+v, want the RDM", f.m.SkippedDisks)
	}
	const want = "left out Hard disk 2"
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "rdm01-copy"})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(plan.Warnings, "\n"); !strings.Contains(w, want) || !strings.Contains(w, "raw device mapping") {
		t.Errorf("plan warnings %q, want %q", w, want)
	}
	res, err := restore.Run(ctx, f.env.Client, f.repo, plan)
	if err != nil {
		t.Fatal(err)
	}
	f.checkRestoredVM(t, f.env, res, "rdm01-copy")
	row := f.auditRow(t)
	if !row.Ready || !strings.Contains(strings.Join(row.Warnings, "\n"), want) {
		t.Errorf("audit: ready %v, reasons %q, warnings %q; want ready with the left-out disk as a warning", row.Ready, row.Reasons, row.Warnings)
	}
}

// A linked clone's backup can be extracted but not registered: restore
// refuses it before writing, and audit, running the same checks, says NOT
// READY for the same reason.
func TestLinkedCloneNotRegistrable(t *testing.T) {
	f := newFixtureOpts(t, "lc02", backup.Options{}, func(env *vspheretest.Env, v *vspheretest.VTPMVM) {
		base, err := env.CreateBaseDisk(t.Context(), v.Datastore, "golden", "golden", make([]byte, 1<<20))
		if err == nil {
			_, err = env.AddDisk(t.Context(), v, vspheretest.DiskOptions{Parent: base})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	ctx := t.Context()
	before := state(t, f.env)
	_, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "lc02-copy"})
	if !errors.Is(err, restore.ErrNotRestorable) || !strings.Contains(err.Error(), "Hard disk 2 is a linked clone") || !strings.Contains(err.Error(), "--to-dir") {
		t.Fatalf("Preflight of a linked clone = %v, want ErrNotRestorable naming the disk and --to-dir", err)
	}
	if after := state(t, f.env); after != before {
		t.Error("a refused restore changed the target")
	}
	row := f.auditRow(t)
	reasons := strings.Join(row.Reasons, "\n")
	if row.Ready || !strings.Contains(reasons, "NOT READY for vCenter restore") || !strings.Contains(reasons, "Hard disk 2 is a linked clone") {
		t.Errorf("audit: ready %v, reasons %q; want NOT READY naming the linked clone", row.Ready, row.Reasons)
	}
	if _, err := toDir(ctx, f.repo, f.m, t.TempDir(), restore.DirOptions{}); err != nil {
		t.Fatalf("--to-dir of the same backup: %v", err)
	}
}
