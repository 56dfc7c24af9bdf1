package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// restoreFixture is a simulated vCenter with one vTPM VM backed up into a
// local repository whose identity file is known.
type restoreFixture struct {
	env      *vspheretest.Env
	vm       *vspheretest.VTPMVM
	repo     string
	identity string
}

func newRestoreFixture(t *testing.T, name string) *restoreFixture {
	t.Helper()
	return newRestoreFixtureIn(t, simtest.Start(t), vspheretest.VMOptions{Name: name})
}

// newRestoreFixtureIn is newRestoreFixture with the VM o in env.
func newRestoreFixtureIn(t *testing.T, env *vspheretest.Env, o vspheretest.VMOptions) *restoreFixture {
	t.Helper()
	name := o.Name
	o.Seed, o.DiskSize = 11, 8<<20
	vm := simtest.CreateVTPMVM(t, env, o)
	dir := t.TempDir()
	f := &restoreFixture{env: env, vm: vm, repo: filepath.Join(dir, "repo"), identity: filepath.Join(dir, "id.key")}
	if _, stderr, code := cli(t, "init", "--repo", f.repo, "--generate-identity", f.identity, "--chunk-size", "1MiB"); code != exitOK {
		t.Fatalf("init: %d %s", code, stderr)
	}
	if _, stderr, code := cli(t, append(f.args(env), "backup", name)...); code != exitOK {
		t.Fatalf("backup: %d %s", code, stderr)
	}
	return f
}

// args are the repository and vCenter flags, for before the command name.
func (f *restoreFixture) args(env *vspheretest.Env) []string {
	return append([]string{"--repo", f.repo, "--no-progress"}, vcArgs(env)...)
}

// globals returns parsed global options for runRestore, and opts with the
// fixture's repository and env as the vCenter.
func (f *restoreFixture) globals(t *testing.T, env *vspheretest.Env, opts restoreOptions) (*globalOptions, restoreOptions, *bytes.Buffer) {
	t.Helper()
	g, out, _ := testGlobals(t, map[string]string{"VTPM_BACKUP_IDENTITY": f.identity})
	g.NoProgress = true
	opts.Repo = repoFlags{URL: f.repo}
	opts.VCenter = vcenterFlags{URL: env.URL.String(), Insecure: true}
	return g, opts, out
}

func TestRestoreCommand(t *testing.T) {
	f := newRestoreFixture(t, "cli-vtpm")
	ctx := t.Context()
	wrongKey := filepath.Join(t.TempDir(), "wrong.key")
	if _, _, code := cli(t, "init", "--repo", filepath.Join(t.TempDir(), "other"), "--generate-identity", wrongKey); code != exitOK {
		t.Fatal("init of a second repository failed")
	}

	tests := []struct {
		name    string
		opts    restoreOptions
		args    []string
		want    int
		mention string
	}{
		{"dry run beside the original", restoreOptions{Name: "cli-copy", DryRun: true, Workers: 2}, []string{"cli-vtpm@latest"}, exitOK, ""},
		{"name exists", restoreOptions{Workers: 2}, []string{"cli-vtpm"}, exitNotReady, "--name"},
		{"unknown VM", restoreOptions{Workers: 2}, []string{"nope"}, exitUsage, "cli-vtpm"},
		{"unknown backup ID", restoreOptions{Workers: 2}, []string{"20200101T000000.000Z-deadbeef"}, exitUsage, "20200101T000000.000Z-deadbeef"},
		{"no backup that old", restoreOptions{Workers: 2}, []string{"cli-vtpm@2020-01-01"}, exitUsage, "at or before"},
		{"bad time", restoreOptions{Workers: 2}, []string{"cli-vtpm@yesterday"}, exitUsage, "yesterday"},
		{"wrong identity", restoreOptions{Name: "cli-copy", Identity: wrongKey, Workers: 2}, []string{"cli-vtpm"}, exitUsage, "identity"},
		{"unknown folder", restoreOptions{Name: "cli-copy", Folder: "/DC0/vm/nope", Workers: 2}, []string{"cli-vtpm"}, exitUsage, "--folder"},
		{"no argument", restoreOptions{Workers: 2}, nil, exitUsage, "one backup"},
		{"bad uuid", restoreOptions{UUID: "maybe", Workers: 2}, []string{"cli-vtpm"}, exitUsage, "--uuid"},
		{"files without to-dir", restoreOptions{Files: []string{"*.nvram"}, Workers: 2}, []string{"cli-vtpm"}, exitUsage, "--to-dir"},
		{"to-dir with placement", restoreOptions{ToDir: t.TempDir(), PowerOn: true, Workers: 2}, []string{"cli-vtpm"}, exitUsage, "--power-on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, opts, out := f.globals(t, f.env, tc.opts)
			err := runRestore(ctx, opts, g, tc.args)
			if code := exitCode(err); code != tc.want {
				t.Fatalf("exit status %d (%v), want %d", code, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q lacks %q", err, tc.mention)
			}
			if tc.want == exitOK && !strings.Contains(out.String(), "nothing was written") {
				t.Errorf("dry run output:\n%s", out)
			}
			if ok, _ := f.env.Client.Exists(ctx, vspheretest.Datastore, "cli-copy"); ok {
				t.Fatal("a refused or dry-run restore created the home folder")
			}
		})
	}

	t.Run("to-dir nvram", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		stdout, stderr, code := cli(t, "--repo", f.repo, "--json", "restore", "cli-vtpm", "--identity", f.identity, "--to-dir", dir, "--files", "*.nvram")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		got, err := os.ReadFile(filepath.Join(dir, "cli-vtpm.nvram"))
		if err != nil || !bytes.Equal(got, f.vm.Nvram) {
			t.Fatalf("restored nvram differs from the original (%v)", err)
		}
		msgs := jsonLines(t, stdout)
		if done := ofType(msgs, "restore_done"); len(done) != 1 || done[0]["files"] != float64(1) || done[0]["dir"] != dir {
			t.Errorf("restore_done: %v", done)
		}
	})

	t.Run("round trip after the VM is lost", func(t *testing.T) {
		if err := f.env.DeleteVM(ctx, f.vm); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := cli(t, append(f.args(f.env), "--json", "restore", "cli-vtpm", "--identity", f.identity, "--power-on")...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		msgs := jsonLines(t, stdout)
		done := ofType(msgs, "restore_done")
		if len(done) != 1 || done[0]["moref"] == "" || done[0]["powered_on"] != true || done[0]["name"] != "cli-vtpm" {
			t.Fatalf("restore_done: %v", done)
		}
		if plan := ofType(msgs, "restore_plan"); len(plan) != 1 || len(plan[0]["keys"].([]any)) != 1 {
			t.Errorf("restore_plan: %v", plan)
		}
		if sum := ofType(msgs, "summary"); len(sum) != 1 || sum[0]["succeeded"] != float64(1) {
			t.Errorf("summary: %v", sum)
		}
		vm, err := f.env.Client.FindVM(ctx, done[0]["moref"].(string))
		if err != nil {
			t.Fatal(err)
		}
		info, err := f.env.Client.VMInfo(ctx, vm)
		if err != nil || info.KeyID == nil || info.KeyID.KeyId != f.vm.KeyID || !info.VTPM {
			t.Fatalf("restored VM: %+v, %v", info, err)
		}
		nvram, err := f.env.ReadFile(ctx, vspheretest.Datastore, "cli-vtpm/cli-vtpm.nvram")
		if err != nil || !bytes.Equal(nvram, f.vm.Nvram) {
			t.Fatalf("restored nvram differs (%v)", err)
		}
	})
}

func TestRestoreCommandKeyMissing(t *testing.T) {
	f := newRestoreFixture(t, "cli-dr")
	other := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
	stdout, stderr, code := cli(t, append(f.args(other), "restore", "cli-dr", "--identity", f.identity)...)
	if code != exitNotReady {
		t.Fatalf("exit %d, want %d: %s", code, exitNotReady, stderr)
	}
	for _, want := range []string{f.vm.KeyID, f.vm.ProviderID, "standard", "register the same KMS cluster"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("a refused restore printed a plan: %s", stdout)
	}
	if ok, _ := other.Client.Exists(t.Context(), vspheretest.Datastore, "cli-dr"); ok {
		t.Fatal("the refused restore wrote to the datastore")
	}
}

// A restored VM that does not power on is kept, reported as restored with
// the power-on error, and the command fails (exit 1).
func TestRestoreCommandPowerOnFails(t *testing.T) {
	f := newRestoreFixture(t, "cli-pwr")
	f.env.InjectFault(vspheretest.Fault{Method: "PowerOnVM_Task"})
	stdout, stderr, code := cli(t, append(f.args(f.env), "--json", "restore", "cli-pwr", "--name", "cli-pwr-copy", "--identity", f.identity, "--power-on")...)
	if code != exitFailed || !strings.Contains(stderr, "did not power on") {
		t.Fatalf("exit %d, want %d with the power-on error: %s", code, exitFailed, stderr)
	}
	msgs := jsonLines(t, stdout)
	done := ofType(msgs, "restore_done")
	if len(done) != 1 || done[0]["moref"] == "" || done[0]["powered_on"] != false || !strings.Contains(done[0]["error"].(string), "did not power on") {
		t.Fatalf("restore_done: %v", done)
	}
	if sum := ofType(msgs, "summary"); len(sum) != 1 || sum[0]["failed"] != float64(1) {
		t.Errorf("summary: %v", sum)
	}
	if _, err := f.env.Client.FindVM(t.Context(), "cli-pwr-copy"); err != nil {
		t.Errorf("the restored VM was not kept: %v", err)
	}
}

// Each pre-flight step is reported once, with the VM it is about, in a
// restore to vCenter and to a folder (issue 15 item 10: "checking the
// identity" came twice).
func TestRestoreJSONStepsOnce(t *testing.T) {
	f := newRestoreFixture(t, "steps-once")
	for name, extra := range map[string][]string{
		"vcenter": {"--name", "steps-once-copy"},
		"to-dir":  {"--to-dir", t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(append([]string{"--json", "--identity", f.identity}, f.args(f.env)...), "restore", "steps-once")
			stdout, stderr, code := cli(t, append(args, extra...)...)
			if code != exitOK {
				t.Fatalf("restore: exit %d: %s", code, stderr)
			}
			count := map[string]int{}
			for _, s := range ofType(jsonLines(t, stdout), "status") {
				count[s["message"].(string)]++
				if s["vm"] != "steps-once" {
					t.Errorf("status without the VM: %v", s)
				}
			}
			if count["checking the identity"] != 1 {
				t.Errorf("\"checking the identity\" %d times, want once: %v", count["checking the identity"], count)
			}
			for msg, n := range count {
				if n > 1 {
					t.Errorf("status %q %d times", msg, n)
				}
			}
			if strings.Contains(stderr, "checking the identity") {
				t.Errorf("the step also went to stderr: %s", stderr)
			}
		})
	}
}

// --uuid shows its two choices in the help, not a placeholder to fill in.
func TestRestoreUUIDHelpShowsChoices(t *testing.T) {
	stdout, _, _ := cli(t, "restore", "--help")
	if !strings.Contains(stdout, "--uuid keep|new") {
		t.Errorf("restore --help does not show --uuid keep|new:\n%s", stdout)
	}
	_, stderr, code := cli(t, "restore", "--uuid", "maybe", "vm")
	if code != exitUsage || !strings.Contains(stderr, "keep, new") {
		t.Errorf("--uuid maybe: exit %d: %s", code, stderr)
	}
}

// A VM restored under a new name keeps the original file names, as its
// .vmx names them; it can be backed up like any other, dry run included
// (issue 15 item 4: "NAME.nvram is missing", so the tutorial's
// backup --all failed once its restore step had run).
func TestBackupOfARestoredVM(t *testing.T) {
	f := newRestoreFixture(t, "reborn")
	if _, stderr, code := cli(t, append(append([]string{"--identity", f.identity}, f.args(f.env)...), "restore", "reborn", "--name", "reborn-copy")...); code != exitOK {
		t.Fatalf("restore: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := cli(t, append(f.args(f.env), "backup", "--dry-run", "--all", "--vtpm-only")...)
	if code != exitOK || !strings.Contains(stdout, "reborn-copy/reborn.nvram") || strings.Contains(stdout, "reborn-copy.nvram") {
		t.Fatalf("backup --dry-run of the restored VM: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = cli(t, append(f.args(f.env), "backup", "--all", "--vtpm-only")...)
	if code != exitOK {
		t.Fatalf("backup of the restored VM: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
