package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestFlagsOnlyWhereUsed: the repository flags belong to the commands that
// open a repository, the vCenter flags to those that talk to a vCenter,
// and no other command has them.
func TestFlagsOnlyWhereUsed(t *testing.T) {
	repoUsers := []string{"audit", "backup", "init", "keys status", "keys writer add", "keys writer list", "list", "prune", "restore", "unlock"}
	vcenterUsers := []string{"audit", "backup", "keys providers", "keys status", "restore"}
	groups := []struct {
		flags []string
		users []string
	}{
		{[]string{"repo", "s3-insecure", "s3-ca-file", "s3-region"}, repoUsers},
		{[]string{"url", "username", "password-file", "insecure", "ca-certs", "datacenter"}, vcenterUsers},
	}
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	for _, g := range groups {
		for _, name := range g.flags {
			if got := commandsWithFlag(root, name); !slices.Equal(got, g.users) {
				t.Errorf("--%s is a flag of %q, want %q", name, got, g.users)
			}
			if root.PersistentFlags().Lookup(name) != nil {
				t.Errorf("--%s is global", name)
			}
		}
	}
	for _, name := range []string{"json", "log-level", "no-progress", "config"} {
		if root.PersistentFlags().Lookup(name) == nil {
			t.Errorf("--%s is not global", name)
		}
	}
}

// TestFlagOfOtherCommands: a repository or vCenter flag given to a command
// that does not use it is an unknown flag (exit 2), before or after the
// command name, and the hint names the commands that take it.
func TestFlagOfOtherCommands(t *testing.T) {
	vcHint := "--url is a flag of audit, backup, keys providers, keys status and restore; run 'vtpm-backup init --help' for usage"
	for _, tc := range []struct {
		args       []string
		flag, hint string
	}{
		{[]string{"init", "--url", "vc.example.com", "--repo", "/r", "--recipient", "age1x"}, "--url", vcHint},
		{[]string{"--url", "vc.example.com", "init", "--repo", "/r"}, "--url", vcHint},
		{[]string{"version", "--password-file", "pw"}, "--password-file",
			"--password-file is a flag of audit, backup, keys providers, keys status and restore; run 'vtpm-backup version --help' for usage"},
		{[]string{"--insecure", "version"}, "--insecure",
			"--insecure is a flag of audit, backup, keys providers, keys status and restore; run 'vtpm-backup version --help' for usage"},
		{[]string{"demo", "--repo", "/r"}, "--repo",
			"--repo is a flag of audit, backup, init, keys status, keys writer add, keys writer list, list, prune, restore and unlock; run 'vtpm-backup demo --help' for usage"},
		{[]string{"keys", "providers", "--s3-region", "eu"}, "--s3-region",
			"--s3-region is a flag of audit, backup, init, keys status, keys writer add, keys writer list, list, prune, restore and unlock; run 'vtpm-backup keys providers --help' for usage"},
		{[]string{"completion", "bash", "--repo=/r"}, "--repo",
			"--repo is a flag of audit, backup, init, keys status, keys writer add, keys writer list, list, prune, restore and unlock; run 'vtpm-backup completion --help' for usage"},
		{[]string{"list", "--bogus"}, "--bogus", "run 'vtpm-backup list --help' for usage"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			want := "error: unknown flag: " + tc.flag + "\nhint: " + tc.hint + "\n"
			if code != exitUsage || stdout != "" || stderr != want {
				t.Errorf("exit status %d, stdout %q, stderr\n%s\nwant 2 and\n%s", code, stdout, stderr, want)
			}
		})
	}
	_, stderr, _ := cli(t, "--json", "version", "--url", "x")
	var msg struct{ Error, Hint string }
	if err := json.Unmarshal([]byte(stderr), &msg); err != nil || msg.Error != "unknown flag: --url" || !strings.HasPrefix(msg.Hint, "--url is a flag of audit") {
		t.Errorf("JSON error %q: %v", stderr, err)
	}
}

// TestMoveFlagsBehindCommand is the rewrite table: flags before the
// command move behind it, and what cannot be read for sure stays as it is.
func TestMoveFlagsBehindCommand(t *testing.T) {
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct {
		name     string
		in, want string
	}{
		{"cron line", "--repo /r backup vm1", "backup --repo /r vm1"},
		{"bool flags take no value", "--insecure --s3-insecure --url vc backup --all", "backup --insecure --s3-insecure --url vc --all"},
		{"flag=value", "--repo=/r --insecure=false list vm1", "list --repo=/r --insecure=false vm1"},
		{"global flags move along", "--json --repo /r --log-level debug audit vm1", "audit --json --repo /r --log-level debug vm1"},
		{"between command names", "keys --url vc status --repo /r vm1", "keys status --url vc --repo /r vm1"},
		{"before a subcommand group", "--url vc keys providers", "keys providers --url vc"},
		{"a value that names a command", "--repo list list", "list --repo list"},
		{"flag of another command moves too", "--url vc init --repo /r", "init --url vc --repo /r"},
		{"already in place", "backup --repo /r vm1", "backup --repo /r vm1"},
		{"only global flags", "--json version", "version --json"},
		{"no command", "--json", "--json"},
		{"typo in a flag", "--rpeo /r list", "--rpeo /r list"},
		{"missing value", "--repo", "--repo"},
		{"missing value before the end", "list --repo", "list --repo"},
		{"typo in the command keeps the global flags", "--json --repo /r bakcup vm1", "--json bakcup vm1"},
		{"typo in a subcommand", "--repo /r keys stauts vm1", "keys stauts vm1"},
		{"help flag", "--repo /r backup --help", "backup --help"},
		{"help flag first", "--help --repo /r list", "--help list"},
		{"help command", "--repo /r help list", "help list"},
		{"shorthand help", "--insecure backup -h", "backup -h"},
		{"double dash", "--repo /r -- list", "--repo /r -- list"},
		{"shell completion", "__complete --repo /r backup --ur", "__complete --repo /r backup --ur"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(moveFlagsBehindCommand(root, strings.Fields(tc.in)), " ")
			if got != tc.want {
				t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestFlagsBeforeCommand runs old-style command lines end to end: flags
// before the command name (a bool one among them) still work, help and a
// mistyped command still answer as before.
func TestFlagsBeforeCommand(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if _, stderr, code := cli(t, "--repo", repo, "init", "--recipient", newRecipient(t)); code != exitOK {
		t.Fatalf("--repo before init: exit status %d: %s", code, stderr)
	}
	stdout, stderr, code := cli(t, "--s3-insecure", "--repo", repo, "--json", "list")
	if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, `{"message_type":"list_summary"`) || !strings.Contains(stdout, `"backups":0`) {
		t.Errorf("--s3-insecure --repo R --json list: exit status %d, stdout %q, stderr %q; want 0 and a list_summary of no backups", code, stdout, stderr)
	}
	stdout, _, code = cli(t, "--repo", repo, "help", "list")
	if code != exitOK || !strings.Contains(stdout, "List the backups in the repository") {
		t.Errorf("--repo R help list: exit status %d, stdout %q", code, stdout)
	}
	stdout, _, code = cli(t, "--repo", repo, "prune", "--help")
	if code != exitOK || !strings.Contains(stdout, "--keep-daily") {
		t.Errorf("--repo R prune --help: exit status %d, stdout %q", code, stdout)
	}
	_, stderr, code = cli(t, "--repo", repo, "--insecure", "bakcup", "vm1")
	if code != exitUsage || !strings.Contains(stderr, `unknown command "bakcup"`) || !strings.Contains(stderr, `did you mean "backup"`) {
		t.Errorf("--repo R --insecure bakcup: exit status %d, stderr %q", code, stderr)
	}
}

// TestFlagFallbacksPerCommand: the environment and config file fill the
// repository and vCenter flags of the commands that have them and are
// ignored by the others (a config file shared by every command is fine).
func TestFlagFallbacksPerCommand(t *testing.T) {
	cfg := writeConfig(t, "url: vc-file.example.com\nrepo: /file/repo\n")
	env := map[string]string{configEnv: cfg, "GOVC_USERNAME": "env-user"}
	for _, tc := range []struct {
		path string
		args []string
		want map[string]string // flag -> value; "-" for a flag the command lacks
	}{
		{"keys providers", nil, map[string]string{"url": "vc-file.example.com", "username": "env-user", "repo": "-"}},
		{"keys status", []string{"--url", "vc-flag"}, map[string]string{"url": "vc-flag", "username": "env-user", "repo": "/file/repo"}},
		{"init", nil, map[string]string{"repo": "/file/repo", "url": "-", "username": "-"}},
		{"version", nil, map[string]string{"repo": "-", "url": "-"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			fs, err := commandFlags(t, env, tc.path, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				f := fs.Lookup(name)
				switch {
				case want == "-" && f != nil:
					t.Errorf("has --%s", name)
				case want != "-" && (f == nil || f.Value.String() != want):
					t.Errorf("--%s = %v, want %q", name, f, want)
				}
			}
		})
	}
}

// The rewrite must know every flag's arity from the tree alone: a flag
// defined with a value on one command and without on another would make
// it guess, so none may be.
func TestFlagArityUnambiguous(t *testing.T) {
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	takesValue := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			v := f.NoOptDefVal == ""
			if old, seen := takesValue[f.Name]; seen && old != v {
				t.Errorf("--%s takes a value on some commands and not on %s", f.Name, c.CommandPath())
			}
			takesValue[f.Name] = v
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
