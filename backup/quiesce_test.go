package backup_test

import (
	"testing"

	"github.com/vtpm-backup/vtpm-backup/backup"
)

// --quiesce works for vTPM VMs: they are encrypted, and vSphere quiesces
// only their file systems, never their applications.
func TestQuiescedBackupOfVTPMVM(t *testing.T) {
	f := newFixture(t)
	v := f.vm(t, "q03", 6)
	res := backup.New(f.env.Client, f.repo, backup.Options{Quiesce: true}, nil).BackupVM(t.Context(), v.VM)
	if res.Err != nil {
		t.Fatalf("backup --quiesce of a vTPM VM: %v", res.Err)
	}
	if snaps := f.ourSnapshots(t, v); len(snaps) != 0 {
		t.Errorf("snapshots left: %v", snaps)
	}
}
