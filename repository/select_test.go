package repository_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
)

func TestSelect(t *testing.T) {
	ctx := t.Context()
	repo := repotest.New(t, repotest.Options{}).Repository
	// Two VMs named web (another one replaced the first, in another
	// folder) and one db.
	for _, b := range []struct{ id, name, path, uuid string }{
		{"20260501T020000.000Z-00000001", "web", "/DC0/vm/web", "u-1"},
		{"20260502T020000.000Z-00000002", "web", "/DC0/vm/web", "u-1"},
		{"20260503T020000.000Z-00000003", "web", "/DC0/vm/new/web", "u-2"},
		{"20260501T020000.000Z-00000004", "db", "/DC0/vm/db", "u-3"},
		{"20260503T020000.000Z-00000005", "db", "/DC0/vm/db", "u-3"},
	} {
		m := &repository.Manifest{
			ManifestHeader: repository.ManifestHeader{BackupID: b.id,
				VM: repository.VMInfo{Name: b.name, InventoryPath: b.path, InstanceUUID: b.uuid}},
			Files: []repository.File{{Name: b.name + ".vmx", Type: repository.FileConfig, SHA256: strings.Repeat("0", 64)}},
		}
		if err := repo.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// VM cache: a good backup, then one whose manifest is damaged (it
	// still names its VM, but fails validation).
	good := &repository.Manifest{ManifestHeader: repository.ManifestHeader{BackupID: "20260501T020000.000Z-00000006", VM: repository.VMInfo{Name: "cache", InventoryPath: "/DC0/vm/cache", InstanceUUID: "u-4"}},
		Files: []repository.File{{Name: "cache.vmx", Type: repository.FileConfig, SHA256: strings.Repeat("0", 64)}}}
	if err := repo.WriteManifest(ctx, good); err != nil {
		t.Fatal(err)
	}
	damaged := `{"schema_version":9,"backup_id":"20260503T020000.000Z-00000007","vm":{"name":"cache"}}`
	if err := repo.Backend().Put(ctx, repository.ManifestObjectName("20260503T020000.000Z-00000007"), strings.NewReader(damaged), int64(len(damaged))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec    string
		want    string // backup ID suffix
		err     error
		mention []string
	}{
		{spec: "db", want: "5"},
		{spec: "db@latest", want: "5"},
		{spec: "db@2026-05-02", want: "4"},
		{spec: "db@2026-05-03T01:59", want: "4"},
		{spec: "db@2026-05-03T02:00:00Z", want: "5"},
		{spec: "db@2026-05-03T04:00:00+02:00", want: "5"},
		{spec: "db@2026-05-03T03:59:59+02:00", want: "4"},
		{spec: "20260501T020000.000Z-00000001", want: "1"},
		{spec: "/DC0/vm/web", want: "2"},
		{spec: "/DC0/vm/web@2026-05-01", want: "1"},
		{spec: "/DC0/vm/new/web@latest", want: "3"},
		{spec: "web", err: repository.ErrAmbiguous, mention: []string{"/DC0/vm/web", "/DC0/vm/new/web", "u-1", "u-2", "00000002", "00000003"}},
		{spec: "db@2026-04-30", err: repository.ErrBackupNotFound, mention: []string{"at or before", "00000004"}},
		{spec: "nope", err: repository.ErrBackupNotFound, mention: []string{"nope", "cache, db, web"}},
		{spec: "20200101T000000.000Z-deadbeef", err: repository.ErrBackupNotFound, mention: []string{"deadbeef"}},
		{spec: "cache", err: repository.ErrCorruptManifest, mention: []string{"00000007", "restore 20260501T020000.000Z-00000006"}},
		{spec: "cache@2026-05-02", want: "6"},
		{spec: "20260501T020000.000Z-00000006", want: "6"},
		{spec: "db@soon", err: repository.ErrBadSpec, mention: []string{"soon"}},
		{spec: "@latest", err: repository.ErrBadSpec},
		{spec: "", err: repository.ErrBadSpec},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			m, err := repository.Select(ctx, repo, tc.spec)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Select = %v, want %v", err, tc.err)
			}
			if err == nil && !strings.HasSuffix(m.BackupID, tc.want) {
				t.Fatalf("selected %s, want the backup ending in %s", m.BackupID, tc.want)
			}
			for _, w := range tc.mention {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
