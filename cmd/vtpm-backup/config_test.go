package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
)

// writeConfig writes a config file into a new directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolvedFlags parses args as the flags of restore (it has the global,
// repository and vCenter flags and --identity), resolves the fallbacks
// with env and returns the final value of each flag in names.
func resolvedFlags(t *testing.T, env map[string]string, args []string, names ...string) (map[string]string, error) {
	t.Helper()
	fs, err := commandFlags(t, env, "restore", args...)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, n := range names {
		got[n] = fs.Lookup(n).Value.String()
	}
	return got, nil
}

// TestConfigPrecedence is the precedence table: command line > environment
// > config file > default, for each layer and a few kinds of keys (string,
// bool, path, a flag whose default is not empty, a per-command flag).
func TestConfigPrecedence(t *testing.T) {
	cfg := writeConfig(t, `# vtpm-backup defaults
repo: s3://s3.example.com/file/repo
url: vc-file.example.com
insecure: true
log_level: info
password_file: secrets/vcenter-password
identity_file: /etc/vtpm-backup/file.key
`)
	cfgDir := filepath.Dir(cfg)
	names := []string{"repo", "url", "insecure", "log-level", "password-file", "identity"}
	defaults := map[string]string{"repo": "", "url": "", "insecure": "false", "log-level": "warn", "password-file": "", "identity": ""}
	fromFile := map[string]string{
		"repo": "s3://s3.example.com/file/repo", "url": "vc-file.example.com", "insecure": "true",
		"log-level": "info", "password-file": filepath.Join(cfgDir, "secrets/vcenter-password"),
		"identity": "/etc/vtpm-backup/file.key",
	}
	env := map[string]string{
		"VTPM_BACKUP_REPO":     "/env/repo",
		"GOVC_URL":             "vc-env.example.com",
		"GOVC_INSECURE":        "false",
		"VTPM_BACKUP_IDENTITY": "/env/identity.key",
	}
	flags := []string{"--repo", "/flag/repo", "--url", "vc-flag.example.com", "--insecure=true",
		"--log-level", "error", "--password-file", "/flag/pw", "--identity", "/flag/id.key"}
	fromFlags := map[string]string{"repo": "/flag/repo", "url": "vc-flag.example.com", "insecure": "true",
		"log-level": "error", "password-file": "/flag/pw", "identity": "/flag/id.key"}

	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want map[string]string
	}{
		{name: "defaults only", want: defaults},
		{name: "file over default", args: []string{"--config", cfg}, want: fromFile},
		{
			name: "env over file",
			env:  env, args: []string{"--config", cfg},
			want: with(fromFile, "repo", "/env/repo", "url", "vc-env.example.com", "insecure", "false", "identity", "/env/identity.key"),
		},
		{
			name: "flag over env and file",
			env:  env, args: append([]string{"--config", cfg}, flags...),
			want: fromFlags,
		},
		{
			name: "flag over file, env empty",
			env:  map[string]string{"VTPM_BACKUP_REPO": "", "GOVC_URL": ""},
			args: []string{"--config", cfg, "--repo", "/flag/repo", "--insecure=false"},
			want: with(fromFile, "repo", "/flag/repo", "insecure", "false"),
		},
		{
			name: "env without file",
			env:  env,
			want: with(defaults, "repo", "/env/repo", "url", "vc-env.example.com", "insecure", "false", "identity", "/env/identity.key"),
		},
		{
			name: "file from VTPM_BACKUP_CONFIG",
			env:  map[string]string{configEnv: cfg},
			want: fromFile,
		},
		{
			name: "--config over VTPM_BACKUP_CONFIG",
			env:  map[string]string{configEnv: filepath.Join(cfgDir, "missing.yaml")},
			args: []string{"--config", cfg},
			want: fromFile,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvedFlags(t, tc.env, tc.args, names...)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if got[n] != tc.want[n] {
					t.Errorf("--%s = %q, want %q", n, got[n], tc.want[n])
				}
			}
		})
	}
}

func TestConfigDefaultPath(t *testing.T) {
	xdg := t.TempDir()
	home := t.TempDir()
	write := func(dir, repo string) {
		t.Helper()
		p := filepath.Join(dir, "vtpm-backup", "config.yaml")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("repo: "+repo+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(xdg, "/xdg/repo")
	write(filepath.Join(home, ".config"), "/home/repo")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": home}, "/xdg/repo"},
		{"HOME fallback", map[string]string{"HOME": home}, "/home/repo"},
		{"relative XDG_CONFIG_HOME is ignored", map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": home}, "/home/repo"},
		{"missing default file is fine", map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, ""},
		{"no home at all", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvedFlags(t, tc.env, nil, "repo")
			if err != nil {
				t.Fatal(err)
			}
			if got["repo"] != tc.want {
				t.Errorf("--repo = %q, want %q", got["repo"], tc.want)
			}
		})
	}
}

// TestConfigErrors: every problem in the file is a usage error (exit 2)
// naming the file and the key, and never echoes a secret.
func TestConfigErrors(t *testing.T) {
	const ageSecret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	for _, tc := range []struct {
		name    string
		content string
		env     map[string]string
		want    []string // in the error
	}{
		{name: "unknown key", content: "repo: /r\nusername: u\nusernme: typo\n", want: []string{`unknown key "usernme"`, "line 3"}},
		{name: "flag spelling", content: "log-level: debug\n", want: []string{`unknown key "log-level"`}},
		{name: "inline password", content: "password: hunter2\n", want: []string{`"password"`, "not allowed inline"}},
		{name: "vcenter password", content: "vcenter_password: hunter2\n", want: []string{"not allowed inline"}},
		{name: "secret key", content: "secret_key: abc\n", want: []string{`"secret_key"`, "not allowed inline"}},
		{name: "token", content: "token: abc\n", want: []string{"not allowed inline"}},
		{name: "aws secret", content: "aws_secret_access_key: abc\n", want: []string{"S3 credentials are not read from the config file"}},
		{name: "aws profile", content: "aws_profile: backup\n", want: []string{"AWS_PROFILE"}},
		{name: "age identity inline", content: "identity_file: " + ageSecret + "\n", want: []string{"identity_file", "private key"}},
		{name: "age identity under another key", content: "username: " + ageSecret + "\n", want: []string{"private key"}},
		{name: "pem key", content: "ca_certs: |\n  -----BEGIN PRIVATE KEY-----\n  abc\n", want: []string{"private key"}},
		{name: "bad bool", content: "insecure: maybe\n", want: []string{"key insecure", "line 1"}},
		{name: "bad log level", content: "log_level: loud\n", want: []string{"unknown log level"}},
		{name: "list value", content: "repo: [a, b]\n", want: []string{"want a single value"}},
		{name: "duplicate", content: "repo: /a\nrepo: /b\n", want: []string{"given twice"}},
		{name: "not a mapping", content: "- repo\n", want: []string{"want a mapping"}},
		{name: "bad yaml", content: "repo: [\n", want: []string{"config file"}},
		{name: "missing explicit file", env: map[string]string{configEnv: "/nonexistent/vtpm-backup.yaml"}, want: []string{"read config file", "/nonexistent/vtpm-backup.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{configEnv: writeConfig(t, tc.content)}
			}
			_, err := resolvedFlags(t, env, nil, "repo")
			if err == nil {
				t.Fatal("no error")
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit status %d, want %d", code, exitUsage)
			}
			msg := err.Error() + "\n" + ui.ErrorHint(err)
			for _, w := range append(tc.want, env[configEnv]) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, secret := range []string{"hunter2", ageSecret, "BEGIN PRIVATE KEY"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q echoes the secret", msg)
				}
			}
		})
	}
}

func TestConfigEmptyAndNullValues(t *testing.T) {
	cfg := writeConfig(t, "# nothing yet\nrepo:\nurl: ''\n")
	got, err := resolvedFlags(t, map[string]string{configEnv: cfg}, nil, "repo", "url")
	if err != nil {
		t.Fatal(err)
	}
	if got["repo"] != "" || got["url"] != "" {
		t.Errorf("got %v, want empty values left unset", got)
	}
	if _, err := resolvedFlags(t, map[string]string{configEnv: writeConfig(t, "")}, nil, "repo"); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

// TestConfigThroughCommandLine runs init with the repository taken from
// the config file, and checks a bad file fails every command with exit 2.
func TestConfigThroughCommandLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	cfg := writeConfig(t, "repo: "+dir+"\nlog_level: error\n")
	t.Setenv("VTPM_BACKUP_REPO", "")
	if _, stderr, code := cli(t, "--config", cfg, "init", "--recipient", newRecipient(t)); code != exitOK {
		t.Fatalf("init: exit status %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		t.Errorf("no repository config in %s: %v", dir, err)
	}

	bad := writeConfig(t, "password: hunter2\n")
	_, stderr, code := cli(t, "--json", "--config", bad, "version")
	if code != exitUsage || !strings.Contains(stderr, `"message_type":"error"`) || strings.Contains(stderr, "hunter2") {
		t.Errorf("exit status %d, stderr %q; want 2 with a JSON error that does not echo the secret", code, stderr)
	}
}
