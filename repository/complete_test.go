package repository_test

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
)

func values(cs []repository.Completion) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Value)
	}
	return out
}

// TestCompleteSpecs: completions list what ParseSpec reads, and every
// VM@TIME offered selects the very backup it describes (the times have
// milliseconds: a time cut to seconds would select the backup before).
// A backup whose signature is gone is rejected and never offered.
func TestCompleteSpecs(t *testing.T) {
	ctx := t.Context()
	r := repotest.New(t, repotest.Options{})
	repo := r.Repository
	ids := map[string][]string{
		"db":  {"20260501T020000.250Z-00000001", "20260502T020000.840Z-00000002"},
		"web": {"20260502T030000.000Z-00000003"},
	}
	for vm, list := range ids {
		for _, id := range list {
			m := &repository.Manifest{
				ManifestHeader: repository.ManifestHeader{BackupID: id, VM: repository.VMInfo{Name: vm, InventoryPath: "/DC0/vm/" + vm, InstanceUUID: "u-" + vm}},
				Files:          []repository.File{{Name: vm + ".vmx", Type: repository.FileConfig, SHA256: strings.Repeat("0", 64)}},
			}
			if err := repo.WriteManifest(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	planted := &repository.Manifest{
		ManifestHeader: repository.ManifestHeader{BackupID: "20260503T000000.000Z-0000beef", VM: repository.VMInfo{Name: "planted", InstanceUUID: "u-p"}},
		Files:          []repository.File{{Name: "planted.vmx", Type: repository.FileConfig, SHA256: strings.Repeat("0", 64)}},
	}
	if err := repo.WriteManifest(ctx, planted); err != nil {
		t.Fatal(err)
	}
	if err := r.Backend.Delete(ctx, repository.SignatureObjectName(planted.BackupID)); err != nil {
		t.Fatal(err)
	}
	cat, err := repository.LoadCatalog(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"db", "web", "20260502T030000.000Z-00000003", "20260502T020000.840Z-00000002", "20260501T020000.250Z-00000001"}},
		{"w", []string{"web"}},
		{"20260502T", []string{"20260502T030000.000Z-00000003", "20260502T020000.840Z-00000002"}},
		{"db@", []string{"db@latest", "db@2026-05-02T02:00:00.84Z", "db@2026-05-01T02:00:00.25Z"}},
		{"db@2026-05-01", []string{"db@2026-05-01T02:00:00.25Z"}},
		{"nope@", nil},
		{"planted", nil},
		{"20260503", nil},
	} {
		got := values(cat.CompleteSpecs(tc.prefix))
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("CompleteSpecs(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	for _, c := range cat.CompleteSpecs("db@") {
		m, err := repository.Select(ctx, repo, c.Value)
		if err != nil || c.Description != "backup "+m.BackupID {
			t.Errorf("%s (%s) selects %v (%v)", c.Value, c.Description, m, err)
		}
	}
	if got := values(cat.CompleteVMs("", "db")); strings.Join(got, " ") != "web" {
		t.Errorf("CompleteVMs without db = %v", got)
	}
	if d := cat.CompleteVMs("db")[0].Description; d != "2 backup(s), latest 2026-05-02 02:00 UTC" {
		t.Errorf("description of db: %q", d)
	}
}
