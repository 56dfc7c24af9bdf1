package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
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

// completed runs the hidden __complete command and returns the candidate
// values (descriptions cut off) and the directive line.
func completed(t *testing.T, args ...string) (values []string, directive string) {
	t.Helper()
	stdout, stderr, code := cli(t, append([]string{"__complete"}, args...)...)
	if code != exitOK {
		t.Fatalf("__complete %v: exit %d: %s", args, code, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		v, _, _ := strings.Cut(line, "\t")
		values = append(values, v)
	}
	return values, directive
}

// TestCompletionFromRepository: restore and keys status complete the
// repository's VMs and backup IDs, VM@ the times of its backups; list and
// audit complete VM names, leaving out those already given. Nothing asks
// the vCenter, and nothing completes to file names.
func TestCompletionFromRepository(t *testing.T) {
	b := newBackedUp(t)
	t.Setenv("GOVC_URL", "") // the repository alone answers
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"restore", "--repo", b.repo, ""}, []string{b.vm.Name, b.backupID}},
		{[]string{"restore", "--repo", b.repo, "cli"}, []string{b.vm.Name}},
		{[]string{"restore", "--repo", b.repo, b.vm.Name + "@l"}, []string{b.vm.Name + "@latest"}},
		{[]string{"restore", "--repo", b.repo, b.backupID, ""}, nil},
		{[]string{"keys", "status", "--repo", b.repo, ""}, []string{b.vm.Name, b.backupID}},
		{[]string{"list", "--repo", b.repo, ""}, []string{b.vm.Name}},
		{[]string{"list", "--repo", b.repo, b.vm.Name, ""}, nil},
		{[]string{"audit", "--repo", b.repo, "c"}, []string{b.vm.Name}},
		{[]string{"audit", "--repo", b.repo, "x"}, nil},
		{[]string{"restore", "--repo", filepath.Join(t.TempDir(), "none"), ""}, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, directive := completed(t, tc.args...)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("completions %v, want %v", got, tc.want)
			}
			if directive != ":4" {
				t.Errorf("directive %q, want :4 (no file names)", directive)
			}
		})
	}
	// The repository from the environment, as in a configured shell.
	t.Setenv("VTPM_BACKUP_REPO", b.repo)
	if got, _ := completed(t, "restore", ""); len(got) != 2 {
		t.Errorf("restore with VTPM_BACKUP_REPO: completions %v", got)
	}
}

// TestCompletionBackupFromVCenter: backup completes the vCenter's VM names
// when a vCenter is given, and offers nothing, silently, when none is.
func TestCompletionBackupFromVCenter(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cmpl-vtpm", Seed: 3, DiskSize: 1 << 20})
	t.Setenv("GOVC_URL", "")
	got, directive := completed(t, append(append([]string{"backup"}, vcArgs(env)...), "cmpl")...)
	if strings.Join(got, " ") != vm.Name || directive != ":4" {
		t.Errorf("backup completions %v (%s), want [%s]", got, directive, vm.Name)
	}
	if got, _ := completed(t, append(append([]string{"backup"}, vcArgs(env)...), vm.Name, "cmpl")...); len(got) != 0 {
		t.Errorf("a VM already named is offered again: %v", got)
	}
	all, _ := completed(t, append(append([]string{"backup"}, vcArgs(env)...), "")...)
	if len(all) < 2 || !slices.Contains(all, vm.Name) {
		t.Errorf("backup completions of the whole inventory: %v", all)
	}
	stdout, stderr, code := cli(t, "__complete", "backup", "")
	// cobra itself reports the directive on stderr; nothing else may be there
	if code != exitOK || strings.TrimSpace(stdout) != ":4" || strings.TrimSpace(stderr) != "Completion ended with directive: ShellCompDirectiveNoFileComp" {
		t.Errorf("backup without a vCenter: exit %d, stdout %q, stderr %q; want no candidates and no error", code, stdout, stderr)
	}
}
