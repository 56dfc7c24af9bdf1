package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/location"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
)

// cli runs the command line args as main would and returns what it printed
// and its exit status.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// testGlobals returns global options as after parsing an empty command line,
// with the environment replaced by env.
func testGlobals(t *testing.T, env map[string]string) (*globalOptions, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	root, g := newRootCommand(&out, &errb)
	if err := root.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	g.lookupEnv = mapEnv(env)
	if err := g.prepare(root.PersistentFlags()); err != nil {
		t.Fatal(err)
	}
	return g, &out, &errb
}

// commandFlags parses args as the flags of the command at path ("backup",
// "keys status") with the environment env, resolves the environment and
// config file fallbacks as a run does, and returns the command's flags.
func commandFlags(t *testing.T, env map[string]string, path string, args ...string) (*pflag.FlagSet, error) {
	t.Helper()
	root, g := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	g.lookupEnv = mapEnv(env)
	cmd, _, err := root.Find(strings.Fields(path))
	if err != nil || cmd == root {
		t.Fatalf("no command %q: %v", path, err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd.Flags(), g.prepare(cmd.Flags())
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("disk full"), exitFailed},
		{"context canceled", fmt.Errorf("interrupted: %w", context.Canceled), exitFailed},
		{"usage", newUsageError(errors.New("x"), ""), exitUsage},
		{"wrapped usage", fmt.Errorf("init: %w", newUsageError(errors.New("x"), "")), exitUsage},
		{"errUsage sentinel", fmt.Errorf("%w: bad", errUsage), exitUsage},
		{"not ready", fmt.Errorf("audit: %w", errNotReady), exitNotReady},
		{"bad location", fmt.Errorf("%w: x", location.ErrBadLocation), exitUsage},
		{"bad recipient", fmt.Errorf("%w: x", repository.ErrBadRecipient), exitUsage},
		{"bad chunk size", fmt.Errorf("%w: x", repository.ErrBadChunkSize), exitUsage},
		{"already initialized", fmt.Errorf("%w: x", repository.ErrAlreadyInitialized), exitUsage},
		{"key not available", &keys.NotAvailableError{VCenter: "vc-b"}, exitNotReady},
		{"locked", fmt.Errorf("prune: %w", repository.ErrLocked), exitNotReady},
		{"identity in use", fmt.Errorf("restore: %w", restore.ErrIdentityInUse), exitNotReady},
		{"unreadable manifest", fmt.Errorf("prune: %w", repository.ErrUnreadableManifest), exitNotReady},
		{"backup not found", fmt.Errorf("%w: x", repository.ErrBackupNotFound), exitUsage},
		{"ambiguous backup", &repository.AmbiguousError{Spec: "web"}, exitUsage},
		{"bad backup selection", fmt.Errorf("%w: x", repository.ErrBadSpec), exitUsage},
		{"bad selection", fmt.Errorf("%w: x", backup.ErrBadSelection), exitUsage},
		{"nothing selected", fmt.Errorf("%w: x", backup.ErrNothingSelected), exitUsage},
		{"pflag unknown flag", &pflag.NotExistError{}, exitUsage},
		{"pflag missing value", fmt.Errorf("x: %w", &pflag.ValueRequiredError{}), exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown flag", []string{"init", "--bogus"}, "unknown flag: --bogus"},
		{"unknown global flag", []string{"--bogus", "version"}, "unknown flag: --bogus"},
		{"unknown command", []string{"inti"}, `unknown command "inti"`},
		{"flag without value", []string{"init", "--recipient"}, "needs an argument"},
		{"extra argument", []string{"version", "now"}, "takes no arguments"},
		{"bad log level", []string{"--log-level", "loud", "version"}, "unknown log level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit status %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) || !strings.HasPrefix(stderr, "error: ") {
				t.Errorf("stderr %q does not start with error: and contain %q", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing (no usage dump)", stdout)
			}
		})
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	for typed, want := range map[string]string{
		"versoin": "version",
		"lsit":    "list", // cobra alone suggested "init" (issue 15 item 9)
		"inti":    "init",
		"restroe": "restore",
		"audti":   "audit",
		"bakcup":  "backup",
		"unlokc":  "unlock",
		"prun":    "prune",
		"lst":     "list",
	} {
		_, stderr, code := cli(t, typed)
		if code != exitUsage || !strings.Contains(stderr, fmt.Sprintf("did you mean %q", want)) {
			t.Errorf("%s: exit %d, stderr %q; want a suggestion of %q", typed, code, stderr, want)
		}
	}
	if _, stderr, _ := cli(t, "frobnicate"); strings.Contains(stderr, "did you mean") {
		t.Errorf("a word far from every command got a suggestion: %q", stderr)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"list", "list", 0}, {"lsit", "list", 1}, {"lsit", "init", 2}, {"", "abc", 3},
		{"kitten", "sitting", 3}, {"ab", "ba", 1}, {"ca", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	_, stderr, code := cli(t, "--json", "init", "--bogus")
	if code != exitUsage {
		t.Fatalf("exit status %d, want %d", code, exitUsage)
	}
	want := `{"message_type":"error","error":"unknown flag: --bogus","code":2,"hint":"run 'vtpm-backup init --help' for usage"}` + "\n"
	if stderr != want {
		t.Errorf("stderr\n%s\nwant\n%s", stderr, want)
	}
}

func TestHelpDocumentsExitStatusAndExamples(t *testing.T) {
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	cmds := []*cobra.Command{root}
	for _, c := range root.Commands() {
		if c.Name() != "help" {
			cmds = append(cmds, c)
		}
	}
	for _, c := range cmds {
		t.Run(c.Name(), func(t *testing.T) {
			args := []string{"--help"}
			if c != root {
				args = []string{c.Name(), "--help"}
			}
			stdout, stderr, code := cli(t, args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit status %d, stderr %q", code, stderr)
			}
			for _, want := range []string{"EXIT STATUS", "Examples:", "vtpm-backup " + strings.TrimPrefix(c.Name(), "vtpm-backup")} {
				if !strings.Contains(stdout, want) {
					t.Errorf("help lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
	stdout, _, _ := cli(t, "--help")
	for _, want := range []string{"0  success", "1  failure", "2  usage error", "3  refused or not ready", "GOVC_URL", "VTPM_BACKUP_REPO"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("root help lacks %q", want)
		}
	}
	if strings.Contains(stdout, "--password ") {
		t.Error("root help offers a password flag")
	}
}

func TestRootWithoutCommandPrintsHelp(t *testing.T) {
	stdout, _, code := cli(t)
	if code != exitOK || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("exit status %d, stdout %q", code, stdout)
	}
}
