package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
)

// initOptions are the flags of "vtpm-backup init".
type initOptions struct {
	Repo             repoFlags
	Recipients       []string
	RecipientsFile   string
	GenerateIdentity string
	ChunkSize        byteSize
	ObjectLockDays   int
	WriterKey        writerKeyFlag
}

// AddFlags registers the flags of the init command.
func (o *initOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	fs.StringArrayVar(&o.Recipients, "recipient", nil, "age public `key` (age1...) to encrypt backups to; repeatable")
	fs.StringVar(&o.RecipientsFile, "recipients-file", "", "read age public keys from `file`, one per line (# comments allowed)")
	fs.StringVar(&o.GenerateIdentity, "generate-identity", "", "create a new age identity in `file` (mode 0600, never overwritten) and encrypt to its public key")
	o.ChunkSize = repository.DefaultChunkSize
	fs.Var(&o.ChunkSize, "chunk-size", "chunk size: a power of two from 512KiB to 64MiB")
	fs.IntVar(&o.ObjectLockDays, "object-lock-days", 0, "retain chunks and manifests with S3 Object Lock for `days` (bucket must have Object Lock enabled)")
	o.WriterKey.AddFlags(fs, "the writer key backups are signed with: created in `file` (mode 0600), or used if the file already holds one")
}

func newInitCommand(g *globalOptions) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init --repo URL (--recipient KEY... | --recipients-file FILE | --generate-identity FILE)",
		Short: "Create a new repository",
		Long: `Create a new, empty repository at --repo (or VTPM_BACKUP_REPO).

Backups are encrypted with age to the public keys given here (recipients).
Backup hosts need only these public keys: they cannot decrypt what they wrote.
Restores and "audit --read-data" need a matching private key (identity).

--generate-identity FILE creates a new identity for you. Keep that file
offline (password manager, safe, HSM-backed vault): it is the only key that
decrypts the backups, and nobody can recover them without it.

Backups are signed with a writer key (Ed25519), created here in a file with
mode 0600 (--writer-key FILE, default
$XDG_CONFIG_HOME/vtpm-backup/writer-<repository id>.key); a --writer-key
file that already holds a key (a backup host's key for another repository)
is used, never overwritten. Backup hosts need
that file; restores, audits and listings trust a backup only when its
signature verifies with a pinned public key: --generate-identity writes it
into the identity file, otherwise pass it with --trust-writer. Whoever can
write to the bucket can store chunks encrypted to the public recipients, but
cannot sign a manifest.

The chunk size is fixed at init: disks are cut into aligned chunks of this
size, and identical chunks are stored once. Larger chunks mean fewer objects
and requests; smaller ones deduplicate small changes better.

EXIT STATUS
  0 on success; 2 on a usage error, a bad --repo URL, recipient or chunk
  size, or when the location already holds a repository; 1 on other errors.`,
		Example: `  # local directory, new identity kept offline afterwards
  vtpm-backup init --repo /srv/vtpm-repo --generate-identity ./vtpm-backup.key

  # S3 bucket, existing age public keys (e.g. two admins)
  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  vtpm-backup init --repo s3://s3.example.com/backups/vtpm \
      --recipient age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqysx2p8y2 \
      --recipients-file /etc/vtpm-backup/recipients.txt --chunk-size 8MiB

  # immutable backups on an Object Lock bucket
  vtpm-backup init --repo s3://s3.example.com/locked/vtpm --recipient age1... --object-lock-days 30`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// runInit checks the whole command line before it touches the location,
// then creates the repository, its writer key and (if asked) an identity,
// and reports them.
func runInit(ctx context.Context, opts initOptions, g *globalOptions, _ []string) error {
	if _, err := opts.Repo.require(); err != nil {
		return err
	}
	recipients, err := opts.recipients()
	if err != nil {
		return err
	}
	if err := repository.ValidateChunkSize(int64(opts.ChunkSize)); err != nil {
		return fmt.Errorf("--chunk-size %s: %w", opts.ChunkSize.String(), err)
	}
	if opts.ObjectLockDays < 0 {
		return newUsageError(fmt.Errorf("--object-lock-days %d: must not be negative", opts.ObjectLockDays), "")
	}
	identityPath, err := newIdentityPath(opts.GenerateIdentity)
	if err != nil {
		return err
	}

	be, err := opts.Repo.openBackend(ctx)
	if err != nil {
		return err
	}
	defer be.Close()
	repo, writer, err := createRepository(ctx, be, g, opts, recipients, identityPath)
	if err != nil {
		return err
	}
	printInit(g, repo, identityPath, writer)
	return nil
}

// recipients returns the age public keys of --recipient and
// --recipients-file, checked; none is an error unless --generate-identity
// will add one.
func (o *initOptions) recipients() ([]string, error) {
	recipients := append([]string(nil), o.Recipients...)
	if o.RecipientsFile != "" {
		rs, err := readRecipientsFile(o.RecipientsFile)
		if err != nil {
			return nil, err
		}
		recipients = append(recipients, rs...)
	}
	if len(recipients) == 0 && o.GenerateIdentity == "" {
		return nil, newUsageError(errors.New("no age recipient given: backups would be readable by nobody"),
			"pass --recipient age1..., --recipients-file FILE or --generate-identity FILE")
	}
	if len(recipients) > 0 {
		if _, err := repository.ParseRecipients(recipients); err != nil {
			return nil, err // wraps repository.ErrBadRecipient: exit 2
		}
	}
	return recipients, nil
}

// newIdentityPath returns the absolute path of --generate-identity (""
// when not given), refusing a path that exists: a private key is never
// overwritten.
func newIdentityPath(flag string) (string, error) {
	if flag == "" {
		return "", nil
	}
	p, err := filepath.Abs(flag)
	if err != nil {
		return "", fmt.Errorf("--generate-identity %s: %w", flag, err)
	}
	if _, err := os.Lstat(p); err == nil {
		return "", newUsageError(fmt.Errorf("identity file %s already exists: refusing to overwrite a private key", p),
			"choose another path, or pass the existing identity's public key with --recipient")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("--generate-identity %s: %w", p, err)
	}
	return p, nil
}

// createRepository writes the writer key file (unless it exists), the new
// identity (when identityPath is set) and the repository config on be,
// encrypting to recipients and the new identity's public key. Key files
// this init created and that nothing was encrypted to or signed with are
// removed again (discardIdentity, discardWriterKey).
func createRepository(ctx context.Context, be storage.Backend, g *globalOptions, opts initOptions, recipients []string, identityPath string) (*repository.Repository, initWriter, error) {
	id := repository.NewRepositoryID()
	writer, err := newInitWriter(g, &opts.WriterKey, id)
	if err != nil {
		return nil, initWriter{}, err
	}
	if identityPath != "" {
		pub, err := repository.GenerateIdentityFile(identityPath, g.clock.Now(), writer.key.Public())
		if err != nil {
			return nil, initWriter{}, writer.discard(err)
		}
		recipients = append(recipients, pub)
	}
	repo, err := repository.Init(ctx, be, repository.InitOptions{
		Recipients:     recipients,
		ChunkSize:      int64(opts.ChunkSize),
		ObjectLockDays: opts.ObjectLockDays,
		ID:             id,
		WriterKey:      writer.key,
	}, repository.WithClock(g.clock))
	if err != nil {
		if identityPath != "" {
			err = discardIdentity(identityPath, recipients[len(recipients)-1], err)
		}
		if errors.Is(err, repository.ErrAlreadyInitialized) {
			err = writer.discard(err)
		}
		return nil, initWriter{}, err
	}
	return repo, writer, nil
}

// initWriter is the writer key of a new repository and its file.
type initWriter struct {
	key  *repository.WriterKey
	path string
	// created: this init wrote the file (else it already held the key).
	created bool
}

// newInitWriter creates the writer key of a new repository before the
// repository exists (a config listing a key nobody holds would leave its
// backups unsignable), or loads it when --writer-key (or
// VTPM_BACKUP_WRITER_KEY) names a file that already holds one: a backup
// host signs for several repositories with its one key, and the variable
// a demo or another repository's setup exported must not make init fail.
func newInitWriter(g *globalOptions, f *writerKeyFlag, repoID string) (initWriter, error) {
	path, err := f.path(g, repoID)
	if err != nil {
		return initWriter{}, err
	}
	if f.Path != "" {
		switch k, err := repository.LoadWriterKeyFile(path); {
		case err == nil:
			return initWriter{key: k, path: path}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return initWriter{}, newUsageError(err, "pass --writer-key with a writer key file or a new file name")
		}
	}
	k, err := repository.GenerateWriterKey()
	if err != nil {
		return initWriter{}, err
	}
	if err := createWriterKeyFile(path, k, repoID, g.clock.Now()); err != nil {
		return initWriter{}, newUsageError(err, "pass --writer-key with a new file name")
	}
	return initWriter{key: k, path: path, created: true}, nil
}

// discard removes the writer key file of an init that created nothing,
// if this init wrote it.
func (w initWriter) discard(initErr error) error {
	if !w.created {
		return initErr
	}
	return discardWriterKey(w.path, initErr)
}

// discardWriterKey removes the writer key of an init that created nothing.
func discardWriterKey(path string, initErr error) error {
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%w (and removing the unused writer key %s failed: %w)", initErr, path, err)
	}
	return initErr
}

// printInit reports the new repository, its identity and writer key files.
func printInit(g *globalOptions, repo *repository.Repository, identityPath string, w initWriter) {
	writerPath := w.path
	cfg := repo.Config()
	writer := repo.WriterKey().Public()
	g.logger().Debug("repository created", "location", repo.Location(), "id", cfg.ID)

	p := g.printer()
	p.JSON(initMessage(repo.Location(), cfg, identityPath, writer, writerPath))
	p.P("created repository %s at %s", cfg.ID, repo.Location())
	p.P("  format version %d, chunk size %s, %s compression, %d age recipient(s)",
		cfg.Version, formatByteSize(cfg.ChunkSize), cfg.Compression, len(cfg.Recipients))
	if cfg.ObjectLockDays > 0 {
		p.P("  chunks and manifests are retained for %d days (S3 Object Lock)", cfg.ObjectLockDays)
	}
	if identityPath != "" {
		p.P("wrote a new age identity to %s (public key %s)", identityPath, cfg.Recipients[len(cfg.Recipients)-1])
		p.P("Keep this file offline: it is the only key that decrypts these backups, and it is needed for restore.")
		p.P("Backup hosts need only the public key (already in the repository config).")
	}
	if w.created {
		p.P("wrote the writer key backups are signed with to %s (public key %s)", writerPath, writer)
	} else {
		p.P("backups are signed with the existing writer key %s (public key %s)", writerPath, writer)
	}
	p.P("Backup hosts need this file (--writer-key FILE or %s); keep it off restore hosts.", writerKeyEnv)
	if identityPath != "" {
		p.P("The identity file pins its public key (%q): restores with it trust only backups it signed.", writer.PinLine())
	} else {
		p.P("Restores trust only pinned writer keys: pass --trust-writer %s, or add the line %q to your identity file.", writer, writer.PinLine())
	}
}

// discardIdentity deals with the identity generated for an init that
// failed. When the location was already a repository nothing was encrypted
// to the new key, so the file is removed and the user can simply retry.
// Otherwise the config may have been written before the error (a timeout
// after a successful upload), so the key is kept and the error says so.
func discardIdentity(path, pub string, initErr error) error {
	if errors.Is(initErr, repository.ErrAlreadyInitialized) {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("%w (and removing the unused identity %s failed: %w)", initErr, path, err)
		}
		return initErr
	}
	return fmt.Errorf("%w (the new identity %s was kept in case the config was written; retry with --recipient %s)", initErr, path, pub)
}

// readRecipientsFile reads age public keys, one per line; blank lines and
// lines starting with # are skipped.
func readRecipientsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, newUsageError(fmt.Errorf("--recipients-file: %w", err), "pass a readable file with one age1... public key per line")
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if _, err := repository.ParseRecipients([]string{s}); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, newUsageError(fmt.Errorf("--recipients-file %s holds no age public key", path), "add one age1... public key per line")
	}
	return out, nil
}
