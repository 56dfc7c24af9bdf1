package restore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// recipeMarker precedes the shell block of docs/recovery.md that the test
// runs: the documentation and the test cannot drift apart.
const recipeMarker = "<!-- recipe: recover.sh"

// recipe extracts the recover.sh block from docs/recovery.md into a file.
func recipe(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/recovery.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), recipeMarker)
	if !ok {
		t.Fatalf("docs/recovery.md has no %q block", recipeMarker)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("docs/recovery.md: no ```sh block after the recipe marker")
	}
	script, _, ok := strings.Cut(after, "```\n")
	if !ok {
		t.Fatal("docs/recovery.md: the recipe block does not end")
	}
	path := filepath.Join(t.TempDir(), "recover.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireTools checks the programs the recipe needs besides coreutils. In
// CI (.ci/run installs them from Debian) a missing one fails the test;
// elsewhere it skips.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"sh", "age", "zstd", "jq", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			if v := os.Getenv("CI"); v == "true" || v == "1" {
				t.Fatalf("%s not found: .ci/run must install Debian's age, zstd and jq", tool)
			}
			t.Skipf("%s not installed (apt-get install age zstd jq): recovery recipe not run", tool)
		}
	}
}

// sha256File returns the hex SHA-256 of a file.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// runRecipe runs the recipe with sh, as the documentation says.
func runRecipe(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "sh", append([]string{script}, args...)...).CombinedOutput()
	return string(out), err
}

// TestRecoveryRecipe backs up a vTPM VM into a local repository, rebuilds
// it with the recipe of docs/recovery.md and Debian's age, zstd and jq
// alone, and compares the SHA-256 of every file with the manifest and
// with the tool's own restore --to-dir. The 6 MiB disk in 4 MiB chunks
// ends in a short all-zero chunk, the case the recipe computes by hand.
func TestRecoveryRecipe(t *testing.T) {
	requireTools(t)
	script := recipe(t)
	ctx := t.Context()
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "recover-me", Seed: 5, DiskSize: 6 << 20})

	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	be, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(dir, "identity.txt")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(ctx, be, repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	repo.SetIdentities([]age.Identity{id})
	m, err := repo.ReadManifest(ctx, res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	zeroTail := false
	for _, f := range m.Files {
		if f.Type == repository.FileDiskExtent && f.Size%m.ChunkSize != 0 && f.Chunks[len(f.Chunks)-1] == repository.ZeroChunk {
			zeroTail = true
		}
	}
	if !zeroTail {
		t.Fatal("fixture: the disk does not end in a short all-zero chunk")
	}

	toolDir := filepath.Join(dir, "tool")
	if _, err := toDir(ctx, repo, m, toolDir, restore.DirOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "recovered")
	if log, err := runRecipe(t, script, repoDir, res.BackupID, identity, out); err != nil {
		t.Fatalf("recipe: %v\n%s", err, log)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(m.Files) {
		t.Errorf("recipe wrote %d files, the backup has %d", len(entries), len(m.Files))
	}
	for _, f := range m.Files {
		got := sha256File(t, filepath.Join(out, f.Name))
		if got != f.SHA256 {
			t.Errorf("%s: SHA-256 %s, manifest says %s", f.Name, got, f.SHA256)
		}
		if tool := sha256File(t, filepath.Join(toolDir, f.Name)); got != tool {
			t.Errorf("%s: SHA-256 %s, restore --to-dir wrote %s", f.Name, got, tool)
		}
	}
	nvram, err := os.ReadFile(filepath.Join(out, vm.Name+".nvram"))
	if err != nil || !bytes.Equal(nvram, vm.Nvram) {
		t.Errorf("recovered .nvram differs from the VM's (%v)", err)
	}

	// One file only: the vTPM state.
	one := filepath.Join(dir, "one")
	if log, err := runRecipe(t, script, repoDir, res.BackupID, identity, one, vm.Name+".nvram"); err != nil {
		t.Fatalf("recipe for the .nvram: %v\n%s", err, log)
	}
	if entries, _ := os.ReadDir(one); len(entries) != 1 || sha256File(t, filepath.Join(one, vm.Name+".nvram")) != hex.EncodeToString(vm.NvramSHA256[:]) {
		t.Errorf("recipe for the .nvram wrote %v", entries)
	}
}

// TestRecoveryRecipeRefuses: the recipe stops with an error, rather than
// writing wrong data, on a damaged chunk, a file name that would leave
// the output folder, and a file that already exists.
func TestRecoveryRecipeRefuses(t *testing.T) {
	requireTools(t)
	script := recipe(t)
	ctx := t.Context()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	be, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(dir, "identity.txt")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(ctx, be, repository.InitOptions{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "refuse", Seed: 6, DiskSize: 4 << 20})
	res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	manifest := filepath.Join(repoDir, "manifests", res.BackupID+".json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	// The manifest names the nvram chunk by its content hash.
	nvramChunk := hex.EncodeToString(vm.NvramSHA256[:])
	evil := strings.Replace(string(data), `"name":"`+vm.Name+`.nvram"`, `"name":"../escaped.nvram"`, 1)
	if evil == string(data) {
		t.Fatal("fixture: no .nvram entry to rename")
	}
	if err := os.WriteFile(filepath.Join(repoDir, "manifests", "evil.json"), []byte(evil), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, backupID, file, want string
		prepare                    func(out string)
	}{
		{"escaping name", "evil", "", "refusing file name", nil},
		{"existing file", res.BackupID, vm.Name + ".nvram", "not overwriting", func(out string) {
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, vm.Name+".nvram"), []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"damaged chunk", res.BackupID, vm.Name + ".nvram", "age: error", func(string) {
			obj := filepath.Join(repoDir, "data", nvramChunk[:2], nvramChunk)
			b, err := os.ReadFile(obj)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-10] ^= 0xff
			if err := os.WriteFile(obj, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if tc.prepare != nil {
				tc.prepare(out)
			}
			args := []string{repoDir, tc.backupID, identity, out}
			if tc.file != "" {
				args = append(args, tc.file)
			}
			log, err := runRecipe(t, script, args...)
			if err == nil || !strings.Contains(log, tc.want) {
				t.Fatalf("recipe: %v, want a failure saying %q:\n%s", err, tc.want, log)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escaped.nvram")); err == nil {
				t.Error("the recipe wrote outside its output folder")
			}
			if b, err := os.ReadFile(filepath.Join(out, vm.Name+".nvram")); err == nil && tc.name == "existing file" && string(b) != "keep me" {
				t.Error("the recipe overwrote an existing file")
			}
		})
	}
}
