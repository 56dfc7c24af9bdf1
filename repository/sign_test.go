package repository_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// genuineHistory writes two genuine backups of vm-a and returns them,
// oldest first.
func genuineHistory(t *testing.T, repo *repository.Repository) []*repository.Manifest {
	t.Helper()
	return []*repository.Manifest{
		writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1)),
		writeBackup(t, repo, "vm-a", tenBackupTimes[2], tenBackupFiles(2)),
	}
}

// openAs opens the repository on be as a reader with the given trust.
func openAs(t *testing.T, be storage.Backend, trust repository.Trust) *repository.Repository {
	t.Helper()
	r, err := repository.Open(t.Context(), be, repository.WithClock(pruneClock()))
	if err != nil {
		t.Fatal(err)
	}
	r.SetTrust(trust)
	return r
}

// wantRejected fails unless err is a *RejectedError of the kind.
func wantRejected(t *testing.T, what string, err error, id, kind string) {
	t.Helper()
	var re *repository.RejectedError
	if !errors.As(err, &re) || !errors.Is(err, repository.ErrRejected) {
		t.Fatalf("%s of %s = %v, want a rejection (%s)", what, id, err, kind)
	}
	if re.BackupID != id || re.Kind != kind || !strings.Contains(err.Error(), "REJECTED as "+kind) {
		t.Fatalf("%s of %s = %v (kind %s), want REJECTED as %s", what, id, err, re.Kind, kind)
	}
}

func TestSignedManifestRoundTrip(t *testing.T) {
	be := storagetest.NewMemory()
	repo := newRepo(t, be, pruneClock()).Repository
	m := writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	if _, err := be.Stat(t.Context(), repository.SignatureObjectName(m.BackupID)); err != nil {
		t.Fatalf("signature object: %v", err)
	}
	own := repo.WriterKey().Public()
	if got := repo.WriterKeys(); len(got) != 1 || got[0] != own {
		t.Fatalf("config writer keys %v, want the key Init generated %s", got, own)
	}
	tests := []struct {
		name           string
		reader         *repository.Repository
		wantFromConfig bool
	}{
		{"the writing host (own key)", repo, false},
		{"pinned", openAs(t, be, repository.Trust{Writers: []repository.WriterPublicKey{own}}), false},
		{"nothing pinned: config, flagged", openAs(t, be, repository.Trust{}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.reader.ReadManifest(t.Context(), m.BackupID)
			if err != nil {
				t.Fatal(err)
			}
			h, err := tc.reader.ReadManifestHeader(t.Context(), m.BackupID)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []repository.Authenticity{got.Auth, h.Auth} {
				if !a.Signed || a.Key != own || a.FromConfig != tc.wantFromConfig {
					t.Fatalf("authenticity %+v, want signed by %s, from config %v", a, own, tc.wantFromConfig)
				}
			}
			if h.VM.Name != "vm-a" || h.Summary != m.Summary {
				t.Fatalf("header %+v", h)
			}
		})
	}
}

// TestForgeriesRejectedOnEveryReadPath plants each forgery next to a
// genuine history and reads it every way the repository offers, as a
// reader that pins the genuine key and as one that (warned) trusts config.
func TestForgeriesRejectedOnEveryReadPath(t *testing.T) {
	for _, fg := range repotest.Forgeries() {
		for _, pinned := range []bool{true, false} {
			name := fg.Name + "/config trust"
			if pinned {
				name = fg.Name + "/pinned"
			}
			t.Run(name, func(t *testing.T) {
				be := storagetest.NewMemory()
				fx := newRepo(t, be, pruneClock())
				repo, k := fx.Repository, fx.Identity
				genuine := genuineHistory(t, repo)
				f, err := repotest.NewForger(t.Context(), be)
				if err != nil {
					t.Fatal(err)
				}
				planted, err := fg.Plant(t.Context(), f, genuine[1].BackupID)
				if err != nil {
					t.Fatal(err)
				}
				trust := repository.Trust{}
				if pinned {
					trust.Writers = []repository.WriterPublicKey{repo.WriterKey().Public()}
				}
				reader := openAs(t, be, trust)
				reader.SetIdentities([]age.Identity{k})
				checkRejectedEverywhere(t, reader, planted, fg.Kind, genuine)
			})
		}
	}
}

func checkRejectedEverywhere(t *testing.T, r *repository.Repository, planted, kind string, genuine []*repository.Manifest) {
	t.Helper()
	ctx := t.Context()
	_, err := r.ReadManifest(ctx, planted)
	wantRejected(t, "ReadManifest", err, planted, kind)
	var re *repository.RejectedError
	if errors.As(err, &re) && re.ClaimedVM != "vm-a" {
		t.Errorf("claimed VM %q, want vm-a", re.ClaimedVM)
	}
	_, err = r.ReadManifestHeader(ctx, planted)
	wantRejected(t, "ReadManifestHeader", err, planted, kind)
	res := r.ReadManifests(ctx, []string{planted})
	wantRejected(t, "ReadManifests", res[0].Err, planted, kind)

	cat, err := repository.LoadCatalog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	rej := cat.Rejected()
	if len(rej) != 1 || rej[0].ID != planted || rej[0].VM != "vm-a" || rej[0].Rejection().Kind != kind {
		t.Fatalf("catalog rejected %+v, want only %s", rej, planted)
	}
	// The newest genuine backup not overwritten by the attack.
	wantLatest := genuine[1].BackupID
	if planted == wantLatest {
		wantLatest = genuine[0].BackupID
	}
	if b, ok := cat.Latest("vm-a"); !ok || b.ID != wantLatest {
		t.Fatalf("latest of vm-a = %+v, want %s", b, wantLatest)
	}
	for _, b := range slices.Concat(cat.Backups("vm-a"), cat.All()) {
		if b.ID == planted {
			t.Fatalf("planted backup %s listed among genuine ones", planted)
		}
	}

	rep, err := repository.Prune(ctx, r, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if len(rep.Rejected) != 1 || rep.Rejected[0].BackupID != planted {
		t.Fatalf("prune rejected %v, want %s", rep.Rejected, planted)
	}
	for _, d := range rep.Decisions {
		if d.BackupID == planted {
			t.Fatalf("prune decided on the planted backup: %+v", d)
		}
		if d.Keep && d.BackupID != wantLatest {
			t.Fatalf("prune kept %s, want only %s", d.BackupID, wantLatest)
		}
	}
	if _, err := r.Backend().Stat(ctx, repository.ManifestObjectName(planted)); err != nil {
		t.Fatalf("prune deleted the rejected manifest (evidence): %v", err)
	}
	verifyRestorable(t, r, wantLatest)
}

// TestAllowUnsignedAcceptsOnlyUnsigned: --allow-unsigned is for
// repositories older than signing; a signature that is there must verify.
func TestAllowUnsignedAcceptsOnlyUnsigned(t *testing.T) {
	for _, fg := range repotest.Forgeries() {
		t.Run(fg.Name, func(t *testing.T) {
			be := storagetest.NewMemory()
			repo := newRepo(t, be, pruneClock()).Repository
			genuine := genuineHistory(t, repo)
			f, err := repotest.NewForger(t.Context(), be)
			if err != nil {
				t.Fatal(err)
			}
			planted, err := fg.Plant(t.Context(), f, genuine[1].BackupID)
			if err != nil {
				t.Fatal(err)
			}
			r := openAs(t, be, repository.Trust{Writers: []repository.WriterPublicKey{repo.WriterKey().Public()}, AllowUnsigned: true})
			m, err := r.ReadManifest(t.Context(), planted)
			if fg.Kind != repository.RejectUnsigned {
				wantRejected(t, "ReadManifest", err, planted, fg.Kind)
				return
			}
			if err != nil || m.Auth.Signed {
				t.Fatalf("unsigned backup with AllowUnsigned: %v, auth %+v; want accepted and marked unsigned", err, m)
			}
		})
	}
}

func TestSignatureDoesNotCarryToAnotherRepository(t *testing.T) {
	k, err := repository.GenerateWriterKey()
	if err != nil {
		t.Fatal(err)
	}
	a, b := storagetest.NewMemory(), storagetest.NewMemory()
	repoA, err := repository.Init(t.Context(), a, repository.InitOptions{Recipients: []string{newKey(t).recipient}, ChunkSize: chunkSize, WriterKey: k})
	if err != nil {
		t.Fatal(err)
	}
	repoB, err := repository.Init(t.Context(), b, repository.InitOptions{Recipients: []string{newKey(t).recipient}, ChunkSize: chunkSize, WriterKey: k})
	if err != nil {
		t.Fatal(err)
	}
	genuineHistory(t, repoA)
	m := writeBackup(t, repoB, "vm-a", tenBackupTimes[5], tenBackupFiles(5))
	for _, name := range []string{repository.ManifestObjectName(m.BackupID), repository.SignatureObjectName(m.BackupID)} {
		data, err := storage.ReadAll(t.Context(), b, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	_, err = repoA.ReadManifest(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifest", err, m.BackupID, repository.RejectForged)
	if !strings.Contains(err.Error(), "another repository") {
		t.Fatalf("%v: want the reason to say another repository", err)
	}
}

// TestHeaderAndWholeManifestDigests: the header is verified from a ranged
// read alone, and an edit after the header is caught by whole reads.
func TestHeaderAndWholeManifestDigests(t *testing.T) {
	mem := storagetest.NewMemory()
	rec := &getRecorder{Backend: mem}
	repo := newRepo(t, rec, pruneClock()).Repository
	m := writeBigManifest(t, repo, 20000) // about 3 MB of chunk lists
	name := repository.ManifestObjectName(m.BackupID)
	rec.reset()
	if _, err := repo.ReadManifestHeader(t.Context(), m.BackupID); err != nil {
		t.Fatal(err)
	}
	if got := rec.bytes(name); got <= 0 || got > 64<<10 {
		t.Fatalf("header read fetched %d bytes of the manifest, want a ranged read of at most 64 KiB", got)
	}

	// Edit a chunk list entry (not the header): the header still verifies,
	// the whole manifest does not.
	data, err := storage.ReadAll(t.Context(), mem, name)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(data, []byte(`"size":`))
	edited := append(append(append([]byte{}, data[:i]...), []byte(`"size": `)...), data[i+len(`"size":`):]...)
	if err := mem.Put(t.Context(), name, bytes.NewReader(edited), int64(len(edited))); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadManifestHeader(t.Context(), m.BackupID); err != nil {
		t.Fatalf("header of a manifest edited after its header: %v", err)
	}
	_, err = repo.ReadManifest(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifest", err, m.BackupID, repository.RejectForged)

	// Edit the header: both reads reject it.
	edited = bytes.Replace(data, []byte(`"name":"vm-big"`), []byte(`"name":"vm-bag"`), 1)
	if err := mem.Put(t.Context(), name, bytes.NewReader(edited), int64(len(edited))); err != nil {
		t.Fatal(err)
	}
	_, err = repo.ReadManifestHeader(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifestHeader", err, m.BackupID, repository.RejectForged)
	_, err = repo.ReadManifest(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifest", err, m.BackupID, repository.RejectForged)
}

// writeBigManifest writes a signed manifest whose disk lists n chunks (all
// sharing one stored chunk), so that its chunk lists dwarf its header.
func writeBigManifest(t testing.TB, repo *repository.Repository, n int) *repository.Manifest {
	t.Helper()
	c := chunkData("big", chunkSize)
	w := repo.NewChunkWriter()
	defer w.Close()
	ctx := context.Background()
	id := chunkOf(c)
	so, err := w.Put(ctx, id, c)
	if err != nil {
		t.Fatal(err)
	}
	nv := chunkData("nvram", 8<<10)
	nid := chunkOf(nv)
	nso, err := w.Put(ctx, nid, nv)
	if err != nil {
		t.Fatal(err)
	}
	chunks := make([]string, n)
	for i := range chunks {
		chunks[i] = id.String()
		if i%2 == 1 {
			chunks[i] = repository.ZeroChunk
		}
	}
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	m := &repository.Manifest{
		ManifestHeader: repository.ManifestHeader{BackupID: repository.NewBackupID(at), Started: at, Finished: at,
			VM: repository.VMInfo{Name: "vm-big", InstanceUUID: "uuid-big", VTPM: true}},
		Files: []repository.File{
			{Name: "big.nvram", Type: repository.FileNvram, Size: int64(len(nv)), SHA256: hexSum(nv), Chunks: []string{nid.String()}},
			{Name: "big-flat.vmdk", Type: repository.FileDiskExtent, Size: int64(n) * chunkSize, SHA256: strings.Repeat("0", 64), Chunks: chunks},
		},
		Objects: map[string]repository.StoredObject{id.String(): so, nid.String(): nso},
	}
	if err := repo.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// getRecorder counts the bytes read per object.
type getRecorder struct {
	storage.Backend
	mu   sync.Mutex
	read map[string]int64
}

func (g *getRecorder) reset() { g.mu.Lock(); g.read = map[string]int64{}; g.mu.Unlock() }

func (g *getRecorder) bytes(name string) int64 { g.mu.Lock(); defer g.mu.Unlock(); return g.read[name] }

func (g *getRecorder) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := g.Backend.Get(ctx, name, off, length)
	if err != nil {
		return rc, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	g.mu.Lock()
	if g.read != nil {
		g.read[name] += int64(len(data))
	}
	g.mu.Unlock()
	return io.NopCloser(bytes.NewReader(data)), err
}

func TestMissingSignature(t *testing.T) {
	be := storagetest.NewMemory()
	repo := newRepo(t, be, pruneClock()).Repository
	m := writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	if err := be.Delete(t.Context(), repository.SignatureObjectName(m.BackupID)); err != nil {
		t.Fatal(err)
	}
	_, err := repo.ReadManifest(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifest", err, m.BackupID, repository.RejectUnsigned)

	// A repository that predates writer keys: the reason says so.
	data, err := storage.ReadAll(t.Context(), be, "config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "writer_keys")
	data, _ = json.Marshal(cfg)
	if err := be.Put(t.Context(), "config", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	old := openAs(t, be, repository.Trust{})
	_, err = old.ReadManifestHeader(t.Context(), m.BackupID)
	wantRejected(t, "ReadManifestHeader", err, m.BackupID, repository.RejectUnsigned)
	if !strings.Contains(err.Error(), "--allow-unsigned") || !strings.Contains(err.Error(), "predates") {
		t.Fatalf("%v: want the remedy for an old repository", err)
	}
	old.SetTrust(repository.Trust{AllowUnsigned: true})
	h, err := old.ReadManifestHeader(t.Context(), m.BackupID)
	if err != nil || h.Auth.Signed {
		t.Fatalf("old repository with AllowUnsigned: %+v, %v", h, err)
	}
}

func TestWriteManifestNeedsWriterKey(t *testing.T) {
	be := storagetest.NewMemory()
	newRepo(t, be, nil)
	r := openAs(t, be, repository.Trust{})
	m := validManifest()
	if err := r.WriteManifest(t.Context(), m); !errors.Is(err, repository.ErrNoWriterKey) {
		t.Fatalf("WriteManifest without a writer key = %v, want ErrNoWriterKey", err)
	}
	if be.Count() != 1 {
		t.Fatalf("%d objects, want only the config", be.Count())
	}
}

// TestSignatureBeforeManifest: a backup that dies between the two writes
// leaves an orphan signature and no backup; prune removes the orphan once
// it is older than the grace period.
func TestSignatureBeforeManifest(t *testing.T) {
	mem := storagetest.NewMemory()
	be := storagetest.NewFaulty(mem)
	repo := newRepo(t, be, pruneClock()).Repository
	keep := writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))
	be.AddFault(func(op storagetest.Op, name string) error {
		if op == storagetest.OpPutIfAbsent && strings.HasSuffix(name, ".json") {
			return errors.New("connection reset")
		}
		return nil
	})
	m := validManifest()
	if err := repo.WriteManifest(t.Context(), m); err == nil {
		t.Fatal("WriteManifest succeeded through a failing put")
	}
	be.ClearFaults()
	if _, err := mem.Stat(t.Context(), repository.SignatureObjectName(m.BackupID)); err != nil {
		t.Fatalf("the signature was not written before the manifest: %v", err)
	}
	if ids, _ := repo.ListBackupIDs(t.Context()); len(ids) != 1 {
		t.Fatalf("backups %v, want only %s", ids, keep.BackupID)
	}
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 5}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SignaturesDeleted != 1 {
		t.Fatalf("prune removed %d signatures, want the orphan", rep.SignaturesDeleted)
	}
	if _, err := mem.Stat(t.Context(), repository.SignatureObjectName(keep.BackupID)); err != nil {
		t.Fatalf("prune removed the signature of a kept backup: %v", err)
	}
}

func TestPruneDeletesSignatureWithManifest(t *testing.T) {
	be := storagetest.NewMemory()
	fx := newRepo(t, be, pruneClock())
	repo, k := fx.Repository, fx.Identity
	repo.SetIdentities([]age.Identity{k})
	ms := genuineHistory(t, repo)
	rep, err := repository.Prune(t.Context(), repo, repository.Policy{Last: 1}, repository.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ManifestsDeleted != 1 || rep.SignaturesDeleted != 1 {
		t.Fatalf("report %+v: want one manifest and its signature deleted", rep)
	}
	if _, err := be.Stat(t.Context(), repository.SignatureObjectName(ms[0].BackupID)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("signature of the forgotten backup: %v", err)
	}
	verifyRestorable(t, repo, ms[1].BackupID)
}

func TestWriterKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "writer.key")
	k, err := repository.GenerateWriterKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := repository.WriteWriterKeyFile(path, k, strings.Repeat("ab", 16), now); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("writer key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if err := repository.WriteWriterKeyFile(path, k, "x", now); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second write = %v, want a refusal", err)
	}
	got, err := repository.LoadWriterKeyFile(path)
	if err != nil || got.Public() != k.Public() {
		t.Fatalf("LoadWriterKeyFile = %v, %v", got, err)
	}
	// A writer key file given to --trust-writer pins its public key.
	pins, err := repository.ParseTrustedWriter(path)
	if err != nil || len(pins) != 1 || pins[0] != k.Public() {
		t.Fatalf("ParseTrustedWriter(key file) = %v, %v", pins, err)
	}
	pins, err = repository.ParseTrustedWriter(k.Public().String())
	if err != nil || len(pins) != 1 || pins[0] != k.Public() {
		t.Fatalf("ParseTrustedWriter(key) = %v, %v", pins, err)
	}

	// The identity file pins the writer key in a comment age ignores.
	idPath := filepath.Join(dir, "identity.txt")
	if _, err := repository.GenerateIdentityFile(idPath, now, k.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := repository.LoadIdentityFile(idPath); err != nil {
		t.Fatalf("identity file with a pin line: %v", err)
	}
	pins, err = repository.IdentityFileWriterKeys(idPath)
	if err != nil || len(pins) != 1 || pins[0] != k.Public() {
		t.Fatalf("IdentityFileWriterKeys = %v, %v", pins, err)
	}

	secret := strings.TrimSpace(lastLine(t, path))
	bad := []struct{ name, content, want string }{
		{"empty", "# nothing\n", "no VTPM-BACKUP-WRITER-KEY-1"},
		{"short seed", "VTPM-BACKUP-WRITER-KEY-1:AAAA\n", "seed"},
		{"two keys", secret + "\n" + secret + "\n", "exactly one"},
	}
	for _, tc := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := repository.LoadWriterKeyFile(p)
		if !errors.Is(err, repository.ErrBadWriterKey) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret[25:]) {
			t.Errorf("%s: %v, want ErrBadWriterKey mentioning %q and no key material", tc.name, err, tc.want)
		}
	}
	for _, s := range []string{"", "ed25519:", "ed25519:AAAA", "age1xyz", secret} {
		if _, err := repository.ParseWriterPublicKey(s); !errors.Is(err, repository.ErrBadWriterKey) || (s == secret && strings.Contains(err.Error(), secret[25:])) {
			t.Errorf("ParseWriterPublicKey(%.30q) = %v", s, err)
		}
	}
	if _, err := repository.ParseTrustedWriter(idPath + ".missing"); err == nil {
		t.Error("ParseTrustedWriter of a missing file succeeded")
	}
	if _, err := repository.ParseTrustedWriter(filepath.Join(dir, "empty")); !errors.Is(err, repository.ErrBadWriterKey) {
		t.Errorf("a file that pins nothing: %v, want ErrBadWriterKey", err)
	}
}

func lastLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

// TestWriterKeyRotation: adding a key keeps both valid; replacing one
// makes the old key's host refuse to back up, and readers trust what each
// key signed only as far as they pin it.
func TestWriterKeyRotation(t *testing.T) {
	be := storagetest.NewMemory()
	repo := newRepo(t, be, pruneClock()).Repository
	oldKey := repo.WriterKey()
	old := writeBackup(t, repo, "vm-a", tenBackupTimes[1], tenBackupFiles(1))

	newKey, err := repository.GenerateWriterKey()
	if err != nil {
		t.Fatal(err)
	}
	admin := openAs(t, be, repository.Trust{})
	keys, err := admin.AddWriterKey(t.Context(), newKey.Public(), false)
	if err != nil || len(keys) != 2 {
		t.Fatalf("AddWriterKey = %v, %v; want both keys", keys, err)
	}
	host2 := openAs(t, be, repository.Trust{})
	host2.SetWriterKey(newKey)
	if err := host2.CheckWriterKey(); err != nil {
		t.Fatalf("CheckWriterKey of the added key: %v", err)
	}
	fresh := writeBackup(t, host2, "vm-a", tenBackupTimes[2], tenBackupFiles(2))

	if keys, err = admin.AddWriterKey(t.Context(), newKey.Public(), true); err != nil || len(keys) != 1 || keys[0] != newKey.Public() {
		t.Fatalf("AddWriterKey --replace = %v, %v", keys, err)
	}
	host1 := openAs(t, be, repository.Trust{})
	host1.SetWriterKey(oldKey)
	if err := host1.CheckWriterKey(); !errors.Is(err, repository.ErrWriterKeyNotListed) {
		t.Fatalf("CheckWriterKey of a replaced key = %v, want ErrWriterKeyNotListed", err)
	}
	pinNew := openAs(t, be, repository.Trust{Writers: []repository.WriterPublicKey{newKey.Public()}})
	if _, err := pinNew.ReadManifest(t.Context(), fresh.BackupID); err != nil {
		t.Fatal(err)
	}
	_, err = pinNew.ReadManifest(t.Context(), old.BackupID)
	wantRejected(t, "ReadManifest", err, old.BackupID, repository.RejectForeign)
	pinBoth := openAs(t, be, repository.Trust{Writers: []repository.WriterPublicKey{oldKey.Public(), newKey.Public()}})
	if _, err := pinBoth.ReadManifest(t.Context(), old.BackupID); err != nil {
		t.Fatalf("old backup, old key pinned: %v", err)
	}
}

// FuzzParseSignature: no input makes the parser panic, and no signature
// object other than the genuine one (up to JSON formatting) gets a
// manifest accepted.
func FuzzParseSignature(f *testing.F) {
	be := storagetest.NewMemory()
	repo, err := repository.Init(context.Background(), be, repository.InitOptions{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}, ChunkSize: chunkSize})
	if err != nil {
		f.Fatal(err)
	}
	m := validManifest()
	if err := repo.WriteManifest(context.Background(), m); err != nil {
		f.Fatal(err)
	}
	sigName := repository.SignatureObjectName(m.BackupID)
	genuine, err := storage.ReadAll(context.Background(), be, sigName)
	if err != nil {
		f.Fatal(err)
	}
	want, err := repository.ParseSignature(genuine)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:len(genuine)/2])
	f.Add(bytes.Replace(genuine, []byte(`"version": 1`), []byte(`"version": 2`), 1))
	f.Add([]byte(`{"version":1,"algorithm":"ed25519","signature":"` + strings.Repeat("A", 86) + `=="}`))
	f.Add([]byte("null"))
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := repository.ParseSignature(data)
		if err != nil {
			if !errors.Is(err, repository.ErrBadSignature) {
				t.Fatalf("ParseSignature error %v does not wrap ErrBadSignature", err)
			}
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repository.ParseSignature(again); err != nil {
			t.Fatalf("a parsed signature does not parse again: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := be.Put(context.Background(), sigName, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		_, err = repo.ReadManifest(context.Background(), m.BackupID)
		same := s.Sig == want.Sig && s.Key == want.Key && s.Manifest == want.Manifest && s.Header == want.Header &&
			s.BackupID == want.BackupID && s.Repository == want.Repository
		if err == nil && !same {
			t.Fatalf("manifest accepted with a signature object that is not the genuine one: %q", data)
		}
		if err != nil && same {
			t.Fatalf("manifest rejected with the genuine signature reformatted: %v", err)
		}
	})
}
