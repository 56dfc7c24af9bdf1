package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// manifestsEnv overrides how many manifests BenchmarkManyManifests writes.
const manifestsEnv = "VTPM_BENCH_MANIFESTS"

// BenchmarkManyManifests is issue 13's catalog at scale: a repository with
// 10,000 manifests (1,000 VMs with 10 backups each, VTPM_BENCH_MANIFESTS
// overrides the total), locally and on the S3 test server, and what `list`
// (the catalog: every manifest header, authenticated) and `audit` without
// --read-data (catalog, the latest full manifest of each VM, a stat of
// each of its objects) cost there. Writing the repository is not timed.
// The target: each under 10 s on the 2-core machine.
//
//	go test ./audit -run '^$' -bench ManyManifests -benchtime 1x
func BenchmarkManyManifests(b *testing.B) {
	n := 10000
	if v := os.Getenv(manifestsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			b.Fatalf("%s=%q: want a number of manifests, at least 10", manifestsEnv, v)
		}
	}
	for _, kind := range []string{"local", "s3"} {
		b.Run(kind, func(b *testing.B) {
			var be storage.Backend
			if kind == "s3" {
				be = benchS3Backend(b)
			}
			repo := repotest.New(b, repotest.Options{Backend: be, ChunkSize: repository.MinChunkSize}).Repository
			t0 := time.Now()
			writeManyBackups(b, repo, n/10, 10)
			b.Logf("%s: wrote %d manifests in %s", kind, n, time.Since(t0).Round(time.Millisecond))
			b.ResetTimer()
			var list, aud time.Duration
			for range b.N {
				start := time.Now()
				cat, err := repository.LoadCatalog(b.Context(), repo)
				list += time.Since(start)
				if err != nil || cat.Len() != n {
					b.Fatalf("catalog: %v backups, %v", cat.Len(), err)
				}
				start = time.Now()
				rep, err := audit.Run(b.Context(), repo, nil, audit.Options{})
				aud += time.Since(start)
				if err != nil || len(rep.VMs) != n/10 {
					b.Fatalf("audit: %v", err)
				}
			}
			b.ReportMetric(list.Seconds()/float64(b.N), "list-s")
			b.ReportMetric(aud.Seconds()/float64(b.N), "audit-s")
		})
	}
}

func benchS3Backend(b *testing.B) storage.Backend {
	b.Helper()
	srv := s3server.StartT(b)
	if err := srv.CreateBucket(b.Context(), "many", false); err != nil {
		b.Fatal(err)
	}
	be, err := s3.New(b.Context(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: "many", Prefix: "repo", Region: srv.Region, PlainHTTP: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// writeManyBackups writes backups nightly backups of vms VMs: each a small
// .nvram chunk of its own and a disk of two chunks all VMs share, as a
// fleet cloned from one template would hold after a quiet night.
func writeManyBackups(b *testing.B, repo *repository.Repository, vms, backups int) {
	b.Helper()
	w := repo.NewChunkWriter()
	defer w.Close()
	put := func(data []byte) (string, repository.StoredObject) {
		id := repository.ChunkID(sha256.Sum256(data))
		so, err := w.Put(b.Context(), id, data)
		if err != nil {
			b.Fatal(err)
		}
		return id.String(), so
	}
	disk := make([]byte, 2*repository.MinChunkSize)
	for i := range disk {
		disk[i] = byte(i * 7 / 5)
	}
	d1, so1 := put(disk[:repository.MinChunkSize])
	d2, so2 := put(disk[repository.MinChunkSize:])
	diskSum := sha256.Sum256(disk)
	base := time.Now().Add(-time.Duration(backups) * 24 * time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, vms)
	sem := make(chan struct{}, 8)
	for v := range vms {
		name := fmt.Sprintf("vm-%04d", v)
		nvram := []byte("nvram of " + name)
		nv, nvso := put(nvram)
		nvSum := sha256.Sum256(nvram)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for k := range backups {
				at := base.Add(time.Duration(k)*24*time.Hour + time.Duration(v)*time.Second)
				m := &repository.Manifest{
					ManifestHeader: repository.ManifestHeader{
						BackupID: repository.NewBackupID(at), Started: at, Finished: at.Add(time.Minute),
						VM: repository.VMInfo{Name: name, InstanceUUID: "uuid-" + name, VTPM: true},
					},
					Files: []repository.File{
						{Name: name + ".nvram", Type: repository.FileNvram, Size: int64(len(nvram)), SHA256: hex.EncodeToString(nvSum[:]), Chunks: []string{nv}},
						{Name: name + "-flat.vmdk", Type: repository.FileDiskExtent, Size: int64(len(disk)), SHA256: hex.EncodeToString(diskSum[:]), Chunks: []string{d1, d2}},
					},
					Objects: map[string]repository.StoredObject{nv: nvso, d1: so1, d2: so2},
				}
				if err := repo.WriteManifest(b.Context(), m); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
