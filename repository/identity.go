package repository

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"filippo.io/age"
)

// ErrNoIdentity: reading chunks needs an age identity and none was given.
var ErrNoIdentity = errors.New("no age identity")

// ErrWrongIdentity: none of the given identities opens the repository's chunks.
var ErrWrongIdentity = errors.New("age identity does not match the repository")

// LoadIdentityFile reads age identities (AGE-SECRET-KEY-... lines) from a
// file. The error never contains key material.
func LoadIdentityFile(path string) ([]age.Identity, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: pass --identity FILE or set VTPM_BACKUP_IDENTITY", ErrNoIdentity)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: not an age identity file (want AGE-SECRET-KEY-1... lines)", path)
	}
	return ids, nil
}

// GenerateIdentityFile creates a new X25519 identity in a new file with mode
// 0600 (never overwriting one) and returns its public key. The writer keys
// given are pinned in comment lines, so that whoever restores with this
// identity trusts backups signed by them and by nothing the bucket says.
func GenerateIdentityFile(path string, now time.Time, writers ...WriterPublicKey) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("identity file %s already exists: refusing to overwrite a private key; choose another path", path)
		}
		return "", fmt.Errorf("identity file %s: %w", path, err)
	}
	content := fmt.Sprintf("# created: %s by vtpm-backup\n# public key: %s\n# Keep this file offline: it decrypts every backup of the repository.\n",
		now.UTC().Format(time.RFC3339), id.Recipient())
	if len(writers) > 0 {
		content += "# Restores trust only backups signed by these writer keys (add a line when a key is rotated):\n"
	}
	for _, w := range writers {
		content += w.PinLine() + "\n"
	}
	content += id.String() + "\n"
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("identity file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("identity file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("identity file %s: %w", path, err)
	}
	return id.Recipient().String(), nil
}

func isNoMatch(err error) bool {
	var nm *age.NoIdentityMatchError
	return errors.As(err, &nm)
}
