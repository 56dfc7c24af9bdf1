package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/location"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// repoFlags say where the repository is: --repo and the S3 options. The
// commands that work on a repository have them in their options and
// register them with AddFlags; the others (version, demo, keys providers,
// ...) refuse them as unknown flags.
type repoFlags struct {
	URL        string
	S3Insecure bool
	S3CAFile   string
	S3Region   string
}

// AddFlags registers the repository flags on a command's flag set.
func (f *repoFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.URL, "repo", "", "repository `URL`: /path, file:///path, s3://host/bucket/prefix, s3+http://host:port/bucket/prefix (env VTPM_BACKUP_REPO)")
	fs.BoolVar(&f.S3Insecure, "s3-insecure", false, "do not verify the S3 endpoint's TLS certificate")
	fs.StringVar(&f.S3CAFile, "s3-ca-file", "", "PEM `file` of CA certificates to trust for the S3 endpoint")
	fs.StringVar(&f.S3Region, "s3-region", "", "S3 `region` to sign requests for (default: AWS_REGION, else asked from the bucket)")
}

// require returns --repo or a usage error saying how to give it.
func (f *repoFlags) require() (string, error) {
	if f.URL == "" {
		return "", newUsageError(fmt.Errorf("no repository given"), "pass --repo URL or set VTPM_BACKUP_REPO")
	}
	return f.URL, nil
}

// openBackend opens the storage named by --repo (or VTPM_BACKUP_REPO) with
// the --s3-* options. A malformed URL is location.ErrBadLocation (exit 2).
func (f *repoFlags) openBackend(ctx context.Context) (storage.Backend, error) {
	repo, err := f.require()
	if err != nil {
		return nil, err
	}
	loc, err := location.Parse(repo)
	if err != nil {
		return nil, err
	}
	be, err := location.Open(ctx, loc, location.S3Options{
		Insecure: f.S3Insecure,
		CAFile:   f.S3CAFile,
		Region:   f.S3Region,
	})
	if err != nil {
		return nil, err
	}
	return storage.WithLogging(be, loggerFrom(ctx)), nil
}

// open opens the repository at --repo, reading time from clk. The caller
// closes it (repo.Close()).
func (f *repoFlags) open(ctx context.Context, clk clock.Clock) (*repository.Repository, error) {
	be, err := f.openBackend(ctx)
	if err != nil {
		return nil, err
	}
	repo, err := repository.Open(ctx, be, repository.WithClock(clk))
	if err != nil {
		_ = be.Close()
		return nil, err
	}
	return repo, nil
}

// vcenterFlags say how to reach vCenter, like govc's ClientFlag: the
// commands that talk to a vCenter have them in their options; each flag
// falls back to its GOVC_* variable (envBindings), so an administrator's
// govc environment just works.
type vcenterFlags struct {
	URL          string
	Username     string
	PasswordFile string
	Insecure     bool
	CACerts      string
	Datacenter   string
}

// AddFlags registers the vCenter connection flags on a command's flag set.
func (f *vcenterFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.URL, "url", "", "vCenter `URL` or host name (env GOVC_URL)")
	fs.StringVar(&f.Username, "username", "", "vCenter user `name` (env GOVC_USERNAME)")
	fs.StringVar(&f.PasswordFile, "password-file", "", "read the vCenter password from `file` (else env GOVC_PASSWORD)")
	fs.BoolVar(&f.Insecure, "insecure", false, "do not verify the vCenter TLS certificate (env GOVC_INSECURE)")
	fs.StringVar(&f.CACerts, "ca-certs", "", "PEM `file` of CA certificates to trust for vCenter (env GOVC_TLS_CA_CERTS)")
	fs.StringVar(&f.Datacenter, "datacenter", "", "datacenter `name` or path for names and relative paths (env GOVC_DATACENTER); a VM's files are always read in its own datacenter")
}

// password returns the vCenter password from --password-file (its first
// line) or else GOVC_PASSWORD, read with env; "" when neither is set. The
// password never appears in errors.
func (f *vcenterFlags) password(env func(string) (string, bool)) (string, error) {
	if f.PasswordFile != "" {
		data, err := os.ReadFile(f.PasswordFile)
		if err != nil {
			return "", newUsageError(fmt.Errorf("read --password-file: %w", err), "pass a readable file holding the vCenter password")
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if v, ok := env("GOVC_PASSWORD"); ok {
		return v, nil
	}
	return "", nil
}

// connect logs in to vCenter with the flags, which already fell back to
// GOVC_*; env reads GOVC_PASSWORD. The caller logs out.
func (f *vcenterFlags) connect(ctx context.Context, env func(string) (string, bool)) (*vsphere.Client, error) {
	if f.URL == "" {
		return nil, newUsageError(fmt.Errorf("no vCenter given"), "pass --url https://vcenter.example.com/sdk or set GOVC_URL (with GOVC_USERNAME and GOVC_PASSWORD or --password-file)")
	}
	password, err := f.password(env)
	if err != nil {
		return nil, err
	}
	c, err := vsphere.Connect(ctx, vsphere.ConnectOptions{
		URL:         f.URL,
		Username:    f.Username,
		Password:    password,
		Insecure:    f.Insecure,
		CACertsFile: f.CACerts,
		Datacenter:  f.Datacenter,
		Logger:      loggerFrom(ctx),
	})
	if errors.Is(err, vsphere.ErrNoPassword) {
		return nil, newUsageError(err, "the vCenter password is read from the file named by --password-file (password_file in the config file), else from the GOVC_PASSWORD variable; neither was set")
	}
	return c, err
}

// logout ends a vCenter session even when ctx is cancelled (Ctrl-C).
func logout(ctx context.Context, c *vsphere.Client) {
	_ = c.Logout(context.WithoutCancel(ctx))
}

// loadIdentity gives repo the private key from --identity or
// VTPM_BACKUP_IDENTITY, for commands that decrypt.
func (g *globalOptions) loadIdentity(repo *repository.Repository, path string) error {
	if path == "" {
		if v, ok := g.lookupEnv("VTPM_BACKUP_IDENTITY"); ok {
			path = v
		}
	}
	ids, err := repository.LoadIdentityFile(path)
	if err != nil {
		return newUsageError(err, "pass --identity FILE (the age identity created at init) or set VTPM_BACKUP_IDENTITY")
	}
	repo.SetIdentities(ids)
	return nil
}

// loggerKey carries the command's logger in its context, from the root's
// PersistentPreRunE to the storage and vSphere clients opened here.
type loggerKey struct{}

func withLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

// loggerFrom returns the command's logger, or one that discards (a
// command run without the root, in tests).
func loggerFrom(ctx context.Context) *slog.Logger {
	if log, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return log
	}
	return slog.New(slog.DiscardHandler)
}
