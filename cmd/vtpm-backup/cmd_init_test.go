package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// newRecipient returns a fresh age public key.
func newRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

func TestInitGenerateIdentity(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	keyFile := filepath.Join(dir, "vtpm.key")
	stdout, stderr, code := cli(t, "init", "--repo", repo, "--generate-identity", keyFile)
	if code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil || len(ids) != 1 {
		t.Fatalf("identity file does not parse: %v", err)
	}
	pub := ids[0].(*age.X25519Identity).Recipient().String()
	if !strings.Contains(string(data), "# public key: "+pub) {
		t.Errorf("identity file lacks a comment with its public key:\n%s", data)
	}
	cfg, err := os.ReadFile(filepath.Join(repo, "config"))
	if err != nil {
		t.Fatalf("no config object: %v", err)
	}
	if !strings.Contains(string(cfg), pub) {
		t.Errorf("config does not name the new recipient %s", pub)
	}
	if strings.Contains(string(cfg), "AGE-SECRET-KEY") || strings.Contains(stdout, "AGE-SECRET-KEY") {
		t.Error("private key leaked into config or output")
	}
	for _, want := range []string{"created repository", repo, keyFile, pub, "offline"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestInitJSON(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	r1, r2 := newRecipient(t), newRecipient(t)
	stdout, stderr, code := cli(t, "--json", "init", "--repo", repo, "--recipient", r1, "--recipient", r2, "--chunk-size", "8MiB")
	if code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("want exactly one JSON line, got %q", stdout)
	}
	var m struct {
		MessageType string   `json:"message_type"`
		Repository  string   `json:"repository"`
		ID          string   `json:"id"`
		Version     int      `json:"version"`
		ChunkSize   int64    `json:"chunk_size"`
		Compression string   `json:"compression"`
		Recipients  []string `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("%q: %v", stdout, err)
	}
	if m.MessageType != "init" || m.Repository != repo || m.ID == "" || m.Version != repository.FormatVersion ||
		m.ChunkSize != 8<<20 || m.Compression == "" || len(m.Recipients) != 2 {
		t.Errorf("unexpected init message %+v", m)
	}
}

func TestRunInitDirect(t *testing.T) {
	g, out, _ := testGlobals(t, nil)
	opts := initOptions{Repo: repoFlags{URL: filepath.Join(t.TempDir(), "repo")}, Recipients: []string{newRecipient(t)}, ChunkSize: 1 << 20}
	if err := runInit(t.Context(), opts, g, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "chunk size 1MiB") {
		t.Errorf("output %q", out.String())
	}
	err := runInit(t.Context(), opts, g, nil)
	if !errors.Is(err, repository.ErrAlreadyInitialized) {
		t.Errorf("second init: %v, want ErrAlreadyInitialized", err)
	}
}

func TestInitTwice(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if _, stderr, code := cli(t, "init", "--repo", repo, "--recipient", newRecipient(t)); code != exitOK {
		t.Fatalf("first init: exit status %d: %s", code, stderr)
	}
	keyFile := filepath.Join(dir, "second.key")
	stdout, stderr, code := cli(t, "init", "--repo", repo, "--generate-identity", keyFile)
	if code != exitUsage {
		t.Errorf("exit status %d, want %d", code, exitUsage)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, repo) || !strings.Contains(stderr, "already") ||
		!strings.Contains(stderr, "use the existing repository") {
		t.Errorf("want one line naming %s and the remedy, got %q", repo, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("identity generated for the failed init was left behind: %v", err)
	}
}

func TestInitBadInput(t *testing.T) {
	dir := t.TempDir()
	existingKey := filepath.Join(dir, "existing.key")
	if err := os.WriteFile(existingKey, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	recipientsFile := filepath.Join(dir, "recipients.txt")
	if err := os.WriteFile(recipientsFile, []byte("# admins\n"+newRecipient(t)+"\n\nage1bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(emptyFile, []byte("# nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	good := newRecipient(t)
	repo := filepath.Join(dir, "repo")
	for _, tc := range []struct {
		name    string
		args    []string
		want    string // in stderr
		notWant string
	}{
		{"no repo", []string{"init", "--recipient", good}, "VTPM_BACKUP_REPO", ""},
		{"bad repo URL", []string{"init", "--repo", "ftp://example.com/x", "--recipient", good}, "ftp://example.com/x", ""},
		{"repo URL without bucket", []string{"init", "--repo", "s3://s3.example.com", "--recipient", good}, "no bucket", ""},
		{"repo URL with credentials", []string{"init", "--repo", "s3://AKIA:hunter2@s3.example.com/b/p", "--recipient", good}, "credentials", "hunter2"},
		{"no recipient", []string{"init", "--repo", repo}, "--generate-identity", ""},
		{"bad recipient", []string{"init", "--repo", repo, "--recipient", "age1notakey"}, "age1notakey", ""},
		{"private key as recipient", []string{"init", "--repo", repo, "--recipient", secret.String()}, "private key", secret.String()},
		{"bad recipients file line", []string{"init", "--repo", repo, "--recipients-file", recipientsFile}, "recipients.txt:4", ""},
		{"empty recipients file", []string{"init", "--repo", repo, "--recipients-file", emptyFile}, "no age public key", ""},
		{"missing recipients file", []string{"init", "--repo", repo, "--recipients-file", filepath.Join(dir, "nope")}, "--recipients-file", ""},
		{"chunk size not a power of two", []string{"init", "--repo", repo, "--recipient", good, "--chunk-size", "3MiB"}, "power of two", ""},
		{"chunk size too large", []string{"init", "--repo", repo, "--recipient", good, "--chunk-size", "128MiB"}, "64MiB", ""},
		{"chunk size too small", []string{"init", "--repo", repo, "--recipient", good, "--chunk-size", "256KiB"}, "512KiB", ""},
		{"chunk size garbage", []string{"init", "--repo", repo, "--recipient", good, "--chunk-size", "lots"}, "invalid size", ""},
		{"chunk size bad unit", []string{"init", "--repo", repo, "--recipient", good, "--chunk-size", "4XB"}, "unknown unit", ""},
		{"negative object lock", []string{"init", "--repo", repo, "--recipient", good, "--object-lock-days", "-1"}, "must not be negative", ""},
		{"identity file exists", []string{"init", "--repo", repo, "--generate-identity", existingKey}, "refusing to overwrite", ""},
		{"argument", []string{"init", "--repo", repo, "--recipient", good, "extra"}, "takes no arguments", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit status %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
			if tc.notWant != "" && strings.Contains(stderr+stdout, tc.notWant) {
				t.Errorf("output echoes %q", tc.notWant)
			}
		})
	}
	if data, _ := os.ReadFile(existingKey); string(data) != "precious" {
		t.Error("existing identity file was changed")
	}
	if _, err := os.Stat(filepath.Join(repo, "config")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed init left a config behind: %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"4194304", 4 << 20, false},
		{"4MiB", 4 << 20, false},
		{"4mib", 4 << 20, false},
		{"4M", 4 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GiB", 1 << 30, false},
		{"4MB", 4000000, false},
		{" 8 MiB ", 8 << 20, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-4MiB", 0, true},
		{"4.5MiB", 0, true},
		{"4TiB", 0, true},
		{"99999999999999999999", 0, true},
	} {
		got, err := parseByteSize(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	for n, want := range map[int64]string{4 << 20: "4MiB", 512 << 10: "512KiB", 1 << 30: "1GiB", 1000: "1000", 0: "0"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
