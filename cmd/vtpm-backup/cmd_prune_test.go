package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// pruneRepo creates a local repository holding four synthetic backups of
// one VM, on March 1st to 4th, each with its own nvram chunk and a shared
// disk chunk, and returns its path and the repository.
func pruneRepo(t *testing.T) (string, *repository.Repository) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, stderr, code := cli(t, "init", "--repo", dir, "--recipient", newRecipient(t), "--chunk-size", "1MiB"); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	repo.SetWriterKey(initWriterKey(t, repo)) // as a backup host would
	w := repo.NewChunkWriter()
	defer w.Close()
	for n := 1; n <= 4; n++ {
		at := time.Date(2025, 3, n, 2, 0, 0, 0, time.UTC)
		m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{BackupID: repository.NewBackupID(at), Started: at, Finished: at,
			VM: repository.VMInfo{Name: "win11", InstanceUUID: "uuid-win11", VTPM: true}}, Objects: map[string]repository.StoredObject{}}
		for _, f := range []struct{ name, typ, data string }{
			{"win11.nvram", repository.FileNvram, fmt.Sprintf("nvram %d", n)},
			{"win11-flat.vmdk", repository.FileDiskExtent, "disk"},
		} {
			data := bytes.Repeat([]byte(f.data), 100)
			id := repository.ChunkID(sha256.Sum256(data))
			so, err := w.Put(t.Context(), id, data)
			if err != nil {
				t.Fatal(err)
			}
			m.Objects[id.String()] = so
			m.Files = append(m.Files, repository.File{Name: f.name, Type: f.typ, Size: int64(len(data)),
				SHA256: hex.EncodeToString(id[:]), Chunks: []string{id.String()}})
		}
		if err := repo.WriteManifest(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	return dir, repo
}

// pruneJSONLines decodes stdout of a --json run by message type.
func pruneJSONLines(t *testing.T, stdout string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m struct {
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		out[m.MessageType] = json.RawMessage(line)
	}
	return out
}

func TestPruneDryRunJSON(t *testing.T) {
	dir, repo := pruneRepo(t)
	stdout, stderr, code := cli(t, "prune", "--repo", dir, "--keep-last", "2", "--dry-run", "--json")
	if code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	lines := pruneJSONLines(t, stdout)
	var plan ui.PrunePlanMessage
	var done ui.PruneDoneMessage
	if err := json.Unmarshal(lines[ui.TypePrunePlan], &plan); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[ui.TypePruneDone], &done); err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || plan.Keep != 2 || plan.Remove != 2 || len(plan.Backups) != 4 || plan.Policy != "keep 2 last" {
		t.Fatalf("plan %+v", plan)
	}
	if b := plan.Backups[0]; b.Action != "keep" || b.VM != "win11" || fmt.Sprint(b.Reasons) != "[last]" || !b.Time.Equal(time.Date(2025, 3, 4, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("newest backup in plan: %+v", b)
	}
	if plan.Backups[3].Action != "remove" {
		t.Fatalf("oldest backup in plan: %+v", plan.Backups[3])
	}
	// The two removed backups' nvram chunks are unreferenced but younger
	// than the grace period.
	if !done.DryRun || done.ManifestsDeleted != 2 || done.ChunksDeleted != 0 || done.ChunksYoung != 2 || done.BytesFreed <= 0 {
		t.Fatalf("done %+v", done)
	}
	if ids, _ := repo.ListBackupIDs(t.Context()); len(ids) != 4 {
		t.Fatalf("dry run removed backups: %d left", len(ids))
	}
}

func TestPruneText(t *testing.T) {
	dir, repo := pruneRepo(t)
	stdout, stderr, code := cli(t, "prune", "--repo", dir, "--keep-last", "1", "--keep-within", "1d1h", "--grace", "0")
	if code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	for _, want := range []string{
		"keep 1 last, all backups within 25h0m0s of the newest per VM: keeping 2, removing 2 of 4 backups",
		"within 25h0m0s, last",
		"deleted 2 backup manifest(s) and 2 of 5 chunks",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if ids, _ := repo.ListBackupIDs(t.Context()); len(ids) != 2 {
		t.Fatalf("%d backups left, want 2", len(ids))
	}
}

func TestPruneRefusedWhileLocked(t *testing.T) {
	dir, repo := pruneRepo(t)
	l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Hostname: "backup-host-7", Purpose: "backup"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Unlock(context.WithoutCancel(t.Context())); err != nil {
			t.Error(err)
		}
	})
	_, stderr, code := cli(t, "prune", "--repo", dir, "--keep-last", "1")
	if code != exitNotReady || !strings.Contains(stderr, "backup-host-7") {
		t.Fatalf("exit status %d, stderr %q; want 3 naming the lock holder", code, stderr)
	}
	if ids, _ := repo.ListBackupIDs(t.Context()); len(ids) != 4 {
		t.Fatal("a refused prune removed backups")
	}
}

func TestPruneBadFlags(t *testing.T) {
	dir, _ := pruneRepo(t)
	for _, args := range [][]string{
		{"--keep-daily", "-2"},
		{"--keep-within", "6m"},
		{"--keep-within", "soon"},
		{"--grace", "-1h"},
	} {
		_, stderr, code := cli(t, append([]string{"prune", "--repo", dir}, args...)...)
		if code != exitUsage {
			t.Errorf("prune %v: exit status %d (%s), want 2", args, code, stderr)
		}
	}
}

func TestKeepDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"14d", 14 * 24 * time.Hour, "14d"},
		{"2w", 14 * 24 * time.Hour, "14d"},
		{"36h", 36 * time.Hour, "1d12h"},
		{"1w3d12h", 10*24*time.Hour + 12*time.Hour, "10d12h"},
		{"1h", time.Hour, "1h"},
		{"0", 0, "0"},
	}
	for _, tc := range tests {
		var d keepDuration
		if err := d.Set(tc.in); err != nil || time.Duration(d) != tc.want || d.String() != tc.str {
			t.Errorf("Set(%q) = %v, %v (%s); want %v (%s)", tc.in, time.Duration(d), err, d.String(), tc.want, tc.str)
		}
		var again keepDuration
		if err := again.Set(d.String()); err != nil || again != d {
			t.Errorf("Set(String()) of %q: %v", tc.in, err)
		}
	}
	for _, bad := range []string{"6m", "1y", "", "-1d", "d", "1.5d"} {
		var d keepDuration
		if err := d.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
