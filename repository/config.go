package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// FormatVersion is the repository format this package reads and writes.
const FormatVersion = 1

// DefaultChunkSize is the chunk size of new repositories: large enough that
// per-object overhead (an age header, one S3 request) stays small, small
// enough that a changed VMDK block re-uploads little.
const DefaultChunkSize = 4 << 20

// Chunk size bounds; powers of two only, so chunks align with VMDK grains.
const (
	MinChunkSize = 512 << 10
	MaxChunkSize = 64 << 20
)

const configName = "config"

// Errors callers test with errors.Is.
var (
	// ErrAlreadyInitialized: init found a repository (or other objects) at the location.
	ErrAlreadyInitialized = errors.New("repository already initialized")
	// ErrNotARepository: no config object at the location.
	ErrNotARepository = errors.New("not a vtpm-backup repository")
	// ErrUnsupportedVersion: the config names a format this build cannot read.
	ErrUnsupportedVersion = errors.New("unsupported repository format version")
	// ErrCorruptConfig: the config object cannot be parsed or is inconsistent.
	ErrCorruptConfig = errors.New("corrupt repository config")
	// ErrBadRecipient: a recipient is not an age public key.
	ErrBadRecipient = errors.New("invalid age recipient")
	// ErrBadChunkSize: the chunk size is out of range or not a power of two.
	ErrBadChunkSize = errors.New("invalid chunk size")
)

// Config is the repository's config object.
type Config struct {
	Version        int       `json:"version"`
	ID             string    `json:"id"`
	Created        time.Time `json:"created"`
	ChunkSize      int64     `json:"chunk_size"`
	ChunkHash      string    `json:"chunk_hash"`
	Compression    string    `json:"compression"`
	Encryption     string    `json:"encryption"`
	Recipients     []string  `json:"recipients"`
	ObjectLockDays int       `json:"object_lock_days,omitempty"`
}

// InitOptions are the choices made once, at init.
type InitOptions struct {
	// Recipients are age public keys (age1...); at least one.
	Recipients []string
	// ChunkSize defaults to DefaultChunkSize.
	ChunkSize int64
	// ObjectLockDays > 0 puts an S3 Object Lock retention of that many days
	// on every chunk and manifest; the backend must support it.
	ObjectLockDays int
	// Now overrides the clock (tests).
	Now func() time.Time
}

// Repository is an open repository. It is safe for concurrent use.
type Repository struct {
	be         storage.Backend
	cfg        Config
	recipients []age.Recipient
	identities []age.Identity
	// clock overrides time.Now for retention (tests); nil means time.Now.
	clock func() time.Time
}

// SetClock overrides the clock used for Object Lock retention dates, for
// tests that move time forward.
func (r *Repository) SetClock(now func() time.Time) { r.clock = now }

// ParseRecipients parses age public keys, naming the bad one in the error.
func ParseRecipients(recipients []string) ([]age.Recipient, error) {
	if len(recipients) == 0 {
		return nil, fmt.Errorf("%w: none given: pass --recipient age1... or --generate-identity FILE", ErrBadRecipient)
	}
	out := make([]age.Recipient, 0, len(recipients))
	for _, s := range recipients {
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(rs) != 1 {
			return nil, fmt.Errorf("%w: %q is not an age public key (age1...)", ErrBadRecipient, abbreviate(s))
		}
		out = append(out, rs[0])
	}
	return out, nil
}

// abbreviate keeps error messages short and never echoes a whole secret
// pasted by mistake (an AGE-SECRET-KEY- where a recipient belongs).
func abbreviate(s string) string {
	if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
		return "AGE-SECRET-KEY-… (a private key; use its public key)"
	}
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// ValidateChunkSize checks a chunk size for init.
func ValidateChunkSize(n int64) error {
	if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: %d: must be a power of two from 512KiB to 64MiB", ErrBadChunkSize, n)
	}
	return nil
}

// Init creates a repository on an empty location and returns it open.
func Init(ctx context.Context, be storage.Backend, opts InitOptions) (*Repository, error) {
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
	// Refuse anything already there, not only a config: a half-deleted
	// repository's chunks must not silently join a new one.
	found := ""
	err = be.List(ctx, "", func(fi storage.ObjectInfo) error {
		found = fi.Name
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	if found != "" {
		return nil, fmt.Errorf("%w: %s already holds %q: choose an empty location, or use the existing repository", ErrAlreadyInitialized, be.Location(), found)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	idBytes := make([]byte, 16)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, err
	}
	cfg := Config{
		Version:        FormatVersion,
		ID:             hex.EncodeToString(idBytes),
		Created:        now().UTC(),
		ChunkSize:      opts.ChunkSize,
		ChunkHash:      "sha256",
		Compression:    "zstd",
		Encryption:     "age",
		Recipients:     opts.Recipients,
		ObjectLockDays: opts.ObjectLockDays,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
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
	return &Repository{be: be, cfg: cfg, recipients: recipients}, nil
}

var errStop = errors.New("stop listing")

// Open reads and validates the config of the repository at be.
func Open(ctx context.Context, be storage.Backend) (*Repository, error) {
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
	return &Repository{be: be, cfg: cfg, recipients: recipients}, nil
}

func parseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%w: %v (truncated or not JSON): restore the config object from a copy", ErrCorruptConfig, err)
	}
	if cfg.Version != FormatVersion {
		if cfg.Version > FormatVersion {
			return cfg, fmt.Errorf("%w: %d (this build reads %d): upgrade vtpm-backup", ErrUnsupportedVersion, cfg.Version, FormatVersion)
		}
		return cfg, fmt.Errorf("%w: version %d", ErrCorruptConfig, cfg.Version)
	}
	switch {
	case len(cfg.ID) != 32:
		return cfg, fmt.Errorf("%w: repository id %q", ErrCorruptConfig, cfg.ID)
	case cfg.ChunkHash != "sha256":
		return cfg, fmt.Errorf("%w: chunk hash %q not supported", ErrUnsupportedVersion, cfg.ChunkHash)
	case cfg.Compression != "zstd":
		return cfg, fmt.Errorf("%w: compression %q not supported", ErrUnsupportedVersion, cfg.Compression)
	case cfg.Encryption != "age":
		return cfg, fmt.Errorf("%w: encryption %q not supported", ErrUnsupportedVersion, cfg.Encryption)
	}
	if err := ValidateChunkSize(cfg.ChunkSize); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrCorruptConfig, err)
	}
	return cfg, nil
}

// Config returns a copy of the repository's config.
func (r *Repository) Config() Config {
	c := r.cfg
	c.Recipients = append([]string(nil), r.cfg.Recipients...)
	return c
}

// Backend returns the storage the repository lives on.
func (r *Repository) Backend() storage.Backend { return r.be }

// Location describes where the repository is, for messages.
func (r *Repository) Location() string { return r.be.Location() }

// SetIdentities gives the repository the private keys it needs to read
// chunks (restore, audit --read-data). Without them it can only write.
func (r *Repository) SetIdentities(ids []age.Identity) { r.identities = ids }

// HasIdentities reports whether chunks can be decrypted.
func (r *Repository) HasIdentities() bool { return len(r.identities) > 0 }
