package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

func newKeysWriterCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "writer add [KEY] [--replace] | list",
		Short: "List, add or replace the writer keys backups are signed with",
		Long: `Backups are signed with a writer key (Ed25519): a file on the backup hosts.
The repository config lists the public keys of the writer keys in use; restores,
audits and listings trust a backup only when its signature verifies with a key
pinned outside the bucket (the identity file's "# writer key:" lines,
--trust-writer), or, with a warning, with a key the config lists.

  keys writer list                    the keys the config lists, and which this host holds
  keys writer add [--writer-key FILE] list the key in FILE (created when missing)
  keys writer add ed25519:KEY         list another host's public key
  keys writer add ... --replace       make it the only key: rotate a stolen key

Each prints the line to add where restores pin keys. A replaced key's backups
stay trusted only by readers that still pin it.

EXIT STATUS
  0  success
  1  the repository could not be read or written
  2  usage error (bad key or file, unknown subcommand)`,
		Example: `  vtpm-backup keys writer list --repo /srv/vtpm-repo
  vtpm-backup keys writer add --replace --writer-key /etc/vtpm-backup/writer-2026.key`,
		DisableAutoGenTag: true,
		Args:              cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newKeysWriterAddCommand(g), newKeysWriterListCommand(g))
	return cmd
}

// keysWriterAddOptions are the flags of "keys writer add".
type keysWriterAddOptions struct {
	Repo      repoFlags
	WriterKey writerKeyFlag
	Replace   bool
}

// AddFlags registers the flags of the keys writer add command.
func (o *keysWriterAddOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.WriterKey.AddFlags(fs, "the writer key `file` to list; created (mode 0600) when it does not exist")
	fs.BoolVar(&o.Replace, "replace", false, "make this key the only one the config lists (after a writer key was stolen or lost)")
}

func newKeysWriterAddCommand(g *globalOptions) *cobra.Command {
	var opts keysWriterAddOptions
	cmd := &cobra.Command{
		Use:   "add [ed25519:KEY] [--writer-key FILE] [--replace]",
		Short: "List a writer key in the repository config, or replace the listed ones",
		Long: `List a writer key among the repository's writer keys: the key in --writer-key
FILE (default $XDG_CONFIG_HOME/vtpm-backup/writer-<repository id>.key), which
is created when it does not exist, or a public key given as an argument (the
key of another backup host). With --replace it becomes the only key listed:
after a writer key is stolen, create a new one in a new file, replace, copy
the new file to the backup hosts, and pin the new key where you restore.

The config is in the bucket, so restores do not trust it: the command prints
the line to add to the identity file ("# writer key: ed25519:...") or the
--trust-writer value. Backups signed by a replaced key are rejected by readers
that pin only the new key.

EXIT STATUS
  0  success
  1  the repository could not be read or written
  2  usage error (bad key or file; --replace of the key already alone listed)`,
		Example: `  # a second backup host with a key of its own
  vtpm-backup keys writer add --repo s3://s3.example.com/backups/vtpm --writer-key /etc/vtpm-backup/writer.key

  # rotate after a backup host was compromised
  vtpm-backup keys writer add --replace --writer-key /etc/vtpm-backup/writer-2026.key`,
		DisableAutoGenTag: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return newUsageError(fmt.Errorf("%s takes at most one public key", cmd.CommandPath()), "")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysWriterAdd(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runKeysWriterAdd(ctx context.Context, opts keysWriterAddOptions, g *globalOptions, args []string) error {
	repo, err := opts.Repo.open(ctx, g.clock)
	if err != nil {
		return err
	}
	defer repo.Close()
	pub, path, created, err := writerKeyToAdd(g, repo, &opts.WriterKey, args)
	if err != nil {
		return err
	}
	before := repo.WriterKeys()
	if opts.Replace && len(before) == 1 && before[0] == pub {
		return newUsageError(fmt.Errorf("writer key %s is already the only one listed in %s", pub, repo.Location()),
			"to replace a stolen key, create a new one: pass --writer-key NEWFILE with --replace")
	}
	after, err := repo.AddWriterKey(ctx, pub, opts.Replace)
	if err != nil {
		return err
	}
	action := "added"
	switch {
	case opts.Replace:
		action = "replaced"
	case slices.Contains(before, pub):
		action = "listed" // already there: nothing changed
	}
	p := g.printer()
	p.JSON(ui.WriterKeyMessage{Action: action, Repository: repo.Location(), WriterKey: pub.String(), WriterKeyFile: path, PinLine: pub.PinLine()})
	if created {
		p.P("created writer key %s (mode 0600): copy it to the backup hosts that should sign with it", path)
	}
	printWriterKeyChange(p, repo, pub, action, before, after)
	return nil
}

// writerKeyToAdd returns the public key "keys writer add" lists: the
// argument, or the key in the writer key file, which is created when it
// does not exist.
func writerKeyToAdd(g *globalOptions, repo *repository.Repository, f *writerKeyFlag, args []string) (pub repository.WriterPublicKey, path string, created bool, err error) {
	if len(args) == 1 {
		if f.Path != "" {
			return pub, "", false, newUsageError(errors.New("give a public key or --writer-key FILE, not both"), "")
		}
		pub, err = repository.ParseWriterPublicKey(args[0])
		return pub, "", false, err
	}
	if path, err = f.path(g, repo.Config().ID); err != nil {
		return pub, "", false, err
	}
	k, err := repository.LoadWriterKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if k, err = repository.GenerateWriterKey(); err == nil {
			err = createWriterKeyFile(path, k, repo.Config().ID, g.clock.Now())
		}
		created = err == nil
	}
	if err != nil {
		return pub, "", false, newUsageError(err, "pass --writer-key FILE: an existing writer key file, or a new path to create one")
	}
	return k.Public(), path, created, nil
}

// printWriterKeyChange tells what changed in the config and what to pin.
func printWriterKeyChange(p ui.Printer, repo *repository.Repository, pub repository.WriterPublicKey, action string, before, after []repository.WriterPublicKey) {
	switch action {
	case "listed":
		p.P("writer key %s is already listed in %s; nothing changed", pub, repo.Location())
	case "replaced":
		p.P("writer key %s is now the only one listed in %s", pub, repo.Location())
		for _, old := range before {
			if old != pub {
				p.P("  removed %s: readers that trust the config reject the backups it signed; pinned readers accept them while they still pin it", old)
			}
		}
	default:
		p.P("added writer key %s to %s (%d listed)", pub, repo.Location(), len(after))
	}
	p.P("Restores trust only pinned keys: add this line to the identity file, or pass --trust-writer %s:", pub)
	p.P("  %s", pub.PinLine())
}

// keysWriterListOptions are the flags of "keys writer list".
type keysWriterListOptions struct {
	Repo repoFlags
}

// AddFlags registers the flags of the keys writer list command.
func (o *keysWriterListOptions) AddFlags(fs *pflag.FlagSet) { o.Repo.AddFlags(fs) }

func newKeysWriterListCommand(g *globalOptions) *cobra.Command {
	var opts keysWriterListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the writer keys the repository config lists",
		Long: `List the public writer keys the repository config lists, the pin line of
each, and whether this host holds the private key (its writer key file,
VTPM_BACKUP_WRITER_KEY or the default path).

EXIT STATUS
  0  success; 1 the repository could not be read; 2 usage error`,
		Example: `  vtpm-backup keys writer list --repo s3://s3.example.com/backups/vtpm
  vtpm-backup keys writer list --json | jq -r .pin_line`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeysWriterList(cmd.Context(), opts, g)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runKeysWriterList(ctx context.Context, opts keysWriterListOptions, g *globalOptions) error {
	repo, err := opts.Repo.open(ctx, g.clock)
	if err != nil {
		return err
	}
	defer repo.Close()
	own, err := ownWriterKey(g, repo)
	if err != nil {
		return err
	}
	p := g.printer()
	keys := repo.WriterKeys()
	if len(keys) == 0 {
		p.P("%s lists no writer key: it predates signed backups; the next backup creates one", repo.Location())
		return nil
	}
	t := p.Table("Writer key", "This host", "Pin line")
	for _, k := range keys {
		p.JSON(ui.WriterKeyMessage{Action: "listed", Repository: repo.Location(), WriterKey: k.String(), PinLine: k.PinLine()})
		t.Row(k.String(), yesNo(own != nil && own.Public() == k), k.PinLine())
	}
	return t.Flush()
}
