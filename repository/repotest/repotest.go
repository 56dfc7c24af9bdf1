// Package repotest gives tests a fresh repository and the keys that open it
// (restic's TestRepository): one place instead of a hand-rolled Init in
// every test file. Forger plays an attacker who holds only the bucket's
// credentials, and Forgeries lists the planted backups every reader must
// reject (forge.go). It is for tests only; production code never imports it.
package repotest

import (
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// Options tune New. The zero value is a repository in a fresh local
// directory with the default chunk size, on the system clock, that can
// write but not read (like a backup host's).
type Options struct {
	// Backend holds the repository; nil means storage/local in a new
	// t.TempDir(). Tests that count or fail requests pass their own.
	Backend storage.Backend
	// ChunkSize, ObjectLockDays: as repository.InitOptions.
	ChunkSize      int64
	ObjectLockDays int
	// Clock is the repository's clock; nil means the system clock.
	Clock clock.Clock
	// Decrypt gives the repository the identity, as restore and audit
	// --read-data have it.
	Decrypt bool
}

// Repo is a fresh repository with what tests need around it.
type Repo struct {
	*repository.Repository
	// Backend is the storage the repository lives on.
	Backend storage.Backend
	// Identity is the private key of the repository's only recipient.
	Identity *age.X25519Identity
	// Recipient is Identity's public key (age1...).
	Recipient string
}

// New initialises a repository as opts say and closes it when the test
// ends. It fails the test on any error.
func New(t testing.TB, opts Options) *Repo {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatalf("repotest: generate identity: %v", err)
	}
	be := opts.Backend
	if be == nil {
		if be, err = local.New(t.TempDir()); err != nil {
			t.Fatalf("repotest: local backend: %v", err)
		}
	}
	repo, err := repository.Init(t.Context(), be, repository.InitOptions{
		Recipients:     []string{id.Recipient().String()},
		ChunkSize:      opts.ChunkSize,
		ObjectLockDays: opts.ObjectLockDays,
	}, repository.WithClock(opts.Clock))
	if err != nil {
		t.Fatalf("repotest: init repository: %v", err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	r := &Repo{Repository: repo, Backend: be, Identity: id, Recipient: id.Recipient().String()}
	if opts.Decrypt {
		repo.SetIdentities(r.Identities())
	}
	return r
}

// Identities returns the identity as SetIdentities takes it.
func (r *Repo) Identities() []age.Identity { return []age.Identity{r.Identity} }

// Open opens the repository again on the same storage, as another process
// or host would: its own clock (nil: the system clock), no identities.
// The Backend is shared, so Close of either handle closes it for both; the
// second handle is not closed by the fixture.
func (r *Repo) Open(t testing.TB, clk clock.Clock) *repository.Repository {
	t.Helper()
	repo, err := repository.Open(t.Context(), r.Backend, repository.WithClock(clk))
	if err != nil {
		t.Fatalf("repotest: open repository: %v", err)
	}
	return repo
}

// IdentityFile writes the identity to a new file (mode 0600) in a
// t.TempDir() and returns its path, for code that takes --identity FILE.
func (r *Repo) IdentityFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(path, []byte(r.Identity.String()+"\n"), 0o600); err != nil {
		t.Fatalf("repotest: write identity file: %v", err)
	}
	return path
}
