package repository

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
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
	// WriterKeys are the public keys of the writer keys backups are signed
	// with (WriterPublicKey text form). Readers trust them only when no key
	// is pinned, and then with a warning: the bucket is not a trust anchor.
	WriterKeys []string `json:"writer_keys,omitempty"`
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
	// ID is the new repository's ID (NewRepositoryID); empty means a new
	// random one. Callers that name files after the repository (the writer
	// key file) choose it first.
	ID string
	// WriterKey signs the repository's backups; its public key goes into
	// the config. Nil means a new key is generated: the caller must save
	// it (WriterKey()) if backups are to be signed after this Repository
	// is gone.
	WriterKey *WriterKey
}

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
