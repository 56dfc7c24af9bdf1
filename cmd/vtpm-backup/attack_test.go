package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// The attack of issue 16: someone with only the bucket's credentials
// stores a chunk encrypted to the public recipients and a manifest that
// points the newest backup's .nvram at it. These tests run it, and the
// other forgeries of repotest.Forgeries, against the commands: list shows
// the planted backup REJECTED, audit is NOT READY (exit 3) naming it,
// restore VM@latest takes the last genuine backup, restore of the planted
// ID exits 3, and none of the attacker's bytes is written anywhere.

// attackSite is a vTPM VM backed up twice, through the CLI, into a
// repository created with --generate-identity (whose identity file pins the
// writer key).
type attackSite struct {
	env      *vspheretest.Env
	vm       *vspheretest.VTPMVM
	repo     string // --repo URL
	identity string
	genuine  []string // backup IDs, oldest first
}

func newAttackSite(t *testing.T, repoURL string) *attackSite {
	t.Helper()
	s := &attackSite{env: simtest.Start(t), repo: repoURL, identity: filepath.Join(t.TempDir(), "identity.txt")}
	s.vm = simtest.CreateVTPMVM(t, s.env, vspheretest.VMOptions{Name: "win11-demo", Seed: 16, DiskSize: 8 << 20})
	if _, stderr, code := cli(t, "init", "--repo", repoURL, "--generate-identity", s.identity); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	for range 2 {
		stdout, stderr, code := cli(t, append(append([]string{"--json", "--repo", repoURL}, vcArgs(s.env)...), "backup", s.vm.Name)...)
		if code != exitOK {
			t.Fatalf("backup: exit %d: %s", code, stderr)
		}
		s.genuine = append(s.genuine, ofType(jsonLines(t, stdout), "vm_done")[0]["backup_id"].(string))
	}
	return s
}

// plant runs one forgery as the attacker, straight on the storage.
func (s *attackSite) plant(t *testing.T, repoURL string, fg repotest.Forgery) string {
	t.Helper()
	be, err := (&repoFlags{URL: repoURL}).openBackend(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	f, err := repotest.NewForger(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	id, err := fg.Plant(t.Context(), f, s.genuine[len(s.genuine)-1])
	if err != nil {
		t.Fatalf("plant %s: %v", fg.Name, err)
	}
	return id
}

// latestGenuine is the newest genuine backup the planted ones left intact.
func (s *attackSite) latestGenuine(planted []string) string {
	for i := len(s.genuine) - 1; i >= 0; i-- {
		if !contains(planted, s.genuine[i]) {
			return s.genuine[i]
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkDefeated runs every reading command against the repository at
// repoURL, where each backup of planted was planted and rejected as
// kinds[i].
func (s *attackSite) checkDefeated(t *testing.T, repoURL string, planted, kinds []string) {
	t.Helper()
	want := s.latestGenuine(planted)
	s.checkList(t, repoURL, planted, kinds)
	s.checkAudit(t, repoURL, planted, kinds, want)
	out := t.TempDir()
	s.checkRestore(t, repoURL, planted, kinds, want, out)
	for _, id := range planted {
		// keys status selects as restore does, before asking the vCenter.
		_, stderr, code := cli(t, append([]string{"--repo", repoURL}, append(vcArgs(s.env), "keys", "status", id)...)...)
		if code != exitNotReady || !strings.Contains(stderr, id) || !strings.Contains(stderr, "REJECTED") {
			t.Errorf("keys status %s: exit %d, want 3 naming it REJECTED: %s", id, code, stderr)
		}
	}
	stdout, stderr, code := cli(t, "--json", "--repo", repoURL, "prune", "--keep-last", "1", "--dry-run")
	if code != exitOK {
		t.Fatalf("prune: exit %d: %s", code, stderr)
	}
	plan := ofType(jsonLines(t, stdout), "prune_plan")[0]
	for _, b := range plan["backups"].([]any) {
		e := b.(map[string]any)
		if contains(planted, e["backup_id"].(string)) || (e["action"] == "keep") != (e["backup_id"] == want) {
			t.Errorf("prune plan entry %v: want only %s kept, no planted backup decided on", e, want)
		}
	}
	noEvil(t, out)
}

func (s *attackSite) checkList(t *testing.T, repoURL string, planted, kinds []string) {
	t.Helper()
	stdout, stderr, code := cli(t, "--json", "--repo", repoURL, "list", "--trust-writer", s.identity)
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, stderr)
	}
	rejected := map[string]string{}
	for _, e := range ofType(jsonLines(t, stdout), "backup_entry") {
		if r, ok := e["rejected"].(string); ok {
			rejected[e["backup_id"].(string)] = r
		}
	}
	for i, id := range planted {
		if rejected[id] != kinds[i] {
			t.Errorf("list: planted %s rejected as %q, want %q (%v)", id, rejected[id], kinds[i], rejected)
		}
	}
	if len(rejected) != len(planted) {
		t.Errorf("list rejected %v, want only %v", rejected, planted)
	}
	// Text, trusting this host's own writer key (init made it here).
	stdout, _, _ = cli(t, "--repo", repoURL, "list")
	for _, id := range planted {
		if line := lineWith(stdout, id); !strings.Contains(line, "REJECTED") {
			t.Errorf("list line of %s: %q, want REJECTED", id, line)
		}
	}
}

func (s *attackSite) checkAudit(t *testing.T, repoURL string, planted, kinds []string, want string) {
	t.Helper()
	stdout, stderr, code := cli(t, append(append([]string{"--json", "--repo", repoURL}, vcArgs(s.env)...), "audit", "--trust-writer", s.identity)...)
	if code != exitNotReady {
		t.Fatalf("audit: exit %d, want 3: %s %s", code, stdout, stderr)
	}
	sum := ofType(jsonLines(t, stdout), "audit_summary")[0]
	problems, _ := sum["problems"].([]any)
	for i, id := range planted {
		found := false
		for _, p := range problems {
			found = found || strings.Contains(p.(string), id) && strings.Contains(p.(string), "REJECTED as "+kinds[i])
		}
		if !found {
			t.Errorf("audit problems %v do not name %s as %s", problems, id, kinds[i])
		}
	}
	vm := ofType(jsonLines(t, stdout), "audit_vm")[0]
	if vm["backup_id"] != want || vm["ready"] != true {
		t.Errorf("audit of %s: %v, want its genuine backup %s, ready", s.vm.Name, vm, want)
	}
}

func (s *attackSite) checkRestore(t *testing.T, repoURL string, planted, kinds []string, want, out string) {
	t.Helper()
	latest := filepath.Join(out, "latest")
	stdout, stderr, code := cli(t, "--json", "--repo", repoURL, "restore", s.vm.Name+"@latest", "--identity", s.identity, "--to-dir", latest, "--files", "*.nvram")
	if code != exitOK {
		t.Fatalf("restore @latest: exit %d: %s", code, stderr)
	}
	if done := ofType(jsonLines(t, stdout), "restore_done")[0]; done["backup_id"] != want {
		t.Errorf("restore @latest restored %v, want the genuine %s", done["backup_id"], want)
	}
	got, err := os.ReadFile(filepath.Join(latest, filepath.Base(s.vm.NvramPath)))
	if err != nil || !bytes.Equal(got, s.vm.Nvram) {
		t.Errorf("restored .nvram (%d bytes, %v) is not the VM's", len(got), err)
	}
	for i, id := range planted {
		dir := filepath.Join(out, id)
		_, stderr, code := cli(t, "--repo", repoURL, "restore", id, "--identity", s.identity, "--to-dir", dir)
		if code != exitNotReady || !strings.Contains(stderr, id) || !strings.Contains(stderr, "REJECTED as "+kinds[i]) {
			t.Errorf("restore %s: exit %d, want 3 naming it %s: %s", id, code, kinds[i], stderr)
		}
		if _, err := os.Lstat(dir); err == nil {
			t.Errorf("restore of the planted %s created %s", id, dir)
		}
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// noEvil fails if any file under dir holds the attacker's bytes.
func noEvil(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if bytes.Contains(data, []byte("EVILEVILEVILEVIL")) {
			t.Errorf("%s holds the attacker's bytes", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAttackLocal runs each forgery on its own copy of one local
// repository.
func TestAttackLocal(t *testing.T) {
	site := newAttackSite(t, filepath.Join(t.TempDir(), "repo"))
	for _, fg := range repotest.Forgeries() {
		t.Run(fg.Name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			if err := os.CopyFS(repo, os.DirFS(site.repo)); err != nil {
				t.Fatal(err)
			}
			id := site.plant(t, repo, fg)
			site.checkDefeated(t, repo, []string{id}, []string{fg.Kind})
		})
	}
}

// TestAttackS3 runs the attack, and a manifest signed with the
// attacker's own key, against a repository on a real S3 server.
func TestAttackS3(t *testing.T) {
	srv := s3server.StartT(t)
	if err := srv.CreateBucket(t.Context(), "vtpm", false); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	url := "s3+http://" + srv.Endpoint + "/vtpm/site-a"
	site := newAttackSite(t, url)
	var planted, kinds []string
	for _, fg := range repotest.Forgeries()[:2] {
		planted = append(planted, site.plant(t, url, fg))
		kinds = append(kinds, fg.Kind)
	}
	if kinds[0] != repository.RejectUnsigned || kinds[1] != repository.RejectForeign {
		t.Fatalf("forgeries %v: want the issue's unsigned manifest and a foreign signature first", kinds)
	}
	site.checkDefeated(t, url, planted, kinds)
}
