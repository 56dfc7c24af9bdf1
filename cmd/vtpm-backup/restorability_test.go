package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// Audit and restore run one list of restorability checks
// (keys.Restorability): for a backup restore refuses, audit says NOT READY
// with the very same reason, and both exit 3. Issue 15 item 2: audit said
// READY, also with --read-data --identity, for a backup without .vmx that
// restore --dry-run refused.
func TestAuditAndRestoreAgreeOnRestorability(t *testing.T) {
	f := newRestoreFixture(t, "agree")
	repo := openLocal(t, f.repo)
	repo.SetWriterKey(initWriterKey(t, repo))
	b, ok := mustCatalog(t, repo).Latest("agree")
	if !ok {
		t.Fatal("no backup of agree")
	}
	orig, err := repo.ReadManifest(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for _, tc := range []struct {
		name   string
		damage func(m *repository.Manifest)
	}{
		// What an older version wrote for a VM whose .vmx was gone.
		{"no .vmx", func(m *repository.Manifest) {
			m.Files = slices.DeleteFunc(m.Files, keys.IsVMX)
		}},
		{"disk outside the home folder", func(m *repository.Manifest) {
			for i := range m.Files {
				if m.Files[i].Type == repository.FileDiskExtent {
					m.Files[i].Dir = "agree-disks"
				}
			}
		}},
		{"no VM key recorded", func(m *repository.Manifest) { m.Keys = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *orig
			m.Files = slices.Clone(orig.Files)
			tc.damage(&m)
			at = at.Add(time.Second)
			m.BackupID = repository.NewBackupID(at)
			m.Finished = at
			if err := repo.WriteManifest(t.Context(), &m); err != nil {
				t.Fatal(err)
			}
			problems := keys.Restorability(&m).Problems
			if len(problems) != 1 {
				t.Fatalf("Restorability = %q, want one problem", problems)
			}
			want := problems[0]

			stdout, stderr, code := cli(t, append(append([]string{"--json", "--identity", f.identity}, f.args(f.env)...), "audit", "agree", "--read-data")...)
			vms := ofType(jsonLines(t, stdout), "audit_vm")
			if code != exitNotReady || len(vms) != 1 || vms[0]["restorable"] != false {
				t.Fatalf("audit: exit %d, %v, %s; want 3 and not restorable", code, vms, stderr)
			}
			if reasons := fmt.Sprint(vms[0]["reasons"]); !strings.Contains(reasons, want) {
				t.Errorf("audit reasons %s lack %q", reasons, want)
			}

			_, stderr, code = cli(t, append(append([]string{"--identity", f.identity}, f.args(f.env)...), "restore", "agree", "--name", "agree-copy", "--dry-run")...)
			if code != exitNotReady || !strings.Contains(stderr, want) {
				t.Errorf("restore --dry-run: exit %d, stderr %q; want 3 and %q", code, stderr, want)
			}
		})
	}
}

func mustCatalog(t *testing.T, repo *repository.Repository) *repository.Catalog {
	t.Helper()
	cat, err := repository.LoadCatalog(t.Context(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}
