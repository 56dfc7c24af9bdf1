package main

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/faultproxy"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// s3FaultRig is a vTPM VM on the simulator and an S3 repository reached
// through the fault proxy (internal/faultproxy) in front of the test S3
// server.
type s3FaultRig struct {
	env         *vspheretest.Env
	vm          *vspheretest.VTPMVM
	proxy       *faultproxy.Proxy
	repo        string
	identity    string
	rng         *rand.Rand
	nvram, disk []byte // what the VM holds now
}

func newS3FaultRig(t *testing.T, seed uint64) *s3FaultRig {
	t.Helper()
	srv, proxy := faultproxy.StartS3T(t, seed)
	if err := srv.CreateBucket(t.Context(), "vtpm", false); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	r := &s3FaultRig{
		proxy:    proxy,
		repo:     "s3+http://" + proxy.Endpoint + "/vtpm/faults",
		identity: filepath.Join(t.TempDir(), "identity.txt"),
		rng:      rand.New(rand.NewPCG(seed, 1)),
	}
	// Small chunks: a backup writes a dozen objects, so the Nth request
	// of a kind falls inside it.
	if _, stderr, code := cli(t, "init", "--repo", r.repo, "--generate-identity", r.identity, "--chunk-size", "512KiB"); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	r.env = simtest.Start(t)
	r.vm = simtest.CreateVTPMVM(t, r.env, vspheretest.VMOptions{Name: "s3-faults", Seed: 41, DiskSize: 4 << 20})
	d, err := io.ReadAll(vspheretest.NewDiskContent(41, r.vm.DiskSize))
	if err != nil {
		t.Fatal(err)
	}
	r.nvram, r.disk = r.vm.Nvram, d
	return r
}

func (r *s3FaultRig) backupArgs() []string {
	return append(append([]string{"--no-progress", "--repo", r.repo}, vcArgs(r.env)...), "backup", r.vm.Name)
}

// change gives the VM a new nvram and 512 KiB of new disk content, so the
// next backup writes new chunks.
func (r *s3FaultRig) change(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	r.nvram = make([]byte, len(r.vm.Nvram))
	for i := range r.nvram {
		r.nvram[i] = byte(r.rng.Uint32())
	}
	off := r.rng.Int64N(r.vm.DiskSize - 512<<10)
	for i := off; i < off+512<<10; i++ {
		r.disk[i] = byte(r.rng.Uint32())
	}
	c := r.env.Client
	if err := c.Upload(ctx, r.vm.Datastore, r.vm.NvramPath, bytes.NewReader(r.nvram), int64(len(r.nvram))); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, r.vm.Datastore, r.vm.FlatPath, bytes.NewReader(r.disk), int64(len(r.disk))); err != nil {
		t.Fatal(err)
	}
}

// noSnapshot fails the test when a vtpm-backup-* snapshot is on the VM.
func (r *s3FaultRig) noSnapshot(t *testing.T) {
	t.Helper()
	if snaps, err := r.env.Client.FindSnapshots(t.Context(), r.vm.VM, backup.SnapshotPrefix); err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left on the VM: %+v, %v", snaps, err)
	}
}

// verify checks, without faults, that every committed backup's chunks are
// there and decrypt to their IDs and that audit --read-data passes; it
// returns the backups.
func (r *s3FaultRig) verify(t *testing.T) []string {
	t.Helper()
	ctx := t.Context()
	r.proxy.Inject()
	repo, err := (&repoFlags{URL: r.repo}).open(ctx, clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	ids, err := age.ParseIdentities(bytes.NewReader(readFile(t, r.identity)))
	if err != nil {
		t.Fatal(err)
	}
	repo.SetIdentities(ids)
	backups, err := repo.ListBackupIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cr := repo.NewChunkReader()
	defer cr.Close()
	for _, res := range repo.ReadManifests(ctx, backups) {
		if res.Err != nil {
			t.Fatalf("backup %s: %v", res.BackupID, res.Err)
		}
		for id, so := range res.Manifest.Objects {
			cid, err := repository.ParseChunkID(id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cr.Read(ctx, cid, &so, nil); err != nil {
				t.Fatalf("backup %s references a chunk it cannot read: %v", res.BackupID, err)
			}
		}
	}
	if len(backups) > 0 {
		args := append(append([]string{"--repo", r.repo}, vcArgs(r.env)...), "audit", "--read-data", "--identity", r.identity)
		if stdout, stderr, code := cli(t, args...); code != exitOK {
			t.Fatalf("audit --read-data: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	return backups
}

// restoreArgs restore the latest backup to dir.
func (r *s3FaultRig) restoreArgs(dir string) []string {
	return []string{"--no-progress", "--repo", r.repo, "restore", r.vm.Name, "--identity", r.identity, "--to-dir", dir}
}

// sameAsVM compares a restore in dir with what the VM holds.
func (r *s3FaultRig) sameAsVM(t *testing.T, dir string) {
	t.Helper()
	for name, want := range map[string][]byte{filepath.Base(r.vm.NvramPath): r.nvram, filepath.Base(r.vm.FlatPath): r.disk} {
		if got := readFile(t, filepath.Join(dir, name)); sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("restored %s differs from the VM's content", name)
		}
	}
}

// s3FaultCase is a set of fault rules and whether the command must get
// through them (by the S3 client's retries) or fail with a clear error.
type s3FaultCase struct {
	name  string
	rules []faultproxy.Rule
	ok    bool
}

// wantS3Error checks a failed command's error: it names S3 and says what
// to do.
func wantS3Error(t *testing.T, code int, stderr string) {
	t.Helper()
	if code == exitOK {
		t.Fatalf("the command succeeded through a persistent fault")
	}
	if !strings.Contains(stderr, "S3 service failed") && !strings.Contains(stderr, "S3: endpoint unreachable") {
		t.Fatalf("exit %d, an error that does not name S3:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "hint:") || !strings.Contains(stderr, "run the same command again") {
		t.Fatalf("exit %d, an error without what to do:\n%s", code, stderr)
	}
	t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
}

// TestS3Faults injects S3 faults (internal/faultproxy) into backups,
// restores and prunes of one repository. Each case ends in success (the S3
// client retried) or a clear error naming S3 and what to do, never with a
// vtpm-backup snapshot left on the VM or a manifest that references a
// missing chunk (checked after every case, without faults, by reading
// every committed backup's chunks and by audit --read-data).
func TestS3Faults(t *testing.T) {
	r := newS3FaultRig(t, 13)
	t.Run("backup", r.testBackup)
	t.Run("restore", r.testRestore)
	t.Run("prune", r.testPrune)
	t.Logf("in all: %s", r.proxy)
}

// Faults during a backup; after a failure the next backup, without
// faults, succeeds.
func (r *s3FaultRig) testBackup(t *testing.T) {
	const ms = time.Millisecond
	cases := []s3FaultCase{
		{"500 on a share of PUTs", []faultproxy.Rule{{Fault: faultproxy.InternalError, Kind: faultproxy.Put, Share: 0.3, Max: 4}}, true},
		{"503 SlowDown twice", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.Put, Nth: 3, Max: 2}}, true},
		{"503 on a listing", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.List, Nth: 1}}, true},
		{"500 on a GET", []faultproxy.Rule{{Fault: faultproxy.InternalError, Kind: faultproxy.Get, Nth: 1}}, true},
		{"latency", []faultproxy.Rule{{Fault: faultproxy.Latency, Share: 0.3, Max: 8, Delay: 100 * ms}}, true},
		{"slow bodies", []faultproxy.Rule{{Fault: faultproxy.Trickle, Share: 1, Delay: ms}}, true},
		{"reset in a chunk upload", []faultproxy.Rule{{Fault: faultproxy.ResetRequest, Kind: faultproxy.Put, Path: "/data/", Nth: 2}}, true},
		{"reset in a listing's answer", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.List, Nth: 1}}, true},
		{"lost answer to a chunk upload", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.Put, Path: "/data/", Nth: 1}}, true},
		{"lost answer to the lock", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.Put, Path: "/locks/", Nth: 1}}, true},
		{"lost answers to the manifest", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.Put, Path: "/manifests/", Nth: 1, Max: 2}}, true},
		{"restart in a chunk upload", []faultproxy.Rule{{Fault: faultproxy.Restart, Kind: faultproxy.Put, Path: "/data/", Nth: 2}}, true},
		{"restart in the manifest upload", []faultproxy.Rule{{Fault: faultproxy.Restart, Kind: faultproxy.Put, Path: "/manifests/", Nth: 1}}, true},
		{"chunk uploads keep failing", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.Put, Path: "/data/", Share: 1}}, false},
		{"manifest uploads keep failing", []faultproxy.Rule{{Fault: faultproxy.InternalError, Kind: faultproxy.Put, Path: "/manifests/", Share: 1}}, false},
		{"connections keep breaking", []faultproxy.Rule{{Fault: faultproxy.ResetRequest, Kind: faultproxy.Put, Path: "/data/", Nth: 3, Max: 1000}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.verify(t))
			r.change(t)
			r.proxy.Inject(tc.rules...)
			stdout, stderr, code := cli(t, r.backupArgs()...)
			r.proxy.Inject()
			t.Logf("%s", r.proxy)
			r.noSnapshot(t)
			after := len(r.verify(t))
			if tc.ok {
				if code != exitOK {
					t.Fatalf("backup through %s: exit %d\n%s\n%s", tc.name, code, stdout, stderr)
				}
				if after != before+1 {
					t.Fatalf("%d backups after a successful one, want %d", after, before+1)
				}
				return
			}
			wantS3Error(t, code, stdout+stderr)
			if after != before {
				t.Fatalf("%d backups after a failed one, want %d", after, before)
			}
			if _, stderr, code := cli(t, r.backupArgs()...); code != exitOK {
				t.Fatalf("the backup after the faults: exit %d\n%s", code, stderr)
			}
			r.noSnapshot(t)
		})
	}
}

// Faults during a restore of the latest backup to a directory: it is
// byte-identical to the VM, or the restore fails clearly.
func (r *s3FaultRig) testRestore(t *testing.T) {
	cases := []s3FaultCase{
		{"500 on a GET", []faultproxy.Rule{{Fault: faultproxy.InternalError, Kind: faultproxy.Get, Nth: 2}}, true},
		{"slow bodies", []faultproxy.Rule{{Fault: faultproxy.Trickle, Kind: faultproxy.Get, Share: 1, Delay: time.Millisecond}}, true},
		{"resets in chunk downloads", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.Get, Path: "/data/", Nth: 1, Max: 3}}, true},
		{"reset before an answer", []faultproxy.Rule{{Fault: faultproxy.ResetRequest, Kind: faultproxy.Get, Nth: 1}}, true},
		{"restart in a chunk download", []faultproxy.Rule{{Fault: faultproxy.Restart, Kind: faultproxy.Get, Path: "/data/", Nth: 2}}, true},
		{"chunk downloads keep failing", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.Get, Path: "/data/", Share: 1}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			r.proxy.Inject(tc.rules...)
			stdout, stderr, code := cli(t, r.restoreArgs(dir)...)
			r.proxy.Inject()
			t.Logf("%s", r.proxy)
			if tc.ok {
				if code != exitOK {
					t.Fatalf("restore through %s: exit %d\n%s\n%s", tc.name, code, stdout, stderr)
				}
				r.sameAsVM(t, dir)
				return
			}
			wantS3Error(t, code, stdout+stderr)
			dir = filepath.Join(t.TempDir(), "again")
			if _, stderr, code := cli(t, r.restoreArgs(dir)...); code != exitOK {
				t.Fatalf("the restore after the faults: exit %d\n%s", code, stderr)
			}
			r.sameAsVM(t, dir)
		})
	}
}

// Faults during a prune that removes old backups and their chunks: it
// completes, or fails clearly, and no backup it keeps loses a chunk.
func (r *s3FaultRig) testPrune(t *testing.T) {
	prune := []string{"--no-progress", "--repo", r.repo, "prune", "--keep-last", "2", "--grace", "0"}
	cases := []s3FaultCase{
		{"503 on a share of DELETEs", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.Delete, Share: 0.5, Max: 3}}, true},
		{"lost answer to a DELETE", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.Delete, Nth: 2}}, true},
		{"reset in a listing's answer", []faultproxy.Rule{{Fault: faultproxy.ResetResponse, Kind: faultproxy.List, Nth: 2}}, true},
		{"restart in a DELETE", []faultproxy.Rule{{Fault: faultproxy.Restart, Kind: faultproxy.Delete, Nth: 3}}, true},
		// Only the repository's data and manifests: the prune's own lock
		// must go, since this test runs it in its own (live) process.
		{"chunk deletes keep failing", []faultproxy.Rule{{Fault: faultproxy.InternalError, Kind: faultproxy.Delete, Path: "/data/", Nth: 2, Max: 1000}}, false},
		{"manifest deletes keep failing", []faultproxy.Rule{{Fault: faultproxy.SlowDown, Kind: faultproxy.Delete, Path: "/manifests/", Share: 1}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Two new backups: the prune has old ones to remove.
			for range 2 {
				r.change(t)
				if _, stderr, code := cli(t, r.backupArgs()...); code != exitOK {
					t.Fatalf("backup: exit %d\n%s", code, stderr)
				}
			}
			r.proxy.Inject(tc.rules...)
			stdout, stderr, code := cli(t, prune...)
			r.proxy.Inject()
			t.Logf("%s", r.proxy)
			kept := r.verify(t)
			if tc.ok {
				if code != exitOK {
					t.Fatalf("prune through %s: exit %d\n%s\n%s", tc.name, code, stdout, stderr)
				}
				if len(kept) != 2 {
					t.Fatalf("%d backups after prune --keep-last 2", len(kept))
				}
				return
			}
			wantS3Error(t, code, stdout+stderr)
			if _, stderr, code := cli(t, prune...); code != exitOK {
				t.Fatalf("the prune after the faults: exit %d\n%s", code, stderr)
			}
			if kept := r.verify(t); len(kept) != 2 {
				t.Fatalf("%d backups after prune --keep-last 2", len(kept))
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, stderr, code := cli(t, r.restoreArgs(dir)...); code != exitOK {
		t.Fatalf("restore after the prunes: exit %d\n%s", code, stderr)
	}
	r.sameAsVM(t, dir)
}
