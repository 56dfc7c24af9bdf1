package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// docsOptions are the flags of the hidden "vtpm-backup gen-docs" command
// that "make docs" runs.
type docsOptions struct {
	MarkdownDir string
	ManDir      string
}

// AddFlags registers the flags of the gen-docs command.
func (o *docsOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.MarkdownDir, "markdown-dir", "docs/cli", "write one markdown page per command into `dir` (\"\" for none)")
	fs.StringVar(&o.ManDir, "man-dir", "docs/man", "write one man page per command into `dir` (\"\" for none)")
}

func newDocsCommand(g *globalOptions) *cobra.Command {
	var opts docsOptions
	cmd := &cobra.Command{
		Use:   "gen-docs [--markdown-dir DIR] [--man-dir DIR]",
		Short: "Generate the markdown and man page reference of every command",
		Long: `Generate the command reference from the commands' own help: one markdown
page and one man page (section 1) per command. Pages of the previous run
(vtpm-backup*.md, vtpm-backup*.1) are removed first, so pages of removed
commands do not linger. The man page date comes from SOURCE_DATE_EPOCH
when set (make docs sets it to the last commit's time, so the output is
reproducible).

EXIT STATUS
  0 on success; 2 on a usage error; 1 when a page cannot be written.`,
		Example: `  make docs
  vtpm-backup gen-docs --markdown-dir docs/cli --man-dir docs/man
  vtpm-backup gen-docs --man-dir "" --markdown-dir /tmp/vtpm-backup-docs`,
		Hidden:            true,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDocs(cmd.Root(), opts, g)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// runDocs writes the reference pages of root's command tree.
func runDocs(root *cobra.Command, opts docsOptions, g *globalOptions) error {
	disableAutoGenTag(root) // no generation date in the pages: no diff without a change
	if opts.MarkdownDir != "" {
		if err := cleanDocsDir(opts.MarkdownDir, "vtpm-backup*.md"); err != nil {
			return err
		}
		if err := doc.GenMarkdownTree(root, opts.MarkdownDir); err != nil {
			return fmt.Errorf("generate markdown pages in %s: %w", opts.MarkdownDir, err)
		}
		g.printer().P("wrote markdown pages to %s", opts.MarkdownDir)
	}
	if opts.ManDir != "" {
		if err := cleanDocsDir(opts.ManDir, "vtpm-backup*.1"); err != nil {
			return err
		}
		header := &doc.GenManHeader{Title: "VTPM-BACKUP", Section: "1", Source: "vtpm-backup", Manual: "vtpm-backup manual"}
		if v, ok := g.lookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return newUsageError(fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", v, err), "set it to seconds since 1970, or unset it")
			}
			date := time.Unix(sec, 0).UTC()
			header.Date = &date
		}
		if err := doc.GenManTree(root, header, opts.ManDir); err != nil {
			return fmt.Errorf("generate man pages in %s: %w", opts.ManDir, err)
		}
		g.printer().P("wrote man pages to %s", opts.ManDir)
	}
	return nil
}

// disableAutoGenTag turns off cobra's "Auto generated ... on DATE" footer on
// cmd and all its subcommands.
func disableAutoGenTag(cmd *cobra.Command) {
	cmd.DisableAutoGenTag = true
	for _, c := range cmd.Commands() {
		disableAutoGenTag(c)
	}
}

// cleanDocsDir creates dir and removes the files matching pattern in it.
func cleanDocsDir(dir, pattern string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create docs directory: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return fmt.Errorf("list old pages in %s: %w", dir, err)
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove old page: %w", err)
		}
	}
	return nil
}
