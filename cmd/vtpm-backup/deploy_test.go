package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/deploy"
)

// TestDeployRecipesUseRealFlags walks every vtpm-backup command line of
// deploy/ (cron, systemd, Kubernetes) through the command tree: each
// command and flag must exist, so a renamed flag breaks this test instead
// of somebody's nightly backup. Commands not built yet are logged and
// skipped; they are checked as soon as they exist.
func TestDeployRecipesUseRealFlags(t *testing.T) {
	invs, err := deploy.Invocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) == 0 {
		t.Fatal("no vtpm-backup command lines found in deploy/")
	}
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	for _, inv := range invs {
		if err := checkInvocation(root, inv.Args); err != nil {
			var missing missingCommandError
			if errors.As(err, &missing) {
				t.Logf("%s:%d: command %q does not exist yet: not checked", inv.File, inv.Line, string(missing))
				continue
			}
			t.Errorf("%s:%d: vtpm-backup %s: %v", inv.File, inv.Line, strings.Join(inv.Args, " "), err)
		}
	}
}

// missingCommandError names a command the recipes use that is not built yet.
type missingCommandError string

func (e missingCommandError) Error() string { return "no command " + string(e) }

// checkInvocation resolves args like run and cobra would: flags before the
// command name move behind it (moveFlagsBehindCommand), subcommand names
// descend the tree until the first positional argument; every flag must be
// defined on the command reached so far or inherited, and a flag that takes
// a value consumes the next argument unless written --flag=value.
func checkInvocation(root *cobra.Command, args []string) error {
	args = moveFlagsBehindCommand(root, args)
	cmd, positional := root, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			var f *pflag.Flag
			if strings.HasPrefix(a, "--") {
				f = lookupFlag(cmd, name)
			} else if len(name) == 1 {
				f = lookupShorthand(cmd, name)
			}
			if f == nil {
				return fmt.Errorf("unknown flag %s for %s", a, cmd.CommandPath())
			}
			if f.NoOptDefVal == "" && !hasValue {
				if i+1 >= len(args) {
					return fmt.Errorf("flag %s needs a value", a)
				}
				i++
			}
			continue
		}
		if positional {
			continue
		}
		if sub := findSubcommand(cmd, a); sub != nil {
			cmd = sub
			continue
		}
		if cmd == root {
			return missingCommandError(a)
		}
		positional = true
		if !cmd.Runnable() {
			return fmt.Errorf("%s has no subcommand %s", cmd.CommandPath(), a)
		}
	}
	if !cmd.Runnable() || cmd == root {
		return errors.New("no command to run")
	}
	return nil
}

// lookupFlag finds the long flag name on cmd or inherited from its parents.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
		if f := fs.Lookup(name); f != nil {
			return f
		}
	}
	return nil
}

// lookupShorthand finds the one-letter flag on cmd or its parents.
func lookupShorthand(cmd *cobra.Command, short string) *pflag.Flag {
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
		if f := fs.ShorthandLookup(short); f != nil {
			return f
		}
	}
	return nil
}

func TestCheckInvocation(t *testing.T) {
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"init", "--repo", "/r", "--recipient", "age1x"}},
		{args: []string{"--config", "/etc/c.yaml", "--json", "init", "--chunk-size=8MiB"}},
		{args: []string{"init", "--bogus"}, wantErr: "unknown flag --bogus"},
		{args: []string{"init", "--repo"}, wantErr: "needs a value"},
		{args: []string{"--repo", "/r", "--insecure", "keys", "status", "vm1"}},
		{args: []string{"version", "--repo", "/r"}, wantErr: "unknown flag --repo for vtpm-backup version"},
		{args: []string{"--url", "vc", "init"}, wantErr: "unknown flag --url for vtpm-backup init"},
		{args: []string{"completion", "bash"}},
		{args: []string{"--json"}, wantErr: "no command"},
		{args: []string{"no-such-command", "--x"}, wantErr: "no command no-such-command"},
	} {
		err := checkInvocation(root, tc.args)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: %v, want error %q", tc.args, err, tc.wantErr)
		}
	}
}

// TestDeployConfigFiles parses the example config file and the Kubernetes
// ConfigMap's config.yaml with the real parser: no unknown key, no inline
// secret.
func TestDeployConfigFiles(t *testing.T) {
	cfgs, err := deploy.Configs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) < 2 {
		t.Fatalf("found %d config files in deploy/, want the example and the ConfigMap's", len(cfgs))
	}
	for name, data := range cfgs {
		c, err := parseConfigFile(name, data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.values["repo"].value == "" || c.values["password-file"].value == "" {
			t.Errorf("%s: want repo and password_file set: %+v", name, c.values)
		}
	}
}
