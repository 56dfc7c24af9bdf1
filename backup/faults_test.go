package backup_test

import (
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// TestRemoveSnapshotFails: vCenter refuses to remove our snapshot after the
// copy (a task in progress, a busy host, a lost session).
//   - Once: the second attempt removes it, and the complete copy is
//     committed with a warning. Before, one refusal failed the backup
//     though nothing was left behind.
//   - Twice: the run fails without committing, naming the snapshot left
//     and who removes it; the next backup sweeps it, reports it and
//     succeeds, and no snapshot is left.
func TestRemoveSnapshotFails(t *testing.T) {
	tests := []struct {
		name     string
		refusals int
		// committed: the first backup's manifest is written and its
		// snapshot removed.
		committed bool
	}{
		{"once", 1, true},
		{"twice", 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			vm := f.vm(t, "vm-stuck-snapshot", 41)
			f.env.InjectFault(vspheretest.Fault{Method: "RemoveSnapshot_Task", Fault: &types.TaskInProgress{}, Count: tc.refusals})

			res := backup.New(f.env.Client, f.repo, backup.Options{}, nil).BackupVM(t.Context(), vm.VM)
			left := f.ourSnapshots(t, vm)
			if tc.committed {
				if res.Err != nil || len(left) != 0 || len(f.manifests(t)) != 1 {
					t.Fatalf("backup = %v, snapshots left %v, manifests %v: want committed, nothing left", res.Err, left, f.manifests(t))
				}
				if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "removed at the second attempt") {
					t.Fatalf("warnings %q, want the first refusal reported", res.Warnings)
				}
				return
			}
			if len(left) != 1 {
				t.Fatalf("snapshots after the failed removals: %v, want ours left", left)
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), "remove snapshot "+left[0]) ||
				!strings.Contains(res.Err.Error(), "the next backup of this VM removes it") {
				t.Fatalf("backup = %v, want an error naming the snapshot left and who removes it", res.Err)
			}
			if ids := f.manifests(t); len(ids) != 0 {
				t.Fatalf("backup committed %v though its snapshot is left", ids)
			}

			res = backup.New(f.env.Client, f.repo, backup.Options{}, nil).BackupVM(t.Context(), vm.VM)
			if res.Err != nil {
				t.Fatalf("the next backup: %v", res.Err)
			}
			if len(res.SweptSnapshots) != 1 || res.SweptSnapshots[0] != left[0] {
				t.Fatalf("the next backup swept %v, want %s", res.SweptSnapshots, left[0])
			}
			if s := f.ourSnapshots(t, vm); len(s) != 0 {
				t.Fatalf("snapshots after the next backup: %v", s)
			}
			if ids := f.manifests(t); len(ids) != 1 {
				t.Fatalf("manifests %v, want the next backup's", ids)
			}
		})
	}
}
