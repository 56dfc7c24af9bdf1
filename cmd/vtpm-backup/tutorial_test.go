//go:build unix

package main

import (
	"bufio"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
)

// TestReadmeTutorial runs the tutorial of README.md as a shell script, as a
// newcomer would: against "vtpm-backup demo --keep" (a simulated vCenter
// with vTPM VMs) and a local S3 server, with the exports demo --keep prints
// in the environment. Each step must exit 0, and step 4 (backup --all
// --vtpm-only) again after step 7 restored a VM under a new name (issue 15:
// it failed there). Only what names the reader's site is replaced: the
// vCenter, the password, the S3 endpoint and credentials, the VM name.
func TestReadmeTutorial(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		if s3server.InCI() {
			t.Fatalf("the tutorial runs in bash: %v", err)
		}
		t.Skipf("no bash: %v", err)
	}
	script := readmeTutorial(t)
	srv := s3server.StartT(t)
	if err := srv.CreateBucket(t.Context(), "backups", false); err != nil {
		t.Fatal(err)
	}
	demoEnv := startDemoKeep(t)

	// The binary under test, as "vtpm-backup" on PATH.
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(os.Args[0], filepath.Join(bin, "vtpm-backup")); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(work, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}

	vc, err := url.Parse(demoEnv["GOVC_URL"])
	if err != nil {
		t.Fatal(err)
	}
	user := vc.User.Username()
	password, _ := vc.User.Password()
	vc.User = nil // the password comes from the tutorial's ~/.vc.pass
	script = substitute(t, script, [][2]string{
		{"GOVC_URL=vcenter.example.com", "GOVC_URL=" + vc.String()},
		{"GOVC_USERNAME=backup@vsphere.local", "GOVC_USERNAME=" + user},
		{"'the-vcenter-password'", "'" + password + "'"},
		{"AWS_ACCESS_KEY_ID=...", "AWS_ACCESS_KEY_ID=" + srv.AccessKey},
		{"AWS_SECRET_ACCESS_KEY=...", "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
		{"VTPM_BACKUP_REPO=s3://s3.example.com/backups/vtpm", "VTPM_BACKUP_REPO=s3+http://" + srv.Endpoint + "/backups/vtpm"},
		{"win11-01", "win11-demo"},
	})
	step4 := regexp.MustCompile(`(?m)^vtpm-backup backup .*--all --vtpm-only --parallel 2$`).FindString(script)
	if step4 == "" {
		t.Fatal("README tutorial: no step 4 (backup --all --vtpm-only --parallel 2)")
	}
	script = "set -euxo pipefail\n" + script + "\n# 4 again, now that 7 restored a VM under a new name\n" + step4 + "\n"

	cmd := exec.CommandContext(t.Context(), bash, "-c", script)
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		asMainEnv + "=1", "AWS_REGION=" + srv.Region}
	for k, v := range demoEnv { // what the user exported after demo --keep
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README tutorial failed: %v\n%s", err, out)
	}
	for _, want := range []string{"win11-demo-restore-test", "READY"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tutorial output lacks %q:\n%s", want, out)
		}
	}
}

// readmeTutorial returns the shell block of README.md's tutorial.
func readmeTutorial(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n## Tutorial")
	if !ok {
		t.Fatal("README.md has no Tutorial section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README.md's tutorial has no sh block")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("README.md's tutorial block is not closed")
	}
	return block
}

// substitute replaces each pair in s; every one must occur, so a reworded
// tutorial fails here rather than running against a made-up host.
func substitute(t *testing.T, s string, pairs [][2]string) string {
	t.Helper()
	for _, p := range pairs {
		if !strings.Contains(s, p[0]) {
			t.Fatalf("README tutorial no longer contains %q: update TestReadmeTutorial", p[0])
		}
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}

// startDemoKeep runs "vtpm-backup demo --keep" and returns the variables
// it prints for the user to export; the demo ends with the test (SIGINT,
// as the user's Ctrl-C).
func startDemoKeep(t *testing.T) map[string]string {
	t.Helper()
	// Not tied to t.Context(): that is cancelled before the cleanup, which
	// stops the demo the way a user does, with Ctrl-C.
	cmd := exec.Command(os.Args[0], "demo", "--keep", "--dir", filepath.Join(t.TempDir(), "demo"))
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("demo --keep after Ctrl-C: %v\n%s", err, stderr.String())
		}
	})
	export := regexp.MustCompile(`^\s*export ([A-Z_]+)='(.*)'$`)
	env := map[string]string{}
	sc := bufio.NewScanner(stdout)
	var seen []string
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if m := export.FindStringSubmatch(line); m != nil {
			env[m[1]] = m[2]
		}
		if strings.HasPrefix(line, "Press Ctrl-C") {
			go func() { // keep the pipe drained until the demo ends
				for sc.Scan() {
				}
			}()
			return env
		}
	}
	t.Fatalf("demo --keep ended before handing over: %v\n%s\n%s", sc.Err(), strings.Join(seen, "\n"), stderr.String())
	return nil
}
