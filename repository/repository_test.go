package repository_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

type keyPair struct {
	id        *age.X25519Identity
	recipient string
}

func newKey(t *testing.T) keyPair {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{id: id, recipient: id.Recipient().String()}
}

// newRepo is a fresh repository with the tests' chunkSize on be, reading
// time from clk (nil: the system clock).
func newRepo(t *testing.T, be storage.Backend, clk clock.Clock) *repotest.Repo {
	t.Helper()
	return repotest.New(t, repotest.Options{Backend: be, ChunkSize: chunkSize, Clock: clk})
}

func TestInitOpen(t *testing.T) {
	created := time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC)
	f := repotest.New(t, repotest.Options{ChunkSize: chunkSize, Clock: clock.NewFake(created)})
	be := f.Backend
	cfg := f.Config()
	if cfg.Version != 1 || len(cfg.ID) != 32 || cfg.ChunkSize != chunkSize || cfg.Recipients[0] != f.Recipient || !cfg.Created.Equal(created) {
		t.Fatalf("config %+v", cfg)
	}
	if !strings.HasPrefix(be.Location(), "/") {
		t.Fatalf("repotest.New without a backend is at %q, want a local directory", be.Location())
	}
	r2, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if r2.Config().ID != cfg.ID {
		t.Fatalf("reopened ID %s, want %s", r2.Config().ID, cfg.ID)
	}
	_, err = repository.Init(t.Context(), be, repository.InitOptions{Recipients: []string{f.Recipient}})
	if !errors.Is(err, repository.ErrAlreadyInitialized) || !strings.Contains(err.Error(), be.Location()) {
		t.Fatalf("second Init = %v, want ErrAlreadyInitialized naming the location", err)
	}
}

func TestInitRefusesNonEmpty(t *testing.T) {
	be := storagetest.NewMemory()
	if err := be.Put(t.Context(), "data/00/leftover", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	_, err := repository.Init(t.Context(), be, repository.InitOptions{Recipients: []string{newKey(t).recipient}})
	if !errors.Is(err, repository.ErrAlreadyInitialized) {
		t.Fatalf("Init over leftovers = %v", err)
	}
}

func TestInitBadInput(t *testing.T) {
	good := newKey(t).recipient
	tests := []struct {
		name string
		opts repository.InitOptions
		want error
	}{
		{"no recipient", repository.InitOptions{}, repository.ErrBadRecipient},
		{"garbage recipient", repository.InitOptions{Recipients: []string{"age1notakey"}}, repository.ErrBadRecipient},
		{"secret key as recipient", repository.InitOptions{Recipients: []string{newKey(t).id.String()}}, repository.ErrBadRecipient},
		{"ssh key", repository.InitOptions{Recipients: []string{"ssh-ed25519 AAAA"}}, repository.ErrBadRecipient},
		{"chunk too small", repository.InitOptions{Recipients: []string{good}, ChunkSize: 4096}, repository.ErrBadChunkSize},
		{"chunk not power of two", repository.InitOptions{Recipients: []string{good}, ChunkSize: 3 << 20}, repository.ErrBadChunkSize},
		{"chunk too large", repository.InitOptions{Recipients: []string{good}, ChunkSize: 128 << 20}, repository.ErrBadChunkSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := storagetest.NewMemory()
			_, err := repository.Init(t.Context(), be, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Init = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY-1") {
				t.Fatalf("error echoes a secret key: %v", err)
			}
			if _, err := be.Stat(t.Context(), "config"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("a refused init left a config behind")
			}
		})
	}
	// Object lock needs a backend that can retain.
	_, err := repository.Init(t.Context(), storagetest.NewMemory(), repository.InitOptions{Recipients: []string{good}, ObjectLockDays: 7})
	if err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("Init with object lock on memory = %v", err)
	}
}

func TestOpenBadConfig(t *testing.T) {
	good := newKey(t).recipient
	valid := `{"version":1,"id":"0123456789abcdef0123456789abcdef","chunk_size":4194304,"chunk_hash":"sha256","compression":"zstd","encryption":"age","recipients":["` + good + `"]}`
	tests := []struct {
		name   string
		config string
		want   error
	}{
		{"missing", "", repository.ErrNotARepository},
		{"truncated", valid[:40], repository.ErrCorruptConfig},
		{"not json", "hello", repository.ErrCorruptConfig},
		{"future version", strings.Replace(valid, `"version":1`, `"version":2`, 1), repository.ErrUnsupportedVersion},
		{"zero version", strings.Replace(valid, `"version":1`, `"version":0`, 1), repository.ErrCorruptConfig},
		{"bad chunk size", strings.Replace(valid, "4194304", "1000", 1), repository.ErrCorruptConfig},
		{"bad hash", strings.Replace(valid, `"sha256"`, `"md5"`, 1), repository.ErrUnsupportedVersion},
		{"bad recipient", strings.Replace(valid, good, "age1bogus", 1), repository.ErrCorruptConfig},
		{"bad id", strings.Replace(valid, "0123456789abcdef0123456789abcdef", "x", 1), repository.ErrCorruptConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := storagetest.NewMemory()
			if tc.config != "" {
				if err := be.Put(t.Context(), "config", strings.NewReader(tc.config), int64(len(tc.config))); err != nil {
					t.Fatal(err)
				}
			}
			_, err := repository.Open(t.Context(), be)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func chunkOf(b []byte) repository.ChunkID { return sha256.Sum256(b) }

func TestChunkRoundTrip(t *testing.T) {
	be := storagetest.NewMemory()
	f := newRepo(t, be, nil)
	r := f.Repository
	w := r.NewChunkWriter()
	defer w.Close()
	data := storagetest.Random(1, 1<<20)
	copy(data[:4096], bytes.Repeat([]byte("compressible "), 400))
	id := chunkOf(data)
	so, err := w.Put(t.Context(), id, data)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	fi, err := be.Stat(t.Context(), repository.ChunkObjectName(id))
	if err != nil || fi.Size != so.StoredSize || so.Size != int64(len(data)) {
		t.Fatalf("stored object %+v, %v; described %+v", fi, err, so)
	}
	if !strings.HasPrefix(repository.ChunkObjectName(id), "data/"+id.String()[:2]+"/") {
		t.Fatalf("object name %s", repository.ChunkObjectName(id))
	}

	rd := r.NewChunkReader()
	defer rd.Close()
	if _, err := rd.Read(t.Context(), id, &so, nil); !errors.Is(err, repository.ErrNoIdentity) {
		t.Fatalf("Read without identity = %v, want ErrNoIdentity", err)
	}
	if err := rd.VerifyStored(t.Context(), id, so); err != nil {
		t.Fatalf("VerifyStored needs no identity: %v", err)
	}
	r.SetIdentities([]age.Identity{newKey(t).id})
	if _, err := rd.Read(t.Context(), id, &so, nil); !errors.Is(err, repository.ErrWrongIdentity) {
		t.Fatalf("Read with a wrong identity = %v, want ErrWrongIdentity", err)
	}
	r.SetIdentities(f.Identities())
	got, err := rd.Read(t.Context(), id, &so, make([]byte, 0, 1<<20))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read = %d bytes, %v", len(got), err)
	}

	// Writing the same chunk again keeps the first object and describes it.
	before := be.Count()
	so2, err := w.Put(t.Context(), id, data)
	if err != nil || so2 != so {
		t.Fatalf("second Put = %+v, %v; want %+v", so2, err, so)
	}
	if be.Count() != before {
		t.Fatalf("second Put changed the object count")
	}
}

func TestChunkCorruption(t *testing.T) {
	be := storagetest.NewMemory()
	r := repotest.New(t, repotest.Options{Backend: be, ChunkSize: chunkSize, Decrypt: true}).Repository
	w := r.NewChunkWriter()
	defer w.Close()
	a, b := storagetest.Random(2, 1000), storagetest.Random(3, 1000)
	ida, idb := chunkOf(a), chunkOf(b)
	soa, err := w.Put(t.Context(), ida, a)
	if err != nil {
		t.Fatal(err)
	}
	// Object b holds a's content: decrypts fine, but does not match its ID.
	enc, err := w.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(t.Context(), repository.ChunkObjectName(idb), bytes.NewReader(enc), int64(len(enc))); err != nil {
		t.Fatal(err)
	}
	rd := r.NewChunkReader()
	defer rd.Close()
	if _, err := rd.Read(t.Context(), idb, nil, nil); !errors.Is(err, repository.ErrChunkCorrupt) || !strings.Contains(err.Error(), idb.String()) {
		t.Fatalf("Read of mismatched content = %v, want ErrChunkCorrupt naming %s", err, idb)
	}
	// A flipped byte: storage corruption with the manifest's record,
	// a decryption failure without it.
	if err := be.Corrupt(repository.ChunkObjectName(ida), 200); err != nil {
		t.Fatal(err)
	}
	if err := rd.VerifyStored(t.Context(), ida, soa); !errors.Is(err, repository.ErrObjectCorrupt) {
		t.Fatalf("VerifyStored of flipped byte = %v", err)
	}
	if _, err := rd.Read(t.Context(), ida, &soa, nil); !errors.Is(err, repository.ErrObjectCorrupt) {
		t.Fatalf("Read with record of flipped byte = %v", err)
	}
	if _, err := rd.Read(t.Context(), ida, nil, nil); !errors.Is(err, repository.ErrChunkCorrupt) {
		t.Fatalf("Read without record of flipped byte = %v", err)
	}
	if _, err := rd.Read(t.Context(), chunkOf([]byte("never stored")), nil, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Read of missing chunk = %v, want ErrNotFound", err)
	}
}

func TestIsZero(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, 1 << 20} {
		b := make([]byte, n)
		if !repository.IsZero(b) {
			t.Errorf("IsZero(%d zero bytes) = false", n)
		}
		if n > 0 {
			b[n-1] = 1
			if repository.IsZero(b) {
				t.Errorf("IsZero with last byte set (n=%d) = true", n)
			}
			b[n-1], b[0] = 0, 1
			if repository.IsZero(b) {
				t.Errorf("IsZero with first byte set (n=%d) = true", n)
			}
		}
	}
}

func TestIdentityFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "id.txt")
	pub, err := repository.GenerateIdentityFile(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, %v", fi.Mode(), err)
	}
	if _, err := repository.ParseRecipients([]string{pub}); err != nil {
		t.Fatalf("generated public key %q: %v", pub, err)
	}
	ids, err := repository.LoadIdentityFile(p)
	if err != nil || len(ids) != 1 {
		t.Fatalf("LoadIdentityFile = %v, %v", ids, err)
	}
	if _, err := repository.GenerateIdentityFile(p, time.Now()); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwriting an identity = %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := repository.LoadIdentityFile(bad); err == nil {
		t.Fatal("LoadIdentityFile of garbage succeeded")
	}
	if _, err := repository.LoadIdentityFile(""); !errors.Is(err, repository.ErrNoIdentity) {
		t.Fatalf("LoadIdentityFile(\"\") = %v", err)
	}
}

// The constructor's context must not be kept: open with a cancelled one,
// then use the repository.
func TestOpenWithCancelledContext(t *testing.T) {
	be := storagetest.NewMemory()
	newRepo(t, be, nil)
	ctx, cancel := context.WithCancel(t.Context())
	r, err := repository.Open(ctx, be)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewChunkWriter()
	defer w.Close()
	if _, err := w.Put(t.Context(), chunkOf([]byte("x")), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// closeCounter counts Close calls and fails them with err.
type closeCounter struct {
	storage.Backend
	closed int
	err    error
}

func (c *closeCounter) Close() error { c.closed++; return c.err }

// Close releases the storage once, however often it is called, and says
// which repository failed to close.
func TestClose(t *testing.T) {
	for _, fail := range []error{nil, errors.New("connection reset")} {
		be := &closeCounter{Backend: storagetest.NewMemory(), err: fail}
		r := newRepo(t, be, nil)
		err := r.Close()
		if !errors.Is(err, fail) || (fail != nil && !strings.Contains(err.Error(), be.Location())) {
			t.Fatalf("Close = %v, want %v naming %s", err, fail, be.Location())
		}
		if again := r.Close(); !errors.Is(again, fail) || be.closed != 1 {
			t.Fatalf("second Close = %v after %d backend closes, want the first result and one close", again, be.closed)
		}
	}
}
