package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// completionShells are the shells "vtpm-backup completion" writes scripts
// for, with the cobra generator of each.
func completionShells() map[string]func(root *cobra.Command, w io.Writer) error {
	return map[string]func(*cobra.Command, io.Writer) error{
		"bash":       func(root *cobra.Command, w io.Writer) error { return root.GenBashCompletionV2(w, true) },
		"zsh":        func(root *cobra.Command, w io.Writer) error { return root.GenZshCompletion(w) },
		"fish":       func(root *cobra.Command, w io.Writer) error { return root.GenFishCompletion(w, true) },
		"powershell": func(root *cobra.Command, w io.Writer) error { return root.GenPowerShellCompletionWithDesc(w) },
	}
}

func newCompletionCommand(g *globalOptions) *cobra.Command {
	shells := completionShells()
	names := make([]string, 0, len(shells))
	for n := range shells {
		names = append(names, n)
	}
	slices.Sort(names)
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a script that completes vtpm-backup's commands and flags in the
given shell. Load it in the current shell, or install it where the shell
looks for completions (see the examples). --json does not apply: the
output is always the script.

EXIT STATUS
  0 on success; 2 when the shell is missing or unknown; 1 when the script
  cannot be written.`,
		Example: `  # bash, this shell only
  source <(vtpm-backup completion bash)
  # bash, every new shell (needs the bash-completion package)
  vtpm-backup completion bash > /etc/bash_completion.d/vtpm-backup

  # zsh (compinit must be enabled)
  vtpm-backup completion zsh > "${fpath[1]}/_vtpm-backup"

  # fish
  vtpm-backup completion fish > ~/.config/fish/completions/vtpm-backup.fish

  # PowerShell
  vtpm-backup completion powershell | Out-String | Invoke-Expression`,
		ValidArgs:         names,
		DisableAutoGenTag: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || shells[args[0]] == nil {
				got := "no shell"
				if len(args) > 0 {
					got = fmt.Sprintf("%q", strings.Join(args, " "))
				}
				return newUsageError(fmt.Errorf("%s needs one shell, got %s", cmd.CommandPath(), got),
					"name one of: "+strings.Join(names, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shells[args[0]](cmd.Root(), g.stdout); err != nil {
				return fmt.Errorf("write %s completion script: %w", args[0], err)
			}
			return nil
		},
	}
	return cmd
}
