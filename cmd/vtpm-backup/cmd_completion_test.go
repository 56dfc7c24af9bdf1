package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionScripts: every shell gets a non-empty script, and the
// shells that are installed accept its syntax (bash must be).
func TestCompletionScripts(t *testing.T) {
	for _, tc := range []struct {
		shell    string
		check    []string // syntax check command, the script path appended
		required bool     // fail instead of skip when the shell is missing
	}{
		{shell: "bash", check: []string{"bash", "-n"}, required: true},
		// ... and loading it registers the completion function
		{shell: "bash", check: []string{"bash", "-c", `source "$1" && complete -p vtpm-backup`, "bash"}, required: true},
		{shell: "zsh", check: []string{"zsh", "-n"}},
		{shell: "fish", check: []string{"fish", "--no-execute"}},
		{shell: "powershell"},
	} {
		t.Run(strings.Join(append([]string{tc.shell}, tc.check...), " "), func(t *testing.T) {
			stdout, stderr, code := cli(t, "completion", tc.shell)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit status %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stdout, "vtpm-backup") || len(stdout) < 1000 {
				t.Fatalf("script of %d bytes does not look like a completion script for vtpm-backup", len(stdout))
			}
			if tc.check == nil {
				return
			}
			bin, err := exec.LookPath(tc.check[0])
			if err != nil {
				if tc.required {
					t.Fatalf("%s is needed to check the script: %v", tc.check[0], err)
				}
				t.Skipf("%s not installed: syntax not checked", tc.check[0])
			}
			script := filepath.Join(t.TempDir(), "vtpm-backup."+tc.shell)
			if err := os.WriteFile(script, []byte(stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), bin, append(tc.check[1:], script)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s rejects the script: %v\n%s", strings.Join(tc.check, " "), err, out)
			}
		})
	}
}

// TestCompletionBackend checks the hidden __complete command the scripts
// call: it offers the commands, the shells, and each command's own flags.
func TestCompletionBackend(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string
		wantNot []string
	}{
		{[]string{"__complete", ""}, []string{"init", "version", "completion"}, nil},
		{[]string{"__complete", "completion", ""}, []string{"bash", "zsh", "fish", "powershell"}, nil},
		{[]string{"__complete", "backup", "--re"}, []string{"--repo"}, nil},
		{[]string{"__complete", "backup", "--ur"}, []string{"--url"}, nil},
		{[]string{"__complete", "version", "--"}, []string{"--short", "--json"}, []string{"--repo", "--url"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			if code != exitOK {
				t.Fatalf("exit status %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("completions %q lack %q", stdout, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(stdout, w) {
					t.Errorf("completions %q offer %q", stdout, w)
				}
			}
		})
	}
}

func TestCompletionUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"completion"},
		{"completion", "tcsh"},
		{"completion", "bash", "zsh"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := cli(t, args...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, "bash, fish, powershell, zsh") {
				t.Errorf("exit status %d, stdout %q, stderr %q; want 2 listing the shells", code, stdout, stderr)
			}
		})
	}
}
