package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// writerKeyEnv names the writer key file like --writer-key.
const writerKeyEnv = "VTPM_BACKUP_WRITER_KEY"

// writerKeyFlag is --writer-key, of the commands that sign (init creates
// the key, backup signs with it, keys writer add rotates it).
type writerKeyFlag struct {
	Path string
}

// AddFlags registers --writer-key.
func (o *writerKeyFlag) AddFlags(fs *pflag.FlagSet, usage string) {
	fs.StringVar(&o.Path, "writer-key", "", usage+" (env "+writerKeyEnv+"; default $XDG_CONFIG_HOME/vtpm-backup/writer-<repository id>.key)")
}

// path returns the writer key file for the repository: --writer-key (or
// its environment variable, applied with the other flags), else the
// default under the user's config directory.
func (o *writerKeyFlag) path(g *globalOptions, repoID string) (string, error) {
	if o.Path != "" {
		return filepath.Abs(o.Path)
	}
	name := "writer-" + repoID + ".key"
	if v, ok := g.lookupEnv("XDG_CONFIG_HOME"); ok && filepath.IsAbs(v) {
		return filepath.Join(v, "vtpm-backup", name), nil
	}
	if v, ok := g.lookupEnv("HOME"); ok && v != "" {
		return filepath.Join(v, ".config", "vtpm-backup", name), nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", newUsageError(fmt.Errorf("no place for the writer key file: %w", err), "pass --writer-key FILE or set "+writerKeyEnv)
	}
	return filepath.Join(dir, "vtpm-backup", name), nil
}

// createWriterKeyFile writes a new writer key for the repository with this
// ID, created at now, creating the default directory (mode 0700) when
// needed.
func createWriterKeyFile(path string, k *repository.WriterKey, repoID string, now time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writer key file %s: %w", path, err)
	}
	return repository.WriteWriterKeyFile(path, k, repoID, now)
}

// useWriterKey gives a backup its writer key. A repository created before
// writer keys existed gets one, once: it is created (or the given file is
// used), listed in the config, and the user is told where to pin it.
func (o *writerKeyFlag) useWriterKey(ctx context.Context, g *globalOptions, repo *repository.Repository, p ui.Printer) error {
	path, err := o.path(g, repo.Config().ID)
	if err != nil {
		return err
	}
	k, err := repository.LoadWriterKeyFile(path)
	missing := errors.Is(err, fs.ErrNotExist)
	legacy := len(repo.WriterKeys()) == 0
	switch {
	case missing && legacy:
		if k, err = repository.GenerateWriterKey(); err != nil {
			return err
		}
		if err := createWriterKeyFile(path, k, repo.Config().ID, g.clock.Now()); err != nil {
			return err
		}
	case missing:
		return newUsageError(fmt.Errorf("no writer key file %s: backups of %s are signed with writer key %s", path, repo.Location(), repo.WriterKeys()[0]),
			"copy the writer key file from the host that ran 'vtpm-backup init' (it printed the path) and pass --writer-key FILE or set "+writerKeyEnv+
				"; if it is lost, 'vtpm-backup keys writer add --replace' creates a new one")
	case err != nil:
		return newUsageError(err, "pass the writer key file init created with --writer-key FILE or "+writerKeyEnv)
	}
	repo.SetWriterKey(k)
	if !legacy {
		return repo.CheckWriterKey()
	}
	if _, err := repo.AddWriterKey(ctx, k.Public(), false); err != nil {
		return err
	}
	p.JSON(writerKeyMessage("created", repo.Location(), k.Public(), path))
	p.P("this repository had no writer key (it predates signed backups): its backups are signed from now on with %s", path)
	p.P("  public key %s, now listed in the repository config", k.Public())
	p.P("  restores trust it only where it is pinned: add the line %q to the identity file, or pass --trust-writer %s", k.Public().PinLine(), k.Public())
	p.P("  older, unsigned backups restore with --allow-unsigned")
	return nil
}
