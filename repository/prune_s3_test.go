package repository_test

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// s3Repo creates a repository in a fresh bucket of a real S3 server
// (versitygw), with Object Lock retention of lockDays when > 0, on clk.
func s3Repo(t *testing.T, srv *s3server.Server, bucket string, lockDays int, clk clock.Clock) (*repository.Repository, *s3.Backend) {
	t.Helper()
	if err := srv.CreateBucket(t.Context(), bucket, lockDays > 0); err != nil {
		t.Fatal(err)
	}
	be, err := s3.New(t.Context(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "vtpm", Region: srv.Region, PlainHTTP: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, LockMode: s3.Governance,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := repotest.New(t, repotest.Options{Backend: be, ChunkSize: chunkSize, ObjectLockDays: lockDays, Clock: clk, Decrypt: true})
	return r.Repository, be
}

// TestPruneObjectLock runs prune against a real S3 server on a bucket with
// Object Lock: retained manifests and chunks are skipped and reported,
// never deleted, whether prune knows it from the write time, from asking
// the object's retention, or only from the server refusing the delete; and
// deleting a retained object directly fails with ErrRetained.
func TestPruneObjectLock(t *testing.T) {
	srv := s3server.StartT(t)
	clk := clock.NewFake(time.Now())
	repo, be := s3Repo(t, srv, "locked", 1, clk)
	var ms []*repository.Manifest
	for n := 1; n <= 3; n++ {
		ms = append(ms, writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n)))
	}
	orphan := chunkData("orphan", 5000)
	w := repo.NewChunkWriter()
	if _, err := w.Put(t.Context(), chunkOf(orphan), orphan); err != nil {
		t.Fatal(err)
	}
	w.Close()
	before := dataObjects(t, be)

	// Direct deletes are refused while retained.
	name := repository.ManifestObjectName(ms[0].BackupID)
	if err := be.Delete(t.Context(), name); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Delete of a retained manifest = %v, want ErrRetained", err)
	}
	// One chunk's retention was extended (e.g. by an operator) to 10 days.
	extended := repository.ChunkObjectName(chunkOf(orphan))
	longer := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	if err := be.SetRetention(t.Context(), extended, longer); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// now: two hours ahead (retained per write time), or three days
		// ahead (write-time retention over: prune asks the object, and the
		// server, still in real time, refuses the delete).
		now time.Time
		// untilKnown: the retained manifests' end of retention is known
		// (from the write time), not just the server's refusal.
		untilKnown bool
	}{
		{"known from write time", time.Now().Add(2 * time.Hour), true},
		{"asked or refused by the server", time.Now().Add(3 * 24 * time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.Set(tc.now)
			rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.ManifestsDeleted != 0 || rep.ChunksDeleted != 0 || rep.BytesFreed() != 0 {
				t.Fatalf("report %+v: prune deleted retained objects", rep)
			}
			// Backups 1 and 2 are forgotten by Last 1 but their manifests
			// stay, so only the orphan is unreferenced.
			if len(rep.RetainedManifests) != 2 || rep.ChunksRetained != 1 || rep.Forgotten != 2 {
				t.Fatalf("report %+v: want 2 retained manifests and the orphan chunk reported retained", rep)
			}
			for _, r := range rep.RetainedManifests {
				if r.Until.IsZero() == tc.untilKnown {
					t.Errorf("retained manifest %s until %v, want known=%v", r.Name, r.Until, tc.untilKnown)
				}
			}
			// A forgotten manifest that stays keeps its chunks referenced.
			if rep.ChunksReferenced != len(before)-1 {
				t.Fatalf("%d chunks referenced, want all but the orphan (%d)", rep.ChunksReferenced, len(before)-1)
			}
			if got := dataObjects(t, be); len(got) != len(before) {
				t.Fatalf("%d chunk objects left, want %d", len(got), len(before))
			}
			ids, err := repo.ListBackupIDs(t.Context())
			if err != nil || len(ids) != 3 {
				t.Fatalf("backups left %v, %v", ids, err)
			}
			for _, id := range ids {
				verifyRestorable(t, repo, id)
			}
		})
	}
	// In the second run the write-time estimate had expired, so the orphan's
	// extended retention was read from the object.
	clk.Set(time.Now().Add(3 * 24 * time.Hour))
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.RetainedUntil.Equal(longer) {
		t.Fatalf("RetainedUntil %v, want the extended retention %v", rep.RetainedUntil, longer)
	}
	if n := countLocks(t, be); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// TestPruneS3 prunes a repository on a plain S3 bucket: forgotten backups
// and their chunks go, kept ones restore.
func TestPruneS3(t *testing.T) {
	srv := s3server.StartT(t)
	repo, be := s3Repo(t, srv, "plain", 0, pruneClock())
	var ids []string
	for n := 1; n <= 4; n++ {
		ids = append(ids, writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n)).BackupID)
	}
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 2}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Backups 1 and 2 go: their nvram and tail chunks, and gen-0.
	if rep.ManifestsDeleted != 2 || rep.ChunksDeleted != 5 || rep.ChunksRetained != 0 {
		t.Fatalf("report %+v", rep)
	}
	left, err := repo.ListBackupIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	if fmt.Sprint(left) != fmt.Sprint(ids[2:]) {
		t.Fatalf("backups left %v, want %v", left, ids[2:])
	}
	for _, id := range left {
		verifyRestorable(t, repo, id)
	}
	if n := len(dataObjects(t, be)); n != rep.ChunksReferenced {
		t.Fatalf("%d chunks left, want %d", n, rep.ChunksReferenced)
	}
}
