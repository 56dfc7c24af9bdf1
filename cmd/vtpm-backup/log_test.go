package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// --log-level info logs each step of backup, audit and prune with its
// object and duration; debug adds every storage call, SOAP method and
// datastore transfer; --json makes them JSON lines. Neither the vCenter
// password nor the S3 secret key ever appears, at any level (issue 15
// item 6: backup, audit and prune logged nothing).
func TestLogLevels(t *testing.T) {
	const vcPassword = "vc-Pa55-never-printed"
	env := simtest.Start(t, vspheretest.EnvOptions{Username: "backup@vsphere.local", Password: vcPassword})
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "logged", Seed: 31, DiskSize: 4 << 20})
	srv := s3server.StartT(t)
	if err := srv.CreateBucket(t.Context(), "logs", false); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	t.Setenv("GOVC_PASSWORD", vcPassword)
	u := *env.URL
	u.User = nil
	dir := t.TempDir()
	identity := filepath.Join(dir, "id.key")
	repo := "s3+http://" + srv.Endpoint + "/logs/repo"
	base := []string{"--repo", repo, "--url", u.String(), "--username", "backup@vsphere.local", "--insecure", "--no-progress"}
	if _, stderr, code := cli(t, "init", "--repo", repo, "--generate-identity", identity); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}

	var all strings.Builder
	run := func(t *testing.T, want int, args ...string) string {
		t.Helper()
		stdout, stderr, code := cli(t, args...)
		all.WriteString(stdout + stderr)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\n%s\n%s", args, code, want, stdout, stderr)
		}
		return stderr
	}
	mustLog := func(t *testing.T, what, stderr string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: log lacks %q:\n%s", what, w, stderr)
			}
		}
	}

	stderr := run(t, exitOK, append([]string{"--log-level", "info"}, append(base, "backup", vm.Name)...)...)
	mustLog(t, "backup --log-level info", stderr, "level=INFO", `msg="backup step" vm=logged step="copying [LocalDS_0] logged/logged.nvram" duration=`,
		`step="creating snapshot vtpm-backup-`, `msg="VM backed up" vm=logged`, "bytes_uploaded=", `msg="repository locked"`, `msg="backup run finished" vms=1 failed=0`)
	if strings.Contains(stderr, "level=DEBUG") {
		t.Errorf("debug records at --log-level info:\n%s", stderr)
	}

	stderr = run(t, exitOK, append([]string{"--log-level", "info", "--identity", identity}, append(base, "audit", "--read-data")...)...)
	mustLog(t, "audit --log-level info", stderr, `msg="catalog loaded"`, `msg="latest manifests read"`, `msg="stored objects checked"`, "read=",
		`msg="keys checked"`, `msg="VM audited" vm=logged`, "ready=true", "duration=")

	run(t, exitOK, append(base, "backup", vm.Name)...) // a second backup for prune to remove
	stderr = run(t, exitOK, append([]string{"--log-level", "info"}, "prune", "--repo", repo, "--keep-last", "1")...)
	mustLog(t, "prune --log-level info", stderr, `msg="repository locked"`, `msg="policy applied" backups=2 keep=1 forget=1`,
		`msg="chunks listed"`, `msg="manifests deleted" deleted=1`, `msg="chunks deleted"`, "duration=")

	stderr = run(t, exitOK, append([]string{"--log-level", "debug"}, append(base, "backup", vm.Name)...)...)
	mustLog(t, "backup --log-level debug", stderr, `msg="storage call"`, "op=put-if-absent", "op=list", `msg="vSphere call" method=Login`,
		"method=CreateSnapshot_Task", `msg="datastore transfer" method=GET`, "status=200", `msg="datastore download closed"`)

	stderr = run(t, exitOK, append([]string{"--log-level", "debug", "--json"}, append(base, "backup", vm.Name)...)...)
	levels := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--json log line is not JSON: %q", line)
		}
		levels[rec["level"].(string)]++
	}
	if levels["DEBUG"] == 0 || levels["INFO"] == 0 {
		t.Errorf("--json --log-level debug: records by level %v", levels)
	}

	stderr = run(t, exitOK, append([]string{"--log-level", "debug", "--identity", identity}, append(base, "restore", vm.Name, "--name", "logged-copy")...)...)
	mustLog(t, "restore --log-level debug", stderr, `msg="vSphere call" method=RegisterVM_Task`, `msg="datastore transfer" method=PUT`)

	// The password and the secret key were in the process (environment,
	// flags' sources) all along; they must not be in any output.
	for name, secret := range map[string]string{"vCenter password": vcPassword, "S3 secret key": srv.SecretKey} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the %s appears in the output", name)
		}
	}
}
