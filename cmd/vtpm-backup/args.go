package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// moveFlagsBehindCommand lets command lines written when every flag was
// global keep working: cron lines such as
//
//	vtpm-backup --repo /srv/repo --insecure backup win11-01
//
// put the repository and vCenter flags before the command name, where the
// root command does not know them any more. The flags (with their values)
// that come before or between the command names are moved behind the
// command path:
//
//	vtpm-backup backup --repo /srv/repo --insecure win11-01
//
// The command then accepts them or rejects them as unknown flags (exit 2,
// with a hint naming the commands that take them: "--url X init" fails
// like "init --url X").
//
// What this cannot read for sure is left to cobra as it is: a flag no
// command defines (a typo), a flag missing its value, "--", the shell
// completion commands. Help and typos keep cobra's answers too: when help
// is asked (-h, --help, the help command) or the word after the flags is
// not a command, the flags only some commands have are left out, so cobra
// shows the help, or says "unknown command" with its suggestions, as it
// did while every flag was global, rather than rejecting a flag the user
// spelt right.
func moveFlagsBehindCommand(root *cobra.Command, args []string) []string {
	var (
		path, moved, global []string
		// kept is args up to i without the flags that are not global.
		kept []string
		help bool
	)
	cmd := root
	i := 0
scan:
	for i < len(args) {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			help = true
			moved, global, kept = append(moved, a), append(global, a), append(kept, a)
			i++
		case strings.HasPrefix(a, "-") && a != "-":
			f, n := flagWords(root, args[i:])
			if f == nil {
				return args
			}
			words := args[i : i+n]
			moved = append(moved, words...)
			if root.PersistentFlags().Lookup(f.Name) == f {
				global, kept = append(global, words...), append(kept, words...)
			}
			i += n
		case cmd == root && (a == cobra.ShellCompRequestCmd || a == cobra.ShellCompNoDescRequestCmd):
			return args
		case cmd == root && a == "help":
			help = true
			break scan
		default:
			sub := findSubcommand(cmd, a)
			if sub == nil {
				break scan // the first argument of cmd
			}
			cmd = sub
			path, kept = append(path, a), append(kept, a)
			i++
		}
	}
	switch {
	case help:
		return append(kept, args[i:]...)
	case len(moved) == 0 || (cmd == root && i == len(args)):
		return args
	case cmd.HasSubCommands() && i < len(args):
		moved = global // args[i] is not a command: cmd's RunE says so
	}
	out := make([]string, 0, len(args))
	out = append(out, path...)
	out = append(out, moved...)
	return append(out, args[i:]...)
}

// flagWords returns the flag args[0] names and how many words it takes: 1
// for "--flag=value" and for flags without a value (bool flags), 2 for
// "--flag value". f is nil when that cannot be known: "--", a flag no
// command of the tree defines, an unknown shorthand, a value missing at
// the end, help.
func flagWords(root *cobra.Command, args []string) (f *pflag.Flag, n int) {
	a := args[0]
	if a == "--" {
		return nil, 0
	}
	name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	switch {
	case strings.HasPrefix(a, "--"):
		f = findFlag(root, func(fs *pflag.FlagSet) *pflag.Flag { return fs.Lookup(name) })
	case len(name) == 1:
		f = findFlag(root, func(fs *pflag.FlagSet) *pflag.Flag { return fs.ShorthandLookup(name) })
	}
	switch {
	case f == nil || f.Name == "help":
		return nil, 0
	case hasValue || f.NoOptDefVal != "":
		return f, 1
	case len(args) < 2:
		return nil, 0
	}
	return f, 2
}

// findFlag returns the flag lookup finds on the root's persistent flags or
// on any command of the tree, or nil. A name that two commands define with
// and without a value is not trusted (nil): its words cannot be told apart.
func findFlag(root *cobra.Command, lookup func(*pflag.FlagSet) *pflag.Flag) *pflag.Flag {
	var found *pflag.Flag
	conflict := false
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.PersistentFlags(), c.Flags()} {
			f := lookup(fs)
			if f == nil {
				continue
			}
			if found != nil && (found.NoOptDefVal == "") != (f.NoOptDefVal == "") {
				conflict = true
			}
			if found == nil {
				found = f
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if conflict {
		return nil
	}
	return found
}

// findSubcommand returns the subcommand of cmd called name (or one of its
// aliases), or nil.
func findSubcommand(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// commandsWithFlag lists the commands of root's tree that have the flag
// name, by their path below root ("backup", "keys status").
func commandsWithFlag(root *cobra.Command, name string) []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root && !c.Hidden && c.Runnable() && (c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil) {
			out = append(out, strings.TrimPrefix(c.CommandPath(), root.Name()+" "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// flagError is the usage error for a command line cobra could not parse.
// An unknown flag that other commands have gets a hint naming them
// ("init --url": --url is a flag of audit, backup, ...).
func flagError(cmd *cobra.Command, err error) error {
	hint := fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath())
	var nf *pflag.NotExistError
	if errors.As(err, &nf) && nf.GetSpecifiedName() != "" {
		name := nf.GetSpecifiedName()
		if users := commandsWithFlag(cmd.Root(), name); len(users) > 0 {
			hint = fmt.Sprintf("--%s is a flag of %s; %s", name, joinAnd(users), hint)
		}
	}
	return newUsageError(err, hint)
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
