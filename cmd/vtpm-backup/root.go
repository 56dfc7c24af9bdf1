package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/ui"
)

// newRootCommand builds the whole command tree writing to stdout and stderr.
// The returned options are filled in when the command line is parsed.
func newRootCommand(stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv, clock: clock.Real()}
	root := &cobra.Command{
		Use:   "vtpm-backup",
		Short: "Back up and restore vSphere VMs that have a virtual TPM",
		Long: `vtpm-backup backs up and restores VMware vSphere VMs with a virtual TPM (vTPM).

A vTPM keeps its state in the VM's .nvram file, and its home files are
encrypted with a key from a vSphere key provider. vtpm-backup copies every
home file and disk into a compressed, deduplicated repository (S3 or a local
directory) encrypted to age public keys, records which keys the VM needs, and
refuses to restore where those keys are missing.

Repository URLs (--repo or VTPM_BACKUP_REPO, a flag of the commands that
use a repository):
  /path, file:///path                    a local directory
  s3://host[:port]/bucket/prefix         S3 over HTTPS
  s3+http://host:port/bucket/prefix      S3 over plain HTTP (test servers)
S3 credentials come from the usual AWS variables and files
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...).

The vCenter connection flags of backup, restore, audit and keys fall back
to govc's environment (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD,
GOVC_INSECURE, GOVC_TLS_CA_CERTS, GOVC_DATACENTER); a flag on the command
line wins over the environment. There is no password flag: use
--password-file or GOVC_PASSWORD.

` + exitStatusHelp,
		Example: `  vtpm-backup init --repo /srv/vtpm-repo --generate-identity ~/vtpm-backup.key
  VTPM_BACKUP_REPO=s3://s3.example.com/backups/vtpm vtpm-backup init --recipient age1...
  vtpm-backup version --json`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		// Unknown subcommands reach RunE (instead of cobra's own check) so
		// they become usage errors with exit status 2.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return cmd.Help()
		},
		// Commands must not define their own PersistentPreRunE: cobra would
		// run theirs instead of this one.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.prepare(cmd.Flags()); err != nil {
				return err
			}
			// The storage and vSphere clients the flags open log their
			// calls at debug level (flags.go, loggerFrom).
			cmd.SetContext(withLogger(cmd.Context(), g.logger()))
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(flagError)
	g.AddFlags(root.PersistentFlags())

	root.AddCommand(
		newInitCommand(g),
		newVersionCommand(g),
		newCompletionCommand(g),
		newDocsCommand(g),
		newBackupCommand(g),
		newRestoreCommand(g),
		newListCommand(g),
		newAuditCommand(g),
		newKeysCommand(g),
		newDemoCommand(g),
		newUnlockCommand(g),
		newPruneCommand(g),
	)
	return root, g
}

// unknownCommand is the usage error for "vtpm-backup NAME" when there is no
// command NAME, with cobra's spelling suggestions.
func unknownCommand(root *cobra.Command, name string) error {
	hint := fmt.Sprintf("run '%s --help' for the list of commands", root.CommandPath())
	if s := suggestCommand(root, name); s != "" {
		hint = fmt.Sprintf("did you mean %q? %s", s, hint)
	}
	return newUsageError(fmt.Errorf("unknown command %q", name), hint)
}

// suggestCommand returns the command name closest to a mistyped one, or "".
// Cobra's own suggestions use the Levenshtein distance, for which "lsit" is
// as far from "init" as from "list"; a swap of two neighbouring letters is
// the commonest typo, so it counts as one edit here (optimal string
// alignment), and ties go to the command listed first.
func suggestCommand(root *cobra.Command, typed string) string {
	best, bestDist := "", root.SuggestionsMinimumDistance+1
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		for _, n := range append([]string{c.Name()}, c.Aliases...) {
			d := editDistance(strings.ToLower(typed), strings.ToLower(n))
			if strings.HasPrefix(strings.ToLower(n), strings.ToLower(typed)) {
				d = min(d, 1) // "ver" for "version"
			}
			if d < bestDist {
				best, bestDist = c.Name(), d
			}
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// letters each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// noArgs is cobra.NoArgs returning a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return newUsageError(fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " ")),
			fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath()))
	}
	return nil
}

// globalOptions are the flags every command has (output, logging, config
// file) and what the commands share: stdout, stderr and the environment.
// Commands receive them by pointer and read them in RunE, after parsing.
// The repository and vCenter flags are not global: repoFlags and
// vcenterFlags belong to the options of the commands that use them.
type globalOptions struct {
	JSON       bool
	LogLevel   string
	NoProgress bool

	// ConfigFile is --config; config.go reads it (see applyEnv).
	ConfigFile string

	stdout, stderr io.Writer
	// lookupEnv reads the environment (os.LookupEnv; tests inject a map).
	lookupEnv func(string) (string, bool)
	// clock is the commands' one clock (clock.Real; tests inject a fake):
	// repositories are opened with it, and commands time their runs by it.
	clock clock.Clock
}

// AddFlags registers the global flags on fs (the root's persistent flags).
func (g *globalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&g.JSON, "json", false, "print one JSON object per line (stable field names, for scripts and monitoring)")
	fs.StringVar(&g.LogLevel, "log-level", "warn", "log `level` on stderr: "+ui.LogLevels)
	fs.BoolVar(&g.NoProgress, "no-progress", false, "do not show progress bars")
	fs.StringVar(&g.ConfigFile, "config", "", "YAML `file` of defaults for the repository, vCenter and output flags (env "+configEnv+"; default $XDG_CONFIG_HOME/vtpm-backup/config.yaml)")
}

// envBinding ties a flag to the environment variable it falls back to.
type envBinding struct {
	flag, env string
}

// envBindings is the one place that says which flag reads which variable.
// A binding applies to the commands that have the flag.
func envBindings() []envBinding {
	return []envBinding{
		{"repo", "VTPM_BACKUP_REPO"},
		{"url", "GOVC_URL"},
		{"username", "GOVC_USERNAME"},
		{"insecure", "GOVC_INSECURE"},
		{"ca-certs", "GOVC_TLS_CA_CERTS"},
		{"datacenter", "GOVC_DATACENTER"},
		{"identity", "VTPM_BACKUP_IDENTITY"}, // --identity of the commands that decrypt
		{"writer-key", writerKeyEnv},         // --writer-key of the commands that sign
		{"trust-writer", trustWriterEnv},     // --trust-writer of the commands that read backups
	}
}

// applyEnv sets every flag of fs that was not given on the command line from
// its environment variable, when that is set and not empty, else from the
// config file (config.go): command line > environment > config file >
// default.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	file, err := loadConfigFile(fs, lookup)
	if err != nil {
		return err
	}
	fromEnv := map[string]bool{}
	for _, b := range envBindings() {
		f := fs.Lookup(b.flag)
		if f == nil || f.Changed {
			continue
		}
		v, ok := lookup(b.env)
		if !ok || v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return newUsageError(fmt.Errorf("environment variable %s=%q: %w", b.env, v, err),
				fmt.Sprintf("fix or unset %s, or pass --%s", b.env, b.flag))
		}
		fromEnv[b.flag] = true
	}
	return file.apply(fs, fromEnv)
}

// prepare resolves the environment fallbacks and checks the global flags;
// it runs before every command.
func (g *globalOptions) prepare(fs *pflag.FlagSet) error {
	if err := applyEnv(fs, g.lookupEnv); err != nil {
		return err
	}
	if _, err := ui.ParseLogLevel(g.LogLevel); err != nil {
		return newUsageError(fmt.Errorf("--log-level: %w", err), "")
	}
	return nil
}

// printer returns the text or JSON printer chosen by --json.
func (g *globalOptions) printer() ui.Printer {
	return ui.NewPrinter(g.stdout, g.stderr, g.JSON)
}

// progress returns progress bars on stderr, unless --no-progress or --json
// is given or stderr is not a terminal.
func (g *globalOptions) progress() ui.Progress {
	return ui.NewProgress(g.stderr, !g.NoProgress && !g.JSON)
}

// logger returns the slog logger on stderr at --log-level.
func (g *globalOptions) logger() *slog.Logger {
	lvl, err := ui.ParseLogLevel(g.LogLevel)
	if err != nil {
		lvl = slog.LevelWarn
	}
	return ui.NewLogger(g.stderr, lvl, g.JSON)
}
