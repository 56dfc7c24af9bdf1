package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvPrecedence(t *testing.T) {
	env := map[string]string{
		"VTPM_BACKUP_REPO":  "/env/repo",
		"GOVC_URL":          "https://vc-env/sdk",
		"GOVC_USERNAME":     "env-user",
		"GOVC_INSECURE":     "1",
		"GOVC_TLS_CA_CERTS": "/env/ca.pem",
		"GOVC_DATACENTER":   "DC-env",
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want globalOptions
	}{
		{
			name: "nothing set",
			want: globalOptions{},
		},
		{
			name: "env only",
			env:  env,
			want: globalOptions{Repo: "/env/repo", VCenter: vcenterOptions{
				URL: "https://vc-env/sdk", Username: "env-user", Insecure: true, CACerts: "/env/ca.pem", Datacenter: "DC-env"}},
		},
		{
			name: "flags win",
			env:  env,
			args: []string{"--repo", "/flag/repo", "--url", "vc-flag", "--username", "flag-user",
				"--insecure=false", "--ca-certs", "/flag/ca.pem", "--datacenter", "DC-flag"},
			want: globalOptions{Repo: "/flag/repo", VCenter: vcenterOptions{
				URL: "vc-flag", Username: "flag-user", Insecure: false, CACerts: "/flag/ca.pem", Datacenter: "DC-flag"}},
		},
		{
			name: "mixed",
			env:  env,
			args: []string{"--repo", "/flag/repo"},
			want: globalOptions{Repo: "/flag/repo", VCenter: vcenterOptions{
				URL: "https://vc-env/sdk", Username: "env-user", Insecure: true, CACerts: "/env/ca.pem", Datacenter: "DC-env"}},
		},
		{
			name: "empty env is unset",
			env:  map[string]string{"VTPM_BACKUP_REPO": "", "GOVC_INSECURE": ""},
			want: globalOptions{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, g := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
			g.lookupEnv = mapEnv(tc.env)
			fs := root.PersistentFlags()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := g.prepare(fs); err != nil {
				t.Fatal(err)
			}
			if g.Repo != tc.want.Repo || g.VCenter != tc.want.VCenter {
				t.Errorf("got repo %q vcenter %+v, want repo %q vcenter %+v", g.Repo, g.VCenter, tc.want.Repo, tc.want.VCenter)
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

func TestBadEnvValue(t *testing.T) {
	t.Setenv("GOVC_INSECURE", "maybe")
	_, stderr, code := cli(t, "version")
	if code != exitUsage || !strings.Contains(stderr, "GOVC_INSECURE") {
		t.Errorf("exit status %d, stderr %q; want 2 naming GOVC_INSECURE", code, stderr)
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
			g, _, _ := testGlobals(t, tc.env)
			g.VCenter.PasswordFile = tc.file
			got, err := g.vcenterPassword()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && exitCode(err) != exitUsage {
				t.Errorf("exit status %d for %v, want %d", exitCode(err), err, exitUsage)
			}
		})
	}
}
