package main

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// TestBackupCBTCommand: --enable-cbt turns CBT on and says so; the next
// backup reads only changes and says how each disk was read, in text and
// JSON; list and audit show CBT per VM; bad CBT flags are usage errors.
func TestBackupCBTCommand(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cli-cbt", Seed: 5, DiskSize: 8 << 20})
	repoDir := initLocalRepo(t)
	base := append([]string{"--repo", repoDir}, vcArgs(env)...)

	for _, bad := range [][]string{{"--cbt", "sometimes"}, {"--full-every", "-1"}, {"--cbt", "off", "--verify-cbt"}} {
		if _, stderr, code := cli(t, append(append(base, "backup", vm.Name), bad...)...); code != exitUsage {
			t.Errorf("backup %v: exit %d, want %d (%s)", bad, code, exitUsage, stderr)
		}
	}
	// Without CBT the backup reads the disk whole and says why.
	stdout, stderr, code := cli(t, append(base, "backup", vm.Name)...)
	if code != exitOK || !strings.Contains(stdout, "read whole: Changed Block Tracking is off for this VM (turn it on with --enable-cbt)") {
		t.Fatalf("backup without CBT: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = cli(t, append(base, "backup", "--enable-cbt", vm.Name)...)
	if code != exitOK || !strings.Contains(stdout, "turned on Changed Block Tracking (--enable-cbt): vSphere starts tracking at the VM's next stun") {
		t.Fatalf("backup --enable-cbt: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = cli(t, append(append([]string{"--json"}, base...), "backup", "--cbt", "on", vm.Name)...)
	if code != exitOK {
		t.Fatalf("backup --cbt on: exit %d\n%s", code, stderr)
	}
	done := ofType(jsonLines(t, stdout), "vm_done")
	if len(done) != 1 {
		t.Fatalf("%d vm_done messages", len(done))
	}
	disks, _ := done[0]["disks"].([]any)
	if len(disks) != 1 || disks[0].(map[string]any)["read"] != "changed" || done[0]["disk_bytes_read"] != float64(0) || done[0]["disk_bytes_skipped"] != float64(8<<20) {
		t.Fatalf("vm_done of an unchanged VM with CBT: %v", done[0])
	}

	repoOnly := []string{"--repo", repoDir}
	stdout, _, code = cli(t, append(append([]string{"--json"}, repoOnly...), "list", vm.Name)...)
	entries := ofType(jsonLines(t, stdout), "backup_entry")
	if code != exitOK || len(entries) != 3 {
		t.Fatalf("list: exit %d, %d entries", code, len(entries))
	}
	var on, off int
	for _, e := range entries {
		switch e["cbt"] {
		case true:
			on++
		case false:
			off++
		}
	}
	if on != 2 || off != 1 {
		t.Errorf("list: CBT on in %d backups, off in %d; want 2 and 1", on, off)
	}
	stdout, _, _ = cli(t, append(repoOnly, "list", vm.Name)...)
	if !strings.Contains(stdout, "CBT") || !strings.Contains(stdout, " on ") {
		t.Errorf("list text shows no CBT column:\n%s", stdout)
	}
	stdout, _, _ = cli(t, append(append([]string{"--json"}, repoOnly...), "audit", vm.Name)...)
	if rows := ofType(jsonLines(t, stdout), "audit_vm"); len(rows) != 1 || rows[0]["cbt"] != true {
		t.Errorf("audit --json: %v", rows)
	}
}
