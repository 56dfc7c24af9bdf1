package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Repository is an open repository: its config, the storage it lives on,
// the recipients it encrypts to and, for readers, the identities that
// decrypt. It is safe for concurrent use; Close releases the storage.
type Repository struct {
	be         storage.Backend
	cfg        Config
	recipients []age.Recipient
	identities []age.Identity
	// writers are the config's writer keys, parsed.
	writers []WriterPublicKey
	// writer signs manifests (nil: this Repository cannot commit backups).
	writer *WriterKey
	// trust is what readers accept.
	trust Trust
	// clk is the repository's one clock: lock times and expiry, Object
	// Lock retention dates, prune's grace period and policy.
	clk clock.Clock
	// host identifies lock holders and tells which of this host's are
	// gone.
	host      Host
	closeOnce sync.Once
	closeErr  error
}

// Option configures a Repository at Init or Open.
type Option func(*Repository)

// WithClock makes the repository read time from c instead of the system
// clock, so tests can move time forward (lock expiry, retention, grace)
// without sleeping.
func WithClock(c clock.Clock) Option {
	return func(r *Repository) {
		if c != nil {
			r.clk = c
		}
	}
}

func newRepository(be storage.Backend, cfg Config, recipients []age.Recipient, options []Option) *Repository {
	r := &Repository{be: be, cfg: cfg, recipients: recipients, clk: clock.Real(), host: LocalHost()}
	for _, o := range options {
		o(r)
	}
	return r
}

// Init creates a repository on an empty location and returns it open. The
// repository owns be from then on: Close closes it. On error be is left to
// the caller.
func Init(ctx context.Context, be storage.Backend, opts InitOptions, options ...Option) (*Repository, error) {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if err := ValidateChunkSize(opts.ChunkSize); err != nil {
		return nil, err
	}
	if opts.ObjectLockDays < 0 {
		return nil, fmt.Errorf("object lock days %d: must not be negative", opts.ObjectLockDays)
	}
	recipients, err := ParseRecipients(opts.Recipients)
	if err != nil {
		return nil, err
	}
	if opts.ObjectLockDays > 0 {
		if _, ok := be.(storage.Retainer); !ok {
			return nil, fmt.Errorf("--object-lock-days needs an S3 repository on a bucket with Object Lock enabled; %s cannot retain objects", be.Location())
		}
	}
	if err := ensureEmpty(ctx, be); err != nil {
		return nil, err
	}
	r := newRepository(be, Config{}, recipients, options)
	if opts.ID == "" {
		opts.ID = NewRepositoryID()
	} else if !isLowerHex(opts.ID, 32) {
		return nil, fmt.Errorf("repository id %q: want 32 lowercase hex digits", opts.ID)
	}
	if opts.WriterKey == nil {
		if opts.WriterKey, err = GenerateWriterKey(); err != nil {
			return nil, err
		}
	}
	r.writer = opts.WriterKey
	r.writers = []WriterPublicKey{r.writer.Public()}
	r.cfg = Config{
		Version:        FormatVersion,
		ID:             opts.ID,
		Created:        r.clk.Now().UTC(),
		ChunkSize:      opts.ChunkSize,
		ChunkHash:      "sha256",
		Compression:    "zstd",
		Encryption:     "age",
		Recipients:     opts.Recipients,
		ObjectLockDays: opts.ObjectLockDays,
		WriterKeys:     []string{r.writer.Public().String()},
	}
	data, err := json.MarshalIndent(r.cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := be.PutIfAbsent(ctx, configName, bytes.NewReader(data), int64(len(data))); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("%w: %s: another init won the race", ErrAlreadyInitialized, be.Location())
		}
		return nil, fmt.Errorf("init %s: write config: %w", be.Location(), err)
	}
	return r, nil
}

// NewRepositoryID returns a new random repository ID.
func NewRepositoryID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b)
}

// ensureEmpty refuses anything already at the location, not only a
// config: a half-deleted repository's chunks must not silently join a new
// one.
func ensureEmpty(ctx context.Context, be storage.Backend) error {
	found := ""
	err := be.List(ctx, "", func(fi storage.ObjectInfo) error {
		found = fi.Name
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("init %s: %w", be.Location(), err)
	}
	if found != "" {
		return fmt.Errorf("%w: %s already holds %q: choose an empty location, or use the existing repository", ErrAlreadyInitialized, be.Location(), found)
	}
	return nil
}

var errStop = errors.New("stop listing")

// Open reads and validates the config of the repository at be. The
// repository owns be from then on: Close closes it. On error be is left to
// the caller.
func Open(ctx context.Context, be storage.Backend, options ...Option) (*Repository, error) {
	data, err := storage.ReadAll(ctx, be, configName)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: no config at %s: check --repo, or run 'vtpm-backup init' there first", ErrNotARepository, be.Location())
		}
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), err)
	}
	recipients, err := ParseRecipients(cfg.Recipients)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w: %w", be.Location(), ErrCorruptConfig, err)
	}
	writers, err := parseWriterKeys(cfg.WriterKeys)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w: %w", be.Location(), ErrCorruptConfig, err)
	}
	r := newRepository(be, cfg, recipients, options)
	r.writers = writers
	return r, nil
}

// Close releases what the repository holds: it closes the storage backend
// (an S3 client's connections). Locks are not released by Close (Unlock them
// first; a lock left behind expires by itself). Later calls return the
// first call's result.
func (r *Repository) Close() error {
	r.closeOnce.Do(func() {
		if err := r.be.Close(); err != nil {
			r.closeErr = fmt.Errorf("close repository %s: %w", r.be.Location(), err)
		}
	})
	return r.closeErr
}

// Config returns a copy of the repository's config.
func (r *Repository) Config() Config {
	c := r.cfg
	c.Recipients = append([]string(nil), r.cfg.Recipients...)
	c.WriterKeys = append([]string(nil), r.cfg.WriterKeys...)
	return c
}

// Backend returns the storage the repository lives on.
func (r *Repository) Backend() storage.Backend { return r.be }

// Location describes where the repository is, for messages.
func (r *Repository) Location() string { return r.be.Location() }

// Clock returns the repository's clock, so the jobs working on it (backup,
// audit) read the same time as its locks and retention.
func (r *Repository) Clock() clock.Clock { return r.clk }

// SetIdentities gives the repository the private keys it needs to read
// chunks (restore, audit --read-data). Without them it can only write.
func (r *Repository) SetIdentities(ids []age.Identity) { r.identities = ids }

// HasIdentities reports whether chunks can be decrypted.
func (r *Repository) HasIdentities() bool { return len(r.identities) > 0 }
