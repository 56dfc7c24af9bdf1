package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// jsonLines decodes every line of out into a map.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func ofType(msgs []map[string]any, typ string) []map[string]any {
	var out []map[string]any
	for _, m := range msgs {
		if m["message_type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// vcArgs are the vCenter flags that point a command at the simulator; the
// tests put them before the command name, as old cron lines do.
func vcArgs(env *vspheretest.Env) []string {
	return []string{"--url", env.URL.String(), "--insecure"}
}

func initLocalRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir() + "/repo"
	if _, stderr, code := cli(t, "init", "--repo", dir, "--recipient", newRecipient(t)); code != exitOK {
		t.Fatalf("init: %d %s", code, stderr)
	}
	return dir
}

func TestBackupCommand(t *testing.T) {
	env := simtest.Start(t)
	a := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cli-a", Seed: 1, DiskSize: 16 << 20})
	b := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cli-b", Seed: 2, DiskSize: 16 << 20})
	repoDir := initLocalRepo(t)

	args := append([]string{"--json", "--repo", repoDir}, vcArgs(env)...)
	stdout, stderr, code := cli(t, append(args, "backup", "--parallel", "2", a.Name, b.Name)...)
	if code != exitOK {
		t.Fatalf("backup: exit %d\n%s", code, stderr)
	}
	msgs := jsonLines(t, stdout)
	// With --parallel the steps of two VMs interleave: each status names
	// its VM in a field of its own (issue 15 item 10).
	statuses := ofType(msgs, "status")
	seen := map[any]bool{}
	for _, s := range statuses {
		vm, _ := s["vm"].(string)
		if vm != a.Name && vm != b.Name || strings.HasPrefix(s["message"].(string), vm+": ") {
			t.Errorf("status message without its own vm field: %v", s)
		}
		seen[vm] = true
	}
	if len(seen) != 2 {
		t.Errorf("status messages of %d VMs, want 2: %v", len(seen), statuses)
	}
	done := ofType(msgs, "vm_done")
	if len(done) != 2 || done[0]["success"] != true || done[1]["success"] != true || done[0]["backup_id"] == "" {
		t.Fatalf("vm_done messages: %v", done)
	}
	sum := ofType(msgs, "summary")
	if len(sum) != 1 || sum[0]["succeeded"] != float64(2) || sum[0]["failed"] != float64(0) {
		t.Fatalf("summary: %v", sum)
	}
	if strings.Contains(stdout+stderr, env.Password) {
		t.Fatal("the vCenter password was printed")
	}

	// One VM without .nvram: exit 1, the failure named, the other backed up.
	if err := env.RemoveNvram(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = cli(t, append([]string{"--repo", repoDir, "--no-progress"}, append(vcArgs(env), "backup", a.Name, b.Name)...)...)
	if code != exitFailed || !strings.Contains(stderr, "cli-b") || !strings.Contains(stdout, ".nvram") {
		t.Fatalf("backup with a broken VM: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	be, _ := local.New(repoDir)
	repo, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := repo.ListBackupIDs(t.Context()); len(ids) != 3 {
		t.Fatalf("manifests %v, want 3", ids)
	}
}

func TestBackupCommandDryRunAndUsage(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "dry", Seed: 3, DiskSize: 8 << 20})
	repoDir := initLocalRepo(t)
	base := append([]string{"--repo", repoDir}, vcArgs(env)...)

	stdout, stderr, code := cli(t, append(base, "backup", "--dry-run", "--all", "--vtpm-only")...)
	if code != exitOK || !strings.Contains(stdout, "dry.nvram") || !strings.Contains(stdout, vm.KeyID) {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"no selection", []string{"backup"}},
		{"bad glob", []string{"backup", "--all", "--exclude", "["}},
		{"all excluded", []string{"backup", "--all", "--exclude", "*"}},
		{"bad parallel", []string{"backup", "--all", "--parallel", "0"}},
		{"memory budget below the minimum", []string{"backup", "--all", "--max-memory", "8MiB"}},
		{"memory budget not a size", []string{"backup", "--all", "--max-memory", "lots"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := cli(t, append(base, tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2: %s", code, stderr)
			}
		})
	}
	// No vCenter given.
	_, stderr, code = cli(t, "--repo", repoDir, "backup", "x")
	if code != exitUsage || !strings.Contains(stderr, "GOVC_URL") {
		t.Fatalf("no vCenter: exit %d: %s", code, stderr)
	}
}

// TestBackupToS3 backs up the fixture VM into a repository on a real S3
// server and checks every chunk the manifest lists is in the bucket.
func TestBackupToS3(t *testing.T) {
	srv := s3server.StartT(t)
	if err := srv.CreateBucket(t.Context(), "vtpm", false); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "s3-vm", Seed: 4, DiskSize: 24 << 20})
	repoURL := "s3+http://" + srv.Endpoint + "/vtpm/site-a"
	if _, stderr, code := cli(t, "init", "--repo", repoURL, "--recipient", newRecipient(t)); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	stdout, stderr, code := cli(t, append(append([]string{"--json", "--repo", repoURL}, vcArgs(env)...), "backup", vm.Name)...)
	if code != exitOK {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	done := ofType(jsonLines(t, stdout), "vm_done")
	if len(done) != 1 || done[0]["success"] != true {
		t.Fatalf("vm_done: %v", done)
	}
	repo, err := (&repoFlags{URL: repoURL}).open(t.Context(), clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	m, err := repo.ReadManifest(t.Context(), done[0]["backup_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for id, so := range m.Objects {
		cid, _ := repository.ParseChunkID(id)
		fi, err := repo.Backend().Stat(t.Context(), repository.ChunkObjectName(cid))
		if err != nil || fi.Size != so.StoredSize {
			t.Fatalf("chunk %s: %+v %v, want %d bytes", id, fi, err, so.StoredSize)
		}
	}
	nv := m.FileByType(repository.FileNvram)
	if len(nv) != 1 || nv[0].Size != int64(len(vm.Nvram)) {
		t.Fatalf("nvram %+v", nv)
	}
}

// TestBackupCommandByTag: --vsphere-tag selects exactly the tagged VMs; a
// malformed or unknown tag is a usage error (exit 2).
func TestBackupCommandByTag(t *testing.T) {
	env := simtest.Start(t)
	a := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tagged-a", Seed: 4, DiskSize: 8 << 20})
	b := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tagged-b", Seed: 5, DiskSize: 8 << 20})
	simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "untagged", Seed: 6, DiskSize: 8 << 20})
	simtest.Tag(t, env, "backup", "shard-a", a.VM, b.VM)
	repoDir := initLocalRepo(t)
	base := append([]string{"--repo", repoDir, "--json"}, vcArgs(env)...)

	stdout, stderr, code := cli(t, append(base, "backup", "--vsphere-tag", "backup/shard-a", "--dry-run")...)
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var planned []string
	for _, m := range ofType(jsonLines(t, stdout), "backup_plan") {
		planned = append(planned, m["vm"].(string))
	}
	if strings.Join(planned, ",") != "tagged-a,tagged-b" {
		t.Fatalf("planned %v, want tagged-a and tagged-b", planned)
	}

	tests := []struct {
		name string
		tag  string
		want string // in stderr
	}{
		{"no slash", "shard-a", "CATEGORY/NAME"},
		{"empty name", "backup/", "CATEGORY/NAME"},
		{"two slashes", "backup/shard/a", "CATEGORY/NAME"},
		{"unknown tag", "backup/shard-z", "shard-a"},
		{"unknown category", "nope/shard-a", "backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, append(base, "backup", "--vsphere-tag", tc.tag, "--dry-run")...)
			if code != exitUsage || !strings.Contains(stdout+stderr, tc.want) {
				t.Fatalf("exit %d, want 2 naming %q\nstdout %s\nstderr %s", code, tc.want, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, env.Password) {
				t.Fatal("the vCenter password was printed")
			}
		})
	}
}

// A login without any password says that none was given and where it is
// read from, instead of "check the user name and password" (issue 15
// item 9).
func TestNoPasswordSaysWhereItIsRead(t *testing.T) {
	env := simtest.Start(t)
	u := *env.URL
	u.User = nil
	repo := initLocalRepo(t)
	_, stderr, code := cli(t, "--repo", repo, "--url", u.String(), "--username", env.Username, "--insecure", "backup", "--all")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr)
	}
	for _, want := range []string{"no password given", "--password-file", "GOVC_PASSWORD"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
	if strings.Contains(stderr, "check the user name and password") {
		t.Errorf("stderr blames the password: %s", stderr)
	}
}
