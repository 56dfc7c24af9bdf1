package repository_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// chunkSize of the test repositories (newRepo).
const chunkSize = 1 << 20

// chunkData is recognisable, compressible chunk content: prune tests need
// many chunks, not random bytes.
func chunkData(label string, size int) []byte {
	b := bytes.Repeat([]byte(label+"|"), size/(len(label)+1)+1)
	return b[:size]
}

// synthFile is a file of a synthetic backup: the plaintext of each chunk.
type synthFile struct {
	name, typ string
	chunks    [][]byte
}

// writeBackup stores the chunks and the manifest of one synthetic backup of
// VM vm at t through the repository API, as backup.Backuper does (chunks
// first, manifest last), and returns the manifest.
func writeBackup(t *testing.T, repo *repository.Repository, vm string, at time.Time, files []synthFile) *repository.Manifest {
	t.Helper()
	w := repo.NewChunkWriter()
	defer w.Close()
	m := &repository.Manifest{
		ManifestHeader: repository.ManifestHeader{BackupID: repository.NewBackupID(at),
			Started: at, Finished: at.Add(time.Minute),
			VM: repository.VMInfo{Name: vm, InstanceUUID: "uuid-" + vm, VTPM: true}},
		Objects: map[string]repository.StoredObject{},
	}
	for _, f := range files {
		h := sha256.New()
		mf := repository.File{Name: f.name, Type: f.typ, Chunks: []string{}}
		for _, c := range f.chunks {
			id := repository.ChunkID(sha256.Sum256(c))
			so, err := w.Put(t.Context(), id, c)
			if err != nil {
				t.Fatal(err)
			}
			m.Objects[id.String()] = so
			mf.Chunks = append(mf.Chunks, id.String())
			mf.Size += int64(len(c))
			h.Write(c)
		}
		mf.SHA256 = hex.EncodeToString(h.Sum(nil))
		m.Files = append(m.Files, mf)
	}
	if err := repo.WriteManifest(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// tenBackupFiles is backup n (1..10) of the ten-backup history: a disk whose
// first chunk never changes, whose second changes every other backup and
// whose short tail changes every time, and a new nvram each time.
func tenBackupFiles(n int) []synthFile {
	return []synthFile{
		{name: "vm.nvram", typ: repository.FileNvram, chunks: [][]byte{chunkData(fmt.Sprintf("nvram-%d", n), 8<<10)}},
		{name: "vm-flat.vmdk", typ: repository.FileDiskExtent, chunks: [][]byte{
			chunkData("base", chunkSize),
			chunkData(fmt.Sprintf("gen-%d", n/2), chunkSize),
			chunkData(fmt.Sprintf("tail-%d", n), 1000),
		}},
	}
}

// dataObjects returns the chunk objects stored, by name.
func dataObjects(t *testing.T, be storage.Backend) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := be.List(t.Context(), "data/", func(fi storage.ObjectInfo) error { out[fi.Name] = fi.Size; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// referenced returns the chunk objects the manifests reference.
func referenced(ms []*repository.Manifest) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for id := range m.Objects {
			cid, _ := repository.ParseChunkID(id)
			out[repository.ChunkObjectName(cid)] = true
		}
	}
	return out
}

// verifyRestorable proves a backup is whole: every stored object matches
// the manifest (what audit checks without keys) and every file rebuilds
// from its decrypted chunks to its recorded SHA-256 (what restore checks).
func verifyRestorable(t *testing.T, repo *repository.Repository, backupID string) {
	t.Helper()
	m, err := repo.ReadManifest(t.Context(), backupID)
	if err != nil {
		t.Fatalf("backup %s: %v", backupID, err)
	}
	rd := repo.NewChunkReader()
	defer rd.Close()
	for _, f := range m.Files {
		h := sha256.New()
		for _, c := range f.Chunks {
			id, _ := repository.ParseChunkID(c)
			so := m.Objects[c]
			if err := rd.VerifyStored(t.Context(), id, so); err != nil {
				t.Fatalf("backup %s, file %s: %v", backupID, f.Name, err)
			}
			plain, err := rd.Read(t.Context(), id, &so, nil)
			if err != nil {
				t.Fatalf("backup %s, file %s: %v", backupID, f.Name, err)
			}
			h.Write(plain)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			t.Fatalf("backup %s: file %s restores to sha256 %s, want %s", backupID, f.Name, got, f.SHA256)
		}
	}
}

// pruneClock is a clock two hours ahead of the storage's, so every chunk
// written by the test is past the grace period.
func pruneClock() *clock.Fake { return clock.NewFake(time.Now().Add(2 * time.Hour)) }

// TestPrunePolicies prunes the ten-backup history with every policy of the
// shared table: exactly the expected backups stay, each still restores,
// and exactly the chunks no kept backup references are gone.
func TestPrunePolicies(t *testing.T) {
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			be := storagetest.NewMemory()
			repo := repotest.New(t, repotest.Options{Backend: be, ChunkSize: chunkSize, Clock: pruneClock(), Decrypt: true}).Repository
			byNumber := map[int]*repository.Manifest{}
			var all []*repository.Manifest
			for n := 1; n <= 10; n++ {
				byNumber[n] = writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n))
				all = append(all, byNumber[n])
			}
			// Garbage of a backup that died before its manifest.
			w := repo.NewChunkWriter()
			if _, err := w.Put(t.Context(), chunkOf(chunkData("orphan", 5000)), chunkData("orphan", 5000)); err != nil {
				t.Fatal(err)
			}
			w.Close()

			var kept []*repository.Manifest
			var wantIDs []string
			for _, n := range tc.keep {
				kept = append(kept, byNumber[n])
				wantIDs = append(wantIDs, byNumber[n].BackupID)
			}
			sort.Strings(wantIDs)
			before := dataObjects(t, be)
			refs := referenced(kept)
			var wantFreed int64
			for name, size := range before {
				if !refs[name] {
					wantFreed += size
				}
			}
			var wantManifestBytes int64
			for _, m := range all {
				if !contains(wantIDs, m.BackupID) {
					fi, err := be.Stat(t.Context(), repository.ManifestObjectName(m.BackupID))
					if err != nil {
						t.Fatal(err)
					}
					wantManifestBytes += fi.Size
				}
			}

			opts := repository.PruneOptions{Location: time.UTC, DryRun: true}
			dry, err := repository.Prune(t.Context(), repo, tc.policy, opts)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			// The config, and a manifest and its signature per backup.
			others := 1 + 2*len(all)
			if got := dataObjects(t, be); len(got) != len(before) || be.Count() != len(before)+others {
				t.Fatalf("dry run deleted something: %d objects, want %d", be.Count(), len(before)+others)
			}

			// The plan decides and marks under the exclusive lock, and
			// deletes nothing until it is executed.
			opts.DryRun = false
			plan, err := repository.PlanPrune(t.Context(), repo, tc.policy, opts)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if len(plan.Report.Decisions) != 10 || plan.Report.Kept != len(tc.keep) || plan.Report.ChunksReferenced != len(refs) {
				t.Fatalf("plan %+v: want 10 decisions, %d kept, %d chunks referenced", plan.Report, len(tc.keep), len(refs))
			}
			if be.Count() != len(before)+others+1 || countLocks(t, be) != 1 {
				t.Fatalf("planning changed the repository: %d objects, %d locks; want %d and the exclusive lock", be.Count(), countLocks(t, be), len(before)+others+1)
			}
			rep, err := plan.Execute(t.Context())
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			ids, err := repo.ListBackupIDs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids, wantIDs) {
				t.Fatalf("backups left %v, want %v (backups %v)", ids, wantIDs, tc.keep)
			}
			for _, id := range ids {
				verifyRestorable(t, repo, id)
			}
			after := dataObjects(t, be)
			if len(after) != len(refs) {
				t.Fatalf("%d chunk objects left, want the %d kept backups reference", len(after), len(refs))
			}
			for name := range after {
				if !refs[name] {
					t.Errorf("unreferenced chunk %s survived", name)
				}
			}
			for _, r := range []*repository.PruneReport{dry, rep} {
				if r.Kept != len(tc.keep) || r.Forgotten != 10-len(tc.keep) || r.ManifestsDeleted != r.Forgotten ||
					r.ChunksDeleted != len(before)-len(refs) || r.ChunkBytesFreed != wantFreed ||
					r.ManifestBytesFreed != wantManifestBytes || r.ChunksReferenced != len(refs) ||
					r.ChunksTotal != len(before) || r.ChunksMissing != 0 || r.ChunksYoung != 0 {
					t.Errorf("report (dry run %v) %+v; want %d kept, %d chunks (%d bytes) and %d manifest bytes freed",
						r.DryRun, r, len(tc.keep), len(before)-len(refs), wantFreed, wantManifestBytes)
				}
			}
			if n := countLocks(t, be); n != 0 {
				t.Fatalf("%d locks left after prune", n)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestPruneGracePeriod(t *testing.T) {
	be := storagetest.NewMemory()
	clk := clock.NewFake(time.Now())
	repo := newRepo(t, be, clk).Repository
	writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	writeBackup(t, repo, "vm-a", tenBackupTimes[2], tenBackupFiles(2))
	// A backup writing right now: its chunks are younger than an hour.
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Backup 1's own chunks: its nvram, the disk's second chunk and tail.
	if rep.ManifestsDeleted != 1 || rep.ChunksDeleted != 0 || rep.ChunksYoung != 3 {
		t.Fatalf("report %+v: want the backup forgotten but its 3 fresh chunks kept", rep)
	}
	clk.Advance(2 * time.Hour)
	rep, err = repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChunksDeleted != 3 || rep.ChunksYoung != 0 {
		t.Fatalf("report %+v: want the 3 chunks deleted after the grace period", rep)
	}
}

func TestPruneRefusesUnreadableManifest(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, mem *storagetest.Memory, be *storagetest.Faulty, m *repository.Manifest)
	}{
		{"corrupt", func(t *testing.T, mem *storagetest.Memory, _ *storagetest.Faulty, m *repository.Manifest) {
			if err := mem.Corrupt(repository.ManifestObjectName(m.BackupID), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, mem *storagetest.Memory, _ *storagetest.Faulty, m *repository.Manifest) {
			if err := mem.Put(t.Context(), repository.ManifestObjectName(m.BackupID), strings.NewReader(`{"backup_id":`), 13); err != nil {
				t.Fatal(err)
			}
		}},
		{"read error", func(t *testing.T, _ *storagetest.Memory, be *storagetest.Faulty, m *repository.Manifest) {
			be.AddFault(func(op storagetest.Op, name string) error {
				if op == storagetest.OpGet && name == repository.ManifestObjectName(m.BackupID) {
					return errors.New("503 slow down")
				}
				return nil
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := storagetest.NewMemory()
			be := storagetest.NewFaulty(mem)
			repo := newRepo(t, be, pruneClock()).Repository
			var ms []*repository.Manifest
			for n := 1; n <= 3; n++ {
				ms = append(ms, writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n)))
			}
			tc.spoil(t, mem, be, ms[1])
			before := mem.Count()
			rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
			if !errors.Is(err, repository.ErrUnreadableManifest) || !strings.Contains(err.Error(), ms[1].BackupID) || !strings.Contains(err.Error(), "deleted no chunk") {
				t.Fatalf("Prune = %v, want ErrUnreadableManifest naming %s", err, ms[1].BackupID)
			}
			if rep == nil || rep.ManifestsDeleted != 0 || rep.ChunksDeleted != 0 {
				t.Fatalf("report %+v", rep)
			}
			if got := mem.Count(); got != before {
				t.Fatalf("%d objects after a refused prune, want %d", got, before)
			}
		})
	}
}

func TestPruneLocked(t *testing.T) {
	be := storagetest.NewMemory()
	clk := pruneClock()
	repo := newRepo(t, be, clk).Repository
	writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	writeBackup(t, repo, "vm-a", tenBackupTimes[2], tenBackupFiles(2))
	backup, err := repo.LockWithOptions(t.Context(), lockOpts("backup01", false))
	if err != nil {
		t.Fatal(err)
	}
	before := be.Count()
	_, err = repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if !errors.Is(err, repository.ErrLocked) || !strings.Contains(err.Error(), "backup01") {
		t.Fatalf("Prune under a backup = %v, want ErrLocked naming the backup host", err)
	}
	if be.Count() != before {
		t.Fatal("a refused prune deleted something")
	}
	// The backup host dies; after expiry prune takes its lock over, says
	// so, and keeps every chunk written since that lock was taken.
	clk.Advance(repository.DefaultLockExpiry)
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.StaleLocks) != 1 || rep.StaleLocks[0].ID != backup.Info().ID {
		t.Fatalf("StaleLocks %+v, want the dead backup's lock", rep.StaleLocks)
	}
	if !rep.Cutoff.Equal(backup.Info().Created) {
		t.Fatalf("cutoff %v, want the stale lock's creation %v", rep.Cutoff, backup.Info().Created)
	}
	if rep.ManifestsDeleted != 1 {
		t.Fatalf("report %+v", rep)
	}
	if n := countLocks(t, be); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// TestPruneLateManifest: a client that ignores locks commits a backup while
// prune sweeps; the chunks it references survive even though they are old.
func TestPruneLateManifest(t *testing.T) {
	mem := storagetest.NewMemory()
	be := storagetest.NewFaulty(mem)
	repo := newRepo(t, be, pruneClock()).Repository
	writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	old := writeBackup(t, repo, "vm-b", tenBackupTimes[1], tenBackupFiles(1)[:1])
	// vm-b's backup is "uncommitted": its chunk is garbage...
	if err := mem.Delete(t.Context(), repository.ManifestObjectName(old.BackupID)); err != nil {
		t.Fatal(err)
	}
	// ...until a rogue client commits a manifest that references it, while
	// prune lists the chunks.
	var once sync.Once
	be.AddFault(func(op storagetest.Op, name string) error {
		if op == storagetest.OpList && name == "data/" {
			once.Do(func() {
				old.BackupID = repository.NewBackupID(tenBackupTimes[2])
				if err := repo.WriteManifest(context.WithoutCancel(t.Context()), old); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	})
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChunksDeleted != 0 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], old.BackupID) {
		t.Fatalf("report %+v: want no chunk deleted and a warning naming %s", rep, old.BackupID)
	}
	for id := range old.Objects {
		cid, _ := repository.ParseChunkID(id)
		if _, err := mem.Stat(t.Context(), repository.ChunkObjectName(cid)); err != nil {
			t.Fatalf("chunk of the late backup: %v", err)
		}
	}
}

func TestPruneRejectsBadPolicy(t *testing.T) {
	repo := newRepo(t, storagetest.NewMemory(), nil).Repository
	if _, err := repository.Prune(t.Context(), repo, repository.Policy{Last: -5}, repository.PruneOptions{}); !errors.Is(err, repository.ErrBadPolicy) {
		t.Fatalf("Prune = %v", err)
	}
}

// synthBackup is a backup in progress, as backup.Backuper runs one: it
// learns which chunks exist from the VM's latest manifest (its dedup index)
// and references them without uploading, writes new chunks, and commits
// its manifest last.
type synthBackup struct {
	repo  *repository.Repository
	vm    string
	seq   int64
	known map[string]repository.StoredObject // chunk id → object, from the latest manifest
	files []repository.File
	objs  map[string]repository.StoredObject
}

func startSynthBackup(t *testing.T, repo *repository.Repository, vm string, seq int64) *synthBackup {
	t.Helper()
	b := &synthBackup{repo: repo, vm: vm, seq: seq, known: map[string]repository.StoredObject{}, objs: map[string]repository.StoredObject{}}
	ids, err := repo.ListBackupIDs(t.Context())
	if err != nil {
		t.Error(err)
		return b
	}
	var latest *repository.Manifest
	for _, res := range repo.ReadManifests(t.Context(), ids) {
		if res.Err == nil && res.Manifest.VM.Name == vm && (latest == nil || res.Manifest.BackupID > latest.BackupID) {
			latest = res.Manifest
		}
	}
	if latest != nil {
		for _, f := range latest.Files {
			if f.Type == repository.FileDiskExtent {
				for _, c := range f.Chunks {
					b.known[c] = latest.Objects[c]
				}
			}
		}
	}
	return b
}

// store writes the backup's data: a disk of the known chunks (unchanged
// blocks, not uploaded again) plus one new chunk, and a new nvram.
func (b *synthBackup) store(t *testing.T) {
	w := b.repo.NewChunkWriter()
	defer w.Close()
	put := func(data []byte) string {
		id := chunkOf(data)
		so, err := w.Put(t.Context(), id, data)
		if err != nil {
			t.Error(err)
		}
		b.objs[id.String()] = so
		return id.String()
	}
	disk := repository.File{Name: b.vm + "-flat.vmdk", Type: repository.FileDiskExtent, SHA256: strings.Repeat("0", 64)}
	known := make([]string, 0, len(b.known))
	for c := range b.known {
		known = append(known, c)
	}
	sort.Strings(known)
	for _, c := range known[:min(len(known), 3)] {
		disk.Chunks = append(disk.Chunks, c)
		b.objs[c] = b.known[c]
	}
	disk.Chunks = append(disk.Chunks, put(chunkData(fmt.Sprintf("%s-%d", b.vm, b.seq), chunkSize)))
	disk.Size = int64(len(disk.Chunks)) * chunkSize
	nv := chunkData(fmt.Sprintf("%s-nvram-%d", b.vm, b.seq), 4096)
	b.files = []repository.File{
		{Name: b.vm + ".nvram", Type: repository.FileNvram, Size: int64(len(nv)), SHA256: strings.Repeat("0", 64), Chunks: []string{put(nv)}},
		disk,
	}
}

func (b *synthBackup) commit(t *testing.T) *repository.Manifest {
	at := time.Now()
	m := &repository.Manifest{
		ManifestHeader: repository.ManifestHeader{BackupID: repository.NewBackupID(at), Started: at, Finished: at,
			VM: repository.VMInfo{Name: b.vm, InstanceUUID: "uuid-" + b.vm, VTPM: true}},
		Files: b.files, Objects: b.objs,
	}
	if err := b.repo.WriteManifest(t.Context(), m); err != nil {
		t.Error(err)
	}
	return m
}

// danglingChunks lists every (backup, chunk) pair where a manifest in the
// repository references a chunk that is not stored.
func danglingChunks(t *testing.T, repo *repository.Repository) []string {
	t.Helper()
	ids, err := repo.ListBackupIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, res := range repo.ReadManifests(t.Context(), ids) {
		if res.Err != nil {
			if errors.Is(res.Err, repository.ErrManifestNotFound) {
				continue
			}
			t.Fatal(res.Err)
		}
		for c := range res.Manifest.Objects {
			id, _ := repository.ParseChunkID(c)
			if _, err := repo.Backend().Stat(t.Context(), repository.ChunkObjectName(id)); errors.Is(err, storage.ErrNotFound) {
				out = append(out, res.BackupID+":"+c[:12])
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestPruneWithoutLockLosesChunks shows the hazard the locks exist for, in
// a fixed interleaving with the grace period off: a backup that learnt of a
// chunk from the latest manifest, then another backup of the same VM, then
// a prune keeping one backup, then the first backup commits. Without a lock
// its manifest references deleted chunks; with its shared lock the prune is
// refused.
func TestPruneWithoutLockLosesChunks(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			repo := newRepo(t, storagetest.NewMemory(), nil).Repository
			b := startSynthBackup(t, repo, "vm-a", 1)
			b.store(t)
			b.commit(t)

			var l *repository.Lock
			if locked {
				var err error
				if l, err = repo.Lock(t.Context(), false); err != nil {
					t.Fatal(err)
				}
			}
			slow := startSynthBackup(t, repo, "vm-a", 2) // knows backup 1's chunks
			fast := startSynthBackup(t, repo, "vm-a", 3)
			fast.known = nil // a full backup: nothing shared with backup 1
			fast.store(t)
			fast.commit(t)
			_, perr := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{Grace: -1})
			slow.store(t)
			slow.commit(t)
			if l != nil {
				_ = l.Unlock(t.Context())
			}
			dangling := danglingChunks(t, repo)
			if locked {
				if !errors.Is(perr, repository.ErrLocked) || len(dangling) != 0 {
					t.Fatalf("with the lock: prune %v, dangling %v", perr, dangling)
				}
			} else if perr != nil || len(dangling) == 0 {
				t.Fatalf("without the lock: prune %v, dangling %v: the hazard did not show, the concurrency test proves nothing", perr, dangling)
			}
		})
	}
}

// TestPruneConcurrentBackups runs backups and prunes in parallel many times
// on the real lock and sweep code, the grace period off so only the locks
// protect: no manifest may ever reference a deleted chunk. The check runs
// under a shared lock after every prune, and once at the end.
func TestPruneConcurrentBackups(t *testing.T) {
	repo := newRepo(t, storagetest.NewMemory(), nil).Repository
	const (
		backupers  = 3
		perBackup  = 25
		wantPrunes = 15
	)
	var (
		seq       atomic.Int64
		backupsOK atomic.Int32
		prunesOK  atomic.Int32
		refused   atomic.Int32
		wg        sync.WaitGroup
		done      = make(chan struct{})
	)
	lockRetrying := func(exclusive bool) *repository.Lock {
		for {
			l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Exclusive: exclusive, NoRefresh: true})
			if err == nil {
				return l
			}
			if !errors.Is(err, repository.ErrLocked) {
				t.Error(err)
				return nil
			}
			refused.Add(1)
			runtime.Gosched()
		}
	}
	for i := range backupers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perBackup {
				l := lockRetrying(false)
				if l == nil {
					return
				}
				b := startSynthBackup(t, repo, fmt.Sprintf("vm-%d", i%2), seq.Add(1)) // two VMs, backed up by three hosts
				b.store(t)
				runtime.Gosched() // let prune try while we hold the lock
				b.commit(t)
				if err := l.Unlock(t.Context()); err != nil {
					t.Error(err)
				}
				backupsOK.Add(1)
				runtime.Gosched() // give prune a chance between backups
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	prune := func() {
		_, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{Grace: -1})
		switch {
		case err == nil:
			prunesOK.Add(1)
		case errors.Is(err, repository.ErrLocked):
			refused.Add(1)
			runtime.Gosched()
			return
		default:
			t.Error(err)
			return
		}
		l := lockRetrying(false) // like an audit: nothing may vanish under it
		if l == nil {
			return
		}
		if d := danglingChunks(t, repo); len(d) > 0 {
			t.Errorf("after prune %d: manifests reference deleted chunks: %v", prunesOK.Load(), d)
		}
		_ = l.Unlock(t.Context())
	}
loop:
	for {
		select {
		case <-done:
			break loop
		default:
			prune()
		}
	}
	during := prunesOK.Load()
	// At least one prune after the last backup, so nothing is left to do.
	for (prunesOK.Load() == during || prunesOK.Load() < wantPrunes) && !t.Failed() {
		prune()
	}
	if d := danglingChunks(t, repo); len(d) > 0 {
		t.Fatalf("manifests reference deleted chunks: %v", d)
	}
	// Everything unreferenced is gone at the end: the sweep did sweep.
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{Grace: -1})
	if err != nil || rep.ChunksDeleted != 0 || rep.ManifestsDeleted != 0 {
		t.Fatalf("final prune %+v, %v: want nothing left to delete", rep, err)
	}
	ids, _ := repo.ListBackupIDs(t.Context())
	if len(ids) != 2 {
		t.Fatalf("%d backups left, want one per VM", len(ids))
	}
	t.Logf("%d backups, %d prunes (%d while backups ran), %d lock refusals", backupsOK.Load(), prunesOK.Load(), during, refused.Load())
	if backupsOK.Load() != backupers*perBackup {
		t.Fatalf("%d backups succeeded, want %d", backupsOK.Load(), backupers*perBackup)
	}
}

// Prune removes the temporary files of puts killed before the grace cutoff
// (invisible to List, so no sweep sees them); a dry run removes nothing.
func TestPruneRemovesDebrisOfKilledPuts(t *testing.T) {
	dir := t.TempDir()
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, be, nil).Repository
	debris := filepath.Join(dir, ".tmp-killed-put")
	if err := os.WriteFile(debris, []byte("partial chunk"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(debris, past, past); err != nil {
		t.Fatal(err)
	}
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{}, repository.PruneOptions{DryRun: true})
	if err != nil || rep.DebrisRemoved != 0 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	rep, err = repository.Prune(t.Context(), repo, repository.Policy{}, repository.PruneOptions{})
	if err != nil || rep.DebrisRemoved != 1 {
		t.Fatalf("prune removed %d debris, %v; want 1", rep.DebrisRemoved, err)
	}
	if _, err := os.Stat(debris); !os.IsNotExist(err) {
		t.Fatal("the debris is still there")
	}
}

// A plan whose lock is gone deletes nothing: another prune may have taken
// the lock over and be deleting from its own listing.
func TestPrunePlanLockLost(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, clk *clock.Fake, be storage.Backend)
	}{
		{"taken over", func(t *testing.T, _ *clock.Fake, be storage.Backend) {
			err := be.List(t.Context(), "locks/", func(fi storage.ObjectInfo) error { return be.Delete(t.Context(), fi.Name) })
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", func(t *testing.T, clk *clock.Fake, _ storage.Backend) {
			clk.Advance(repository.DefaultLockExpiry)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := storagetest.NewMemory()
			clk := pruneClock()
			repo := newRepo(t, be, clk).Repository
			for n := 1; n <= 3; n++ {
				writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n))
			}
			// No refresher: only Execute's own check can notice.
			plan, err := repository.PlanPrune(t.Context(), repo, repository.Policy{Last: 1},
				repository.PruneOptions{Lock: repository.LockOptions{NoRefresh: true}})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Report.Forgotten != 2 {
				t.Fatalf("plan %+v: want two backups to forget, or the test proves nothing", plan.Report)
			}
			tc.lose(t, clk, be)
			// Execute may remove its own expired lock object, nothing else.
			objects := func() int { return be.Count() - countLocks(t, be) }
			before := objects()
			rep, err := plan.Execute(t.Context())
			if !errors.Is(err, repository.ErrLockLost) || !strings.Contains(err.Error(), "nothing was deleted") {
				t.Fatalf("Execute = %v, want ErrLockLost saying nothing was deleted", err)
			}
			if objects() != before || rep.ManifestsDeleted != 0 || rep.ChunksDeleted != 0 {
				t.Fatalf("a plan without its lock deleted: %d objects, want %d; report %+v", objects(), before, rep)
			}
		})
	}
}

// Execute runs a plan once; Release gives a plan up and frees the lock
// without deleting.
func TestPrunePlanOnce(t *testing.T) {
	be := storagetest.NewMemory()
	repo := newRepo(t, be, pruneClock()).Repository
	for n := 1; n <= 3; n++ {
		writeBackup(t, repo, "vm-a", tenBackupTimes[n], tenBackupFiles(n))
	}
	before := be.Count()
	plan, err := repository.PlanPrune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if be.Count() != before || countLocks(t, be) != 0 {
		t.Fatalf("a released plan left %d objects (want %d) and %d locks", be.Count(), before, countLocks(t, be))
	}
	if _, err := plan.Execute(t.Context()); err == nil || be.Count() != before {
		t.Fatalf("Execute of a released plan = %v, %d objects; want an error and nothing deleted", err, be.Count())
	}

	plan, err = repository.PlanPrune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := plan.Execute(t.Context()); err != nil || rep.ManifestsDeleted != 2 {
		t.Fatalf("Execute = %+v, %v", rep, err)
	}
	if _, err := plan.Execute(t.Context()); err == nil {
		t.Fatal("a plan executed twice")
	}
	if n := countLocks(t, be); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}
