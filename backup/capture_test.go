package backup_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// addUncapturable gives v one disk of each kind this transport cannot
// capture and returns the labels' reasons as the error must name them.
func addUncapturable(t *testing.T, f *fixture, v *vspheretest.VTPMVM) map[string]string {
	t.Helper()
	ctx := t.Context()
	env := f.env
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.AddDatastore(ctx, "vsanDatastore", info.HostName); err != nil {
		t.Fatal(err)
	}
	if err := env.SetDatastoreType("vsanDatastore", "vsan"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.MakeDirectory(ctx, "vsanDatastore", v.Dir); err != nil {
		t.Fatal(err)
	}
	add := func(o vspheretest.DiskOptions) int32 {
		t.Helper()
		key, err := env.AddDisk(ctx, v, o)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	add(vspheretest.DiskOptions{Mode: types.VirtualDiskModeIndependent_persistent})
	add(vspheretest.DiskOptions{RDM: types.VirtualDiskCompatibilityModePhysicalMode})
	add(vspheretest.DiskOptions{Datastore: "vsanDatastore"})
	if err := env.SetBackingObjectID(v, add(vspheretest.DiskOptions{}), "vvol:5f3a5b9c6d7e4f10-a1b2c3d4e5f60718"); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"Hard disk 2": "an independent disk (independent_persistent)",
		"Hard disk 3": "a raw device mapping (physicalMode)",
		"Hard disk 4": "on datastore vsanDatastore of type vsan",
		"Hard disk 5": "an object-backed disk (backing object vvol:",
	}
}

// snapshotTasks counts the CreateSnapshot tasks the simulator ran.
func snapshotTasks(env *vspheretest.Env) int {
	n := 0
	for _, obj := range env.Model.Map().AllReference("Task") {
		if t, ok := obj.(*simulator.Task); ok && strings.HasPrefix(t.Info.DescriptionId, "VirtualMachine.createSnapshot") {
			n++
		}
	}
	return n
}

// What the datastore file transport cannot capture is refused before the
// snapshot, one line per disk with its reason; --skip-uncapturable backs
// up the rest and records what it left out.
func TestUncapturableDisks(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	v := f.vm(t, "odd01", 3)
	want := addUncapturable(t, f, v)

	res := backup.New(f.env.Client, f.repo, backup.Options{}, nil).BackupVM(ctx, v.VM)
	if !errors.Is(res.Err, backup.ErrUncapturable) {
		t.Fatalf("backup of a VM with uncapturable disks: %v", res.Err)
	}
	lines := strings.Split(res.Err.Error(), "\n")
	if len(lines) != len(want)+2 || !strings.Contains(lines[len(lines)-1], "--skip-uncapturable") {
		t.Errorf("error has %d lines, want one per disk and the remedy:\n%v", len(lines), res.Err)
	}
	for label, reason := range want {
		if !strings.Contains(res.Err.Error(), "\n  "+label+" (") || !strings.Contains(res.Err.Error(), reason) {
			t.Errorf("error lacks %s: %s:\n%v", label, reason, res.Err)
		}
	}
	if strings.Contains(res.Err.Error(), "Hard disk 1 ") {
		t.Errorf("the capturable disk is named:\n%v", res.Err)
	}
	if n := snapshotTasks(f.env); n != 0 {
		t.Errorf("%d snapshots were taken, want none: refuse before the snapshot", n)
	}
	if cat, err := repository.LoadCatalog(ctx, f.repo); err != nil || len(cat.All()) != 0 {
		t.Errorf("catalog: %v, %v; want no backup", cat, err)
	}

	res = backup.New(f.env.Client, f.repo, backup.Options{SkipUncapturable: true}, nil).BackupVM(ctx, v.VM)
	if res.Err != nil {
		t.Fatalf("backup --skip-uncapturable: %v", res.Err)
	}
	m := res.Manifest
	if len(m.SkippedDisks) != len(want) || len(res.Warnings) < len(want) {
		t.Fatalf("skipped %+v, warnings %q; want the %d disks", m.SkippedDisks, res.Warnings, len(want))
	}
	for _, s := range m.SkippedDisks {
		if r, ok := want[s.Label]; !ok || !strings.Contains(s.Reason, r) || s.File == "" {
			t.Errorf("skipped %+v, want %q", s, r)
		}
	}
	for _, file := range m.Files {
		if file.Name != v.Name+".vmdk" && file.Name != v.Name+"-flat.vmdk" && strings.HasSuffix(file.Name, ".vmdk") {
			t.Errorf("the backup holds %s of a disk it left out", file.Name)
		}
	}
	if got := m.FileByType(repository.FileDiskExtent); len(got) != 1 || got[0].Size != v.DiskSize {
		t.Errorf("extents %+v, want the captured disk's", got)
	}
}

// Change tracking files are not disk data: never copied, not even as an
// extent of the disk that has them.
func TestCTKFilesSkipped(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	v := f.vm(t, "cbt01", 4)
	keys, err := vspheretest.DiskKeys(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	ctk, err := f.env.EnableCTK(ctx, v, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	res := backup.New(f.env.Client, f.repo, backup.Options{}, nil).BackupVM(ctx, v.VM)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, file := range res.Manifest.Files {
		if strings.HasSuffix(file.Name, "-ctk.vmdk") {
			t.Errorf("the backup holds the change tracking file %s (%s)", file.Name, ctk)
		}
	}
}

// Linked clones and disks outside the home folder are captured, and the
// manifest says why the backup can be extracted but not registered.
func TestNotRegistrableRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	v := f.vm(t, "lc01", 5)
	base, err := f.env.CreateBaseDisk(ctx, v.Datastore, "golden", "golden", make([]byte, 2<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.AddDisk(ctx, v, vspheretest.DiskOptions{Parent: base}); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Client.MakeDirectory(ctx, v.Datastore, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.AddDisk(ctx, v, vspheretest.DiskOptions{Dir: "data", Name: "lc01-data"}); err != nil {
		t.Fatal(err)
	}
	res := backup.New(f.env.Client, f.repo, backup.Options{}, nil).BackupVM(ctx, v.VM)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	nr := res.Manifest.NotRegistrable
	if len(nr) != 2 || !strings.Contains(nr[0], "Hard disk 2 is a linked clone") || !strings.Contains(nr[0], "[LocalDS_0] golden/golden-flat.vmdk") ||
		!strings.Contains(nr[1], "Hard disk 3 lives outside the home folder") || !strings.Contains(nr[1], "[LocalDS_0] data/lc01-data-flat.vmdk") {
		t.Errorf("not registrable: %q; want the linked clone and the disk outside the home folder", nr)
	}
	if n := len(res.Manifest.FileByType(repository.FileDiskExtent)); n != 4 {
		t.Errorf("%d extents, want 4: every link of every disk", n)
	}
}
