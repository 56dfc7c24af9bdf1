package main

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// openLocal opens the repository in dir directly, for assertions.
func openLocal(t *testing.T, dir string) *repository.Repository {
	t.Helper()
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestListCommand(t *testing.T) {
	b := newBackedUp(t)
	// A second backup: list shows it first.
	stdout, stderr, code := cli(t, append([]string{"--json"}, b.args("backup", b.vm.Name)...)...)
	if code != exitOK {
		t.Fatalf("second backup: %d %s", code, stderr)
	}
	second := ofType(jsonLines(t, stdout), "vm_done")[0]["backup_id"].(string)

	stdout, stderr, code = cli(t, "--repo", b.repo, "list")
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"STORED", "KEY PROVIDER", b.vm.Name, "kms-prod (standard)", "MiB", "yes"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, stdout)
		}
	}
	if i, j := strings.Index(stdout, second), strings.Index(stdout, b.backupID); i < 0 || j < 0 || i > j {
		t.Errorf("want the newer backup %s before %s:\n%s", second, b.backupID, stdout)
	}

	stdout, _, code = cli(t, "--json", "--repo", b.repo, "list", b.vm.Name)
	entries := ofType(jsonLines(t, stdout), "backup_entry")
	if code != exitOK || len(entries) != 2 || entries[0]["backup_id"] != second {
		t.Fatalf("list --json: exit %d: %v", code, entries)
	}
	e := entries[1]
	if e["vm"] != b.vm.Name || e["vtpm"] != true || e["size"].(float64) < float64(b.vm.DiskSize) || e["stored_size"].(float64) <= 0 {
		t.Errorf("entry %v", e)
	}

	stdout, _, code = cli(t, "--repo", b.repo, "list", "no-such-vm")
	if code != exitOK || !strings.Contains(stdout, "no backups of no-such-vm") {
		t.Errorf("list of an unknown VM: exit %d: %s", code, stdout)
	}
}
