package repository

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Writer keys authenticate backups. The age recipients in config are
// public, so anyone who can write to the bucket can store chunks that
// decrypt correctly; what they cannot do without a writer key is sign a
// manifest. Backup hosts sign with the private key (a file, like restic's
// password file); restores, audits and listings verify with public keys
// pinned outside the bucket.

// Errors about writer keys.
var (
	// ErrBadWriterKey: a string or file is not a writer key.
	ErrBadWriterKey = errors.New("invalid writer key")
	// ErrNoWriterKey: a backup would have to sign and has no writer key.
	ErrNoWriterKey = errors.New("no writer key")
)

// writerPublicPrefix starts the text form of a writer public key; naming
// the algorithm leaves room for another one later.
const writerPublicPrefix = "ed25519:"

// writerSecretPrefix starts the line of a writer key file that holds the
// private key (its Ed25519 seed), in the style of age's AGE-SECRET-KEY-.
const writerSecretPrefix = "VTPM-BACKUP-WRITER-KEY-1:"

// writerPinPrefix starts the comment line of an identity file (or any pin
// file) that pins a writer public key.
const writerPinPrefix = "# writer key:"

// WriterPublicKey is the public half of a writer key: what readers pin.
type WriterPublicKey [ed25519.PublicKeySize]byte

// String returns the text form, ed25519:<base64url>.
func (k WriterPublicKey) String() string {
	return writerPublicPrefix + base64.RawURLEncoding.EncodeToString(k[:])
}

// PinLine is the line that pins k in an identity file or a file given to
// --trust-writer.
func (k WriterPublicKey) PinLine() string { return writerPinPrefix + " " + k.String() }

// ParseWriterPublicKey parses the text form of a writer public key.
func ParseWriterPublicKey(s string) (WriterPublicKey, error) {
	var k WriterPublicKey
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), writerPublicPrefix)
	if !ok {
		if strings.HasPrefix(strings.TrimSpace(s), writerSecretPrefix) {
			return k, fmt.Errorf("%w: a private writer key was given where its public key belongs", ErrBadWriterKey)
		}
		return k, fmt.Errorf("%w: %q does not start with %s", ErrBadWriterKey, abbreviate(s), writerPublicPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("%w: %q is not a %d-byte Ed25519 public key", ErrBadWriterKey, abbreviate(s), len(k))
	}
	copy(k[:], raw)
	return k, nil
}

// WriterKey is a backup host's signing key.
type WriterKey struct {
	priv ed25519.PrivateKey
}

// GenerateWriterKey returns a new random writer key.
func GenerateWriterKey() (*WriterKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate writer key: %w", err)
	}
	return &WriterKey{priv: priv}, nil
}

// Public returns the key's public half.
func (k *WriterKey) Public() WriterPublicKey {
	var p WriterPublicKey
	copy(p[:], k.priv.Public().(ed25519.PublicKey))
	return p
}

// sign signs msg.
func (k *WriterKey) sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// WriteWriterKeyFile stores k in a new file with mode 0600, never
// overwriting one: a replaced writer key would leave the backups it signed
// trusted by nobody who pinned the old one. The comments name the
// repository and the public key, so the file explains itself.
func WriteWriterKeyFile(path string, k *WriterKey, repoID string, now time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("writer key file %s already exists: refusing to overwrite a private key; choose another path", path)
		}
		return fmt.Errorf("writer key file %s: %w", path, err)
	}
	content := fmt.Sprintf("# vtpm-backup writer key for repository %s, created %s\n"+
		"# public key: %s\n"+
		"# Backup hosts sign their backups with this key. Keep it on backup hosts only.\n%s%s\n",
		repoID, now.UTC().Format(time.RFC3339), k.Public(), writerSecretPrefix,
		base64.RawURLEncoding.EncodeToString(k.priv.Seed()))
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path) // a partial key file must not be mistaken for a key
		return fmt.Errorf("writer key file %s: %w", path, err)
	}
	return nil
}

// LoadWriterKeyFile reads a writer key file. Errors never contain key
// material.
func LoadWriterKeyFile(path string) (*WriterKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("writer key file %s: %w", path, err)
	}
	var key *WriterKey
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), writerSecretPrefix)
		if !ok {
			continue
		}
		seed, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || len(seed) != ed25519.SeedSize || key != nil {
			return nil, fmt.Errorf("%w: %s: want exactly one %s line holding a %d-byte seed", ErrBadWriterKey, path, writerSecretPrefix, ed25519.SeedSize)
		}
		key = &WriterKey{priv: ed25519.NewKeyFromSeed(seed)}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: %s holds no %s line (is it a writer key file?)", ErrBadWriterKey, path, writerSecretPrefix)
	}
	return key, nil
}

// ReadWriterPublicKeys returns the writer public keys a file pins: lines
// "# writer key: ed25519:..." (as in the identity file init writes), bare
// "ed25519:..." lines, or a writer key file's private key (whose public key
// it derives). Other lines (age identities, comments) are skipped. A file
// that pins nothing is an error: trusting nobody by mistake would reject
// every backup with a confusing reason.
func ReadWriterPublicKeys(path string) ([]WriterPublicKey, error) {
	keys, err := readPins(path)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s pins no writer key (want lines %q or %q)", ErrBadWriterKey, path, writerPinPrefix+" "+writerPublicPrefix+"...", writerPublicPrefix+"...")
	}
	return keys, nil
}

// IdentityFileWriterKeys returns the writer keys an identity file pins in
// its comments; none for identity files written before writer keys
// existed.
func IdentityFileWriterKeys(path string) ([]WriterPublicKey, error) { return readPins(path) }

func readPins(path string) ([]WriterPublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("writer keys from %s: %w", path, err)
	}
	var out []WriterPublicKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		var (
			k   WriterPublicKey
			err error
		)
		switch {
		case strings.HasPrefix(line, writerPinPrefix):
			k, err = ParseWriterPublicKey(strings.TrimPrefix(line, writerPinPrefix))
		case strings.HasPrefix(line, writerPublicPrefix):
			k, err = ParseWriterPublicKey(line)
		case strings.HasPrefix(line, writerSecretPrefix):
			var wk *WriterKey
			if wk, err = LoadWriterKeyFile(path); err == nil {
				k = wk.Public()
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("writer keys from %s: %w", path, err)
	}
	return out, nil
}

// ParseTrustedWriter reads the value of --trust-writer: a public key
// (ed25519:...) or a file that pins keys (see ReadWriterPublicKeys).
func ParseTrustedWriter(value string) ([]WriterPublicKey, error) {
	if strings.HasPrefix(strings.TrimSpace(value), writerPublicPrefix) {
		k, err := ParseWriterPublicKey(value)
		if err != nil {
			return nil, err
		}
		return []WriterPublicKey{k}, nil
	}
	return ReadWriterPublicKeys(value)
}

func parseWriterKeys(ss []string) ([]WriterPublicKey, error) {
	out := make([]WriterPublicKey, 0, len(ss))
	for _, s := range ss {
		k, err := ParseWriterPublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("writer_keys: %w", err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ErrWriterKeyNotListed: the writer key a backup would sign with is not
// among the repository's writer keys.
var ErrWriterKeyNotListed = errors.New("writer key not listed in the repository config")

// CheckWriterKey verifies, before a backup starts, that the writer key
// (SetWriterKey) is one the repository lists: a host still using a key
// that was replaced would write backups every restore rejects.
func (r *Repository) CheckWriterKey() error {
	if r.writer == nil {
		return fmt.Errorf("%w: pass --writer-key FILE or set VTPM_BACKUP_WRITER_KEY", ErrNoWriterKey)
	}
	pub := r.writer.Public()
	if !slices.Contains(r.writers, pub) {
		return fmt.Errorf("%w: this host's writer key %s is not among the writer keys of %s (was it replaced with 'vtpm-backup keys writer add --replace'?): backups it signs would be rejected; use the current key file, or list this key with 'vtpm-backup keys writer add --writer-key FILE'",
			ErrWriterKeyNotListed, pub, r.be.Location())
	}
	return nil
}

// AddWriterKey lists k among the repository's writer keys (rewriting the
// config); with replace, k becomes the only one. It returns the keys
// listed afterwards. Readers that pin keys are not affected: they must
// pin k themselves (WriterPublicKey.PinLine) to trust what it signs.
func (r *Repository) AddWriterKey(ctx context.Context, k WriterPublicKey, replace bool) ([]WriterPublicKey, error) {
	data, err := storage.ReadAll(ctx, r.be, configName)
	if err != nil {
		return nil, fmt.Errorf("add writer key to %s: read config: %w", r.be.Location(), err)
	}
	cfg, err := parseConfig(data) // the latest config, not the one Open read
	if err != nil {
		return nil, fmt.Errorf("add writer key to %s: %w", r.be.Location(), err)
	}
	writers, err := parseWriterKeys(cfg.WriterKeys)
	if err != nil {
		return nil, fmt.Errorf("add writer key to %s: %w: %w", r.be.Location(), ErrCorruptConfig, err)
	}
	switch {
	case replace:
		writers = []WriterPublicKey{k}
	case !slices.Contains(writers, k):
		writers = append(writers, k)
	}
	cfg.WriterKeys = cfg.WriterKeys[:0]
	for _, w := range writers {
		cfg.WriterKeys = append(cfg.WriterKeys, w.String())
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	out = append(out, '\n')
	if err := r.be.Put(ctx, configName, bytes.NewReader(out), int64(len(out))); err != nil {
		return nil, fmt.Errorf("add writer key to %s: write config: %w", r.be.Location(), err)
	}
	r.cfg, r.writers = cfg, writers
	return slices.Clone(writers), nil
}
