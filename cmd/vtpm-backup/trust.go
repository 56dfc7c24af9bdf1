package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// trustWriterEnv adds one --trust-writer value from the environment.
const trustWriterEnv = "VTPM_BACKUP_TRUST_WRITER"

// unsignedNote marks every output line about a backup accepted only
// because --allow-unsigned was given.
const unsignedNote = "UNSIGNED, accepted by --allow-unsigned"

// trustFlags are the flags of the commands that read backups (list,
// audit, restore, keys status, prune): which writer keys a backup must be
// signed with to be believed.
type trustFlags struct {
	TrustWriter   []string
	AllowUnsigned bool
}

// AddFlags registers --trust-writer and --allow-unsigned.
func (f *trustFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.TrustWriter, "trust-writer", nil, "trust backups signed by this writer `key` (ed25519:...), or by the keys a file pins (the identity file init wrote, a writer key file, one key per line); repeatable (env "+trustWriterEnv+")")
	fs.BoolVar(&f.AllowUnsigned, "allow-unsigned", false, "also accept backups without signature (repositories older than signed backups); every line that shows one says so")
}

// apply sets which backups the repository's readers accept. Trusted are
// the writer keys pinned outside the bucket: --trust-writer, the comment
// lines of the identity file (identity, else VTPM_BACKUP_IDENTITY), and
// this host's own writer key file (VTPM_BACKUP_WRITER_KEY, else the
// default path of the repository). With none of them, the keys listed in
// the repository config are used, with a warning: whoever can write to
// the bucket can list a key of their own there.
func (f *trustFlags) apply(g *globalOptions, repo *repository.Repository, identity string) error {
	var pins []repository.WriterPublicKey
	for _, v := range f.TrustWriter {
		ks, err := repository.ParseTrustedWriter(v)
		if err != nil {
			return newUsageError(fmt.Errorf("--trust-writer: %w", err), "pass a writer public key (ed25519:...) or a file that pins one, such as the identity file init wrote")
		}
		pins = append(pins, ks...)
	}
	if identity == "" {
		identity, _ = g.lookupEnv("VTPM_BACKUP_IDENTITY")
	}
	if identity != "" {
		// A missing or unreadable identity file is reported by the code
		// that decrypts with it; its pins are only read here.
		if ks, err := repository.IdentityFileWriterKeys(identity); err == nil {
			pins = append(pins, ks...)
		}
	}
	own, err := ownWriterKey(g, repo)
	if err != nil {
		return err
	}
	if own != nil {
		pins = append(pins, own.Public())
	}
	repo.SetTrust(repository.Trust{Writers: pins, AllowUnsigned: f.AllowUnsigned})
	if keys, fromConfig := repo.TrustedWriters(); fromConfig {
		g.logger().Warn("no writer key is pinned: trusting the writer keys listed in the repository config, which anyone who can write to the bucket can change; pin them with --trust-writer KEY or the identity file",
			"keys", keyList(keys))
	}
	return nil
}

// ownWriterKey loads this host's writer key for the repository, if it has
// one: a backup host trusts what it signed itself. A file named by
// VTPM_BACKUP_WRITER_KEY must load; the default path may be missing.
func ownWriterKey(g *globalOptions, repo *repository.Repository) (*repository.WriterKey, error) {
	explicit, _ := g.lookupEnv(writerKeyEnv)
	path, err := (&writerKeyFlag{Path: explicit}).path(g, repo.Config().ID)
	if err != nil {
		return nil, nil // no default place: no own key
	}
	k, err := repository.LoadWriterKeyFile(path)
	switch {
	case err == nil:
		return k, nil
	case explicit == "" && errors.Is(err, fs.ErrNotExist):
		return nil, nil
	default:
		return nil, newUsageError(err, "fix or unset "+writerKeyEnv)
	}
}

func keyList(keys []repository.WriterPublicKey) string {
	if len(keys) == 0 {
		return "none"
	}
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}

// unsignedSuffix is " (UNSIGNED, accepted by --allow-unsigned)" for an
// unsigned manifest header, "" for a signed one.
func unsignedSuffix(h *repository.ManifestHeader) string {
	if h == nil || h.Auth.Signed {
		return ""
	}
	return " (" + unsignedNote + ")"
}

// open opens the repository of the repository flags for reading backups,
// trusting what apply says.
func (f *trustFlags) open(ctx context.Context, g *globalOptions, rf *repoFlags, identity string) (*repository.Repository, error) {
	repo, err := rf.open(ctx, g.clock)
	if err != nil {
		return nil, err
	}
	if err := f.apply(g, repo, identity); err != nil {
		_ = repo.Close()
		return nil, err
	}
	return repo, nil
}
