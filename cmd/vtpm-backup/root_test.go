package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvPrecedence resolves the repository and vCenter flags of a command
// that has them (backup): a flag given wins over its environment variable.
func TestEnvPrecedence(t *testing.T) {
	env := map[string]string{
		"VTPM_BACKUP_REPO":  "/env/repo",
		"GOVC_URL":          "https://vc-env/sdk",
		"GOVC_USERNAME":     "env-user",
		"GOVC_INSECURE":     "1",
		"GOVC_TLS_CA_CERTS": "/env/ca.pem",
		"GOVC_DATACENTER":   "DC-env",
	}
	names := []string{"repo", "url", "username", "insecure", "ca-certs", "datacenter"}
	fromEnv := map[string]string{"repo": "/env/repo", "url": "https://vc-env/sdk", "username": "env-user",
		"insecure": "true", "ca-certs": "/env/ca.pem", "datacenter": "DC-env"}
	defaults := map[string]string{"repo": "", "url": "", "username": "", "insecure": "false", "ca-certs": "", "datacenter": ""}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want map[string]string
	}{
		{name: "nothing set", want: defaults},
		{name: "env only", env: env, want: fromEnv},
		{
			name: "flags win",
			env:  env,
			args: []string{"--repo", "/flag/repo", "--url", "vc-flag", "--username", "flag-user",
				"--insecure=false", "--ca-certs", "/flag/ca.pem", "--datacenter", "DC-flag"},
			want: map[string]string{"repo": "/flag/repo", "url": "vc-flag", "username": "flag-user",
				"insecure": "false", "ca-certs": "/flag/ca.pem", "datacenter": "DC-flag"},
		},
		{
			name: "mixed",
			env:  env,
			args: []string{"--repo", "/flag/repo"},
			want: map[string]string{"repo": "/flag/repo", "url": "https://vc-env/sdk", "username": "env-user",
				"insecure": "true", "ca-certs": "/env/ca.pem", "datacenter": "DC-env"},
		},
		{
			name: "empty env is unset",
			env:  map[string]string{"VTPM_BACKUP_REPO": "", "GOVC_INSECURE": ""},
			want: defaults,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := commandFlags(t, tc.env, "backup", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if got := fs.Lookup(n).Value.String(); got != tc.want[n] {
					t.Errorf("--%s = %q, want %q", n, got, tc.want[n])
				}
			}
		})
	}
}

// TestEnvThroughCommandLine checks that a real command sees the fallback:
// init with only VTPM_BACKUP_REPO set creates the repository there.
func TestEnvThroughCommandLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	t.Setenv("VTPM_BACKUP_REPO", dir)
	_, stderr, code := cli(t, "init", "--recipient", newRecipient(t))
	if code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		t.Errorf("no config in %s: %v", dir, err)
	}
}

// TestBadEnvValue: a bad GOVC_INSECURE is a usage error of the commands
// that read it, and none of those that have no vCenter flags.
func TestBadEnvValue(t *testing.T) {
	t.Setenv("GOVC_INSECURE", "maybe")
	_, stderr, code := cli(t, "keys", "providers")
	if code != exitUsage || !strings.Contains(stderr, "GOVC_INSECURE") {
		t.Errorf("keys providers: exit status %d, stderr %q; want 2 naming GOVC_INSECURE", code, stderr)
	}
	if _, stderr, code := cli(t, "version"); code != exitOK {
		t.Errorf("version: exit status %d, stderr %q; want 0 (it has no --insecure)", code, stderr)
	}
}

func TestVCenterPassword(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		file    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{name: "none"},
		{name: "env", env: map[string]string{"GOVC_PASSWORD": "from-env"}, want: "from-env"},
		{name: "file wins", file: pwFile, env: map[string]string{"GOVC_PASSWORD": "from-env"}, want: "s3cret"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := vcenterFlags{PasswordFile: tc.file}
			got, err := f.password(mapEnv(tc.env))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && exitCode(err) != exitUsage {
				t.Errorf("exit status %d for %v, want %d", exitCode(err), err, exitUsage)
			}
		})
	}
}
