package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// A local repository whose disk fills up in the middle of a chunk or of the
// manifest: the backup fails with ENOSPC, removes its snapshot, commits no
// manifest and leaves no partial file; the next backup, with room again,
// succeeds.
func TestBackupDiskFull(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "full-disk", Seed: 5, DiskSize: 4 << 20})
	for _, tc := range []struct {
		name, prefix string
		after        int64
	}{
		{"mid chunk", "data/", 300 << 10},
		{"mid manifest", "manifests/", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dir := filepath.Join(t.TempDir(), "repo")
			be, err := local.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			repo, err := repository.Init(ctx, be, repository.InitOptions{Recipients: []string{newRecipient(t)}, ChunkSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer repo.Close()
			be.FillUpAfter(tc.prefix, tc.after)
			res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(ctx, vm.VM)
			if !errors.Is(res.Err, syscall.ENOSPC) {
				t.Fatalf("backup on a full disk: %v, want ENOSPC", res.Err)
			}
			if snaps, err := env.Client.FindSnapshots(ctx, vm.VM, backup.SnapshotPrefix); err != nil || len(snaps) != 0 {
				t.Fatalf("snapshots left: %+v, %v", snaps, err)
			}
			if ids, err := repo.ListBackupIDs(ctx); err != nil || len(ids) != 0 {
				t.Fatalf("backups committed on a full disk: %v, %v", ids, err)
			}
			err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
					t.Errorf("partial file left: %s", p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			be.FillUpAfter("", 1<<62)
			if res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(ctx, vm.VM); res.Err != nil {
				t.Fatalf("backup with room again: %v", res.Err)
			}
		})
	}
}
