package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// initWriterKey loads the writer key "init" created for repo at the
// default path (TestMain points XDG_CONFIG_HOME at a temporary directory).
func initWriterKey(t *testing.T, repo *repository.Repository) *repository.WriterKey {
	t.Helper()
	k, err := repository.LoadWriterKeyFile(initWriterKeyPath(t, repo))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestInitWriterKey: init creates the writer key file (0600), pins it in
// the identity file it generates, and prints it in text and JSON.
func TestInitWriterKey(t *testing.T) {
	dir := t.TempDir()
	repo, identity, key := filepath.Join(dir, "repo"), filepath.Join(dir, "id.txt"), filepath.Join(dir, "w.key")
	stdout, stderr, code := cli(t, "--json", "init", "--repo", repo, "--generate-identity", identity, "--writer-key", key)
	if code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	msg := ofType(jsonLines(t, stdout), "init")[0]
	k, err := repository.LoadWriterKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if msg["writer_key"] != k.Public().String() || msg["writer_key_file"] != key {
		t.Errorf("init message %v, want writer key %s in %s", msg, k.Public(), key)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("writer key file: %v %v, want mode 0600", fi, err)
	}
	pins, err := repository.IdentityFileWriterKeys(identity)
	if err != nil || len(pins) != 1 || pins[0] != k.Public() {
		t.Errorf("identity file pins %v (%v), want %s", pins, err, k.Public())
	}
	if got := openLocal(t, repo).WriterKeys(); len(got) != 1 || got[0] != k.Public() {
		t.Errorf("config writer keys %v", got)
	}
	// Text output names the file and the public key; a second init never
	// overwrites the key file: it signs with the key the file holds (a
	// backup host's one key for several repositories; issue 15: the
	// VTPM_BACKUP_WRITER_KEY that demo --keep exports made the README
	// tutorial's init fail).
	stdout, _, code = cli(t, "init", "--repo", filepath.Join(dir, "repo2"), "--recipient", newRecipient(t))
	if code != exitOK || !strings.Contains(stdout, "writer key") || !strings.Contains(stdout, "ed25519:") || !strings.Contains(stdout, "--trust-writer") {
		t.Errorf("init text output:\n%s", stdout)
	}
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"--writer-key": {"--writer-key", key},
		writerKeyEnv:   nil,
	} {
		t.Setenv(writerKeyEnv, key)
		repoN := filepath.Join(dir, "repo-"+strings.Trim(name, "-"))
		stdout, stderr, code = cli(t, append([]string{"init", "--repo", repoN, "--recipient", newRecipient(t)}, args...)...)
		if code != exitOK || !strings.Contains(stdout, "existing writer key "+key) {
			t.Errorf("init with an existing key file from %s: exit %d: %s%s", name, code, stdout, stderr)
		}
		if got := openLocal(t, repoN).WriterKeys(); len(got) != 1 || got[0] != k.Public() {
			t.Errorf("init with an existing key file from %s: config writer keys %v, want %s", name, got, k.Public())
		}
	}
	if after, err := os.ReadFile(key); err != nil || string(after) != string(before) {
		t.Errorf("init changed the existing writer key file (%v)", err)
	}
	// A file that is not a writer key is refused, and left alone.
	junk := filepath.Join(dir, "junk.key")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = cli(t, "init", "--repo", filepath.Join(dir, "repo3"), "--recipient", newRecipient(t), "--writer-key", junk)
	if code != exitUsage || !strings.Contains(stderr, junk) {
		t.Errorf("init onto a file that is no writer key: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo3", "config")); err == nil {
		t.Error("init created a repository although its writer key could not be read")
	}
	if data, _ := os.ReadFile(junk); string(data) != "not a key\n" {
		t.Error("init overwrote a file that is no writer key")
	}
}

// makeLegacy turns a repository into one written before signing existed:
// no writer keys in its config, no signatures.
func makeLegacy(t *testing.T, dir string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "config")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "writer_keys")
	if data, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sigs, _ := filepath.Glob(filepath.Join(dir, "manifests", "*.sig"))
	for _, s := range sigs {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyRepository: a repository from before signed backups lists its
// backups as REJECTED unsigned (with the remedy), restores them with
// --allow-unsigned named on every line, and its first backup creates a
// writer key once and says so.
func TestLegacyRepository(t *testing.T) {
	site := newAttackSite(t, filepath.Join(t.TempDir(), "repo"))
	repo, old := site.repo, site.genuine[1]
	makeLegacy(t, repo)
	keyFile := initWriterKeyPath(t, openLocal(t, repo))
	if err := os.Remove(keyFile); err != nil { // a host that never had one
		t.Fatal(err)
	}
	stdout, stderr, code := cli(t, "--repo", repo, "list")
	if code != exitOK || !strings.Contains(lineWith(stdout, old), "REJECTED (unsigned)") || !strings.Contains(stdout, "--allow-unsigned") {
		t.Fatalf("list of a legacy repository: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, _ = cli(t, "--repo", repo, "list", "--allow-unsigned")
	if !strings.Contains(lineWith(stdout, old), unsignedNote) {
		t.Errorf("list --allow-unsigned does not mark %s:\n%s", old, stdout)
	}
	_, stderr, code = cli(t, "--repo", repo, "restore", site.vm.Name, "--to-dir", filepath.Join(t.TempDir(), "no"), "--identity", site.identity)
	if code != exitNotReady || !strings.Contains(stderr, "REJECTED as unsigned") || !strings.Contains(stderr, "--allow-unsigned") {
		t.Errorf("restore of a legacy repository without --allow-unsigned: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code = cli(t, "--repo", repo, "restore", site.vm.Name, "--to-dir", out, "--files", "*.nvram", "--allow-unsigned", "--identity", site.identity)
	if code != exitOK {
		t.Fatalf("restore --allow-unsigned: exit %d: %s", code, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(l, old) && !strings.Contains(l, unsignedNote) {
			t.Errorf("restore line about %s does not say it is unsigned: %q", old, l)
		}
	}

	// The first backup creates the writer key, once.
	backup := append(append([]string{"--repo", repo}, vcArgs(site.env)...), "backup", site.vm.Name)
	stdout, stderr, code = cli(t, backup...)
	if code != exitOK || strings.Count(stdout, "had no writer key") != 1 {
		t.Fatalf("first backup into a legacy repository: exit %d\n%s%s", code, stdout, stderr)
	}
	k, err := repository.LoadWriterKeyFile(keyFile)
	if err != nil {
		t.Fatalf("writer key not created: %v", err)
	}
	if got := openLocal(t, repo).WriterKeys(); len(got) != 1 || got[0] != k.Public() {
		t.Fatalf("config writer keys %v, want %s", got, k.Public())
	}
	stdout, _, code = cli(t, backup...)
	if code != exitOK || strings.Contains(stdout, "had no writer key") {
		t.Fatalf("second backup: exit %d\n%s", code, stdout)
	}
	stdout, _, _ = cli(t, "--json", "--repo", repo, "list")
	signed := 0
	for _, e := range ofType(jsonLines(t, stdout), "backup_entry") {
		if e["rejected"] == nil {
			signed++
		}
	}
	if signed != 2 {
		t.Errorf("%d signed backups listed, want the 2 made after the key: %s", signed, stdout)
	}
}

// initWriterKeyPath is where init put the writer key of repo.
func initWriterKeyPath(t *testing.T, repo *repository.Repository) string {
	t.Helper()
	return filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "vtpm-backup", "writer-"+repo.Config().ID+".key")
}

// TestWriterKeyRotation: "keys writer add" lists a second host's key and
// "--replace" rotates; each prints the pin line; a host whose key was
// replaced refuses to back up; restores trust only what they pin.
func TestWriterKeyRotation(t *testing.T) {
	site := newAttackSite(t, filepath.Join(t.TempDir(), "repo"))
	repo := site.repo
	stdout, _, code := cli(t, "--repo", repo, "keys", "writer", "list")
	if code != exitOK || strings.Count(stdout, "ed25519:") != 2 || !strings.Contains(stdout, "yes") {
		t.Fatalf("keys writer list: exit %d\n%s", code, stdout)
	}
	newKey := filepath.Join(t.TempDir(), "writer-2.key")
	stdout, stderr, code := cli(t, "--json", "--repo", repo, "keys", "writer", "add", "--writer-key", newKey)
	if code != exitOK {
		t.Fatalf("keys writer add: exit %d: %s", code, stderr)
	}
	msg := ofType(jsonLines(t, stdout), "writer_key")[0]
	k, err := repository.LoadWriterKeyFile(newKey)
	if err != nil || msg["action"] != "added" || msg["pin_line"] != k.Public().PinLine() {
		t.Fatalf("keys writer add: %v (%v)", msg, err)
	}
	backup := func(extra ...string) (string, string, int) {
		return cli(t, append(append(append([]string{"--json", "--repo", repo}, vcArgs(site.env)...), "backup", site.vm.Name), extra...)...)
	}
	stdout, stderr, code = backup("--writer-key", newKey)
	if code != exitOK {
		t.Fatalf("backup with the added key: exit %d: %s", code, stderr)
	}
	fresh := ofType(jsonLines(t, stdout), "vm_done")[0]["backup_id"].(string)

	stdout, _, code = cli(t, "--repo", repo, "keys", "writer", "add", "--replace", "--writer-key", newKey)
	if code != exitOK || !strings.Contains(stdout, "now the only one") || !strings.Contains(stdout, k.Public().PinLine()) {
		t.Fatalf("keys writer add --replace: exit %d\n%s", code, stdout)
	}
	_, stderr, code = backup() // this host's old key, no longer listed
	if code != exitUsage || !strings.Contains(stderr, "not among the writer keys") {
		t.Fatalf("backup with a replaced key: exit %d: %s", code, stderr)
	}
	_, stderr, code = cli(t, "--repo", repo, "keys", "writer", "add", "--replace", "--writer-key", newKey)
	if code != exitUsage || !strings.Contains(stderr, "already the only one") {
		t.Errorf("replacing the only key with itself: exit %d: %s", code, stderr)
	}

	// The identity file pins only the old key: the new key's backup is
	// foreign to it until its pin line is added.
	rejected := func(args ...string) map[string]string {
		stdout, stderr, code := cli(t, append([]string{"--json", "--repo", repo, "list"}, args...)...)
		if code != exitOK {
			t.Fatalf("list: %s", stderr)
		}
		out := map[string]string{}
		for _, e := range ofType(jsonLines(t, stdout), "backup_entry") {
			if r, ok := e["rejected"].(string); ok {
				out[e["backup_id"].(string)] = r
			}
		}
		return out
	}
	if got := rejected("--trust-writer", site.identity); len(got) != 1 || got[fresh] != repository.RejectForeign {
		t.Errorf("trusting the identity file: rejected %v, want %s foreign", got, fresh)
	}
	f, err := os.OpenFile(site.identity, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(k.Public().PinLine() + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := rejected("--trust-writer", site.identity); len(got) != 0 {
		t.Errorf("with the new pin line added: rejected %v, want none", got)
	}
}

// TestConfigTrustWarns: a reader with nothing pinned trusts the config's
// keys, and says so on stderr.
func TestConfigTrustWarns(t *testing.T) {
	site := newAttackSite(t, filepath.Join(t.TempDir(), "repo"))
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // another host: no writer key file
	stdout, stderr, code := cli(t, "--repo", site.repo, "list")
	if code != exitOK || !strings.Contains(stdout, site.genuine[1]) || strings.Contains(stdout, "REJECTED") {
		t.Fatalf("list: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "no writer key is pinned") {
		t.Errorf("no warning about trusting the config: %q", stderr)
	}
	_, stderr, _ = cli(t, "--repo", site.repo, "list", "--trust-writer", site.identity)
	if strings.Contains(stderr, "no writer key is pinned") {
		t.Errorf("warning despite a pinned key: %q", stderr)
	}
}
