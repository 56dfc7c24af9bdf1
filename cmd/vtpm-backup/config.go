package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
)

// configEnv selects the config file when --config is not given.
const configEnv = "VTPM_BACKUP_CONFIG"

// configKey ties a key of the config file to the flag it gives a default
// for. Paths are resolved relative to the directory of the config file.
type configKey struct {
	key, flag string
	path      bool
}

// configKeys is the one place that says which config file key sets which
// flag. Keys mirror the global, repository and vCenter flags (dashes
// become underscores), plus identity_file for the --identity flag of the
// commands that decrypt; each applies to the commands that have its flag.
// Secrets are only referenced (password_file, identity_file), never inline.
func configKeys() []configKey {
	return []configKey{
		{key: "repo", flag: "repo"},
		{key: "s3_insecure", flag: "s3-insecure"},
		{key: "s3_ca_file", flag: "s3-ca-file", path: true},
		{key: "s3_region", flag: "s3-region"},
		{key: "url", flag: "url"},
		{key: "username", flag: "username"},
		{key: "password_file", flag: "password-file", path: true},
		{key: "insecure", flag: "insecure"},
		{key: "ca_certs", flag: "ca-certs", path: true},
		{key: "datacenter", flag: "datacenter"},
		{key: "identity_file", flag: "identity", path: true},
		{key: "json", flag: "json"},
		{key: "log_level", flag: "log-level"},
		{key: "no_progress", flag: "no-progress"},
		{key: "metrics_push", flag: "metrics-push"},
	}
}

// configValue is one setting read from the config file.
type configValue struct {
	key, value string
	line       int
}

// configFile is a parsed config file: the flag defaults it sets, by flag
// name. The zero value (no file) sets nothing.
type configFile struct {
	path   string
	values map[string]configValue
}

// configPath returns the config file to read and whether the user named it
// (--config or VTPM_BACKUP_CONFIG; it must then exist). Otherwise it is
// $XDG_CONFIG_HOME/vtpm-backup/config.yaml, else
// $HOME/.config/vtpm-backup/config.yaml, and may be missing; "" when
// neither variable is set.
func configPath(flag string, lookup func(string) (string, bool)) (path string, explicit bool) {
	if flag != "" {
		return flag, true
	}
	if v, ok := lookup(configEnv); ok && v != "" {
		return v, true
	}
	if v, ok := lookup("XDG_CONFIG_HOME"); ok && filepath.IsAbs(v) {
		return filepath.Join(v, "vtpm-backup", "config.yaml"), false
	}
	if v, ok := lookup("HOME"); ok && v != "" {
		return filepath.Join(v, ".config", "vtpm-backup", "config.yaml"), false
	}
	return "", false
}

// loadConfigFile reads the config file named by the --config flag in flags,
// VTPM_BACKUP_CONFIG or the default path. A missing default file is no
// error (the zero configFile); a missing file the user named is. Every
// problem in the file is a usage error (exit 2) naming the file and key.
func loadConfigFile(flags *pflag.FlagSet, lookup func(string) (string, bool)) (configFile, error) {
	flag := ""
	if f := flags.Lookup("config"); f != nil && f.Changed {
		flag = f.Value.String()
	}
	path, explicit := configPath(flag, lookup)
	if path == "" {
		return configFile{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return configFile{}, nil
		}
		return configFile{}, newUsageError(fmt.Errorf("read config file: %w", err),
			fmt.Sprintf("pass --config with a readable YAML file, or unset %s", configEnv))
	}
	return parseConfigFile(path, data)
}

// parseConfigFile parses data, the YAML config file at path: a mapping of
// the keys of configKeys to single values. Unknown keys, inline secrets,
// lists and duplicate keys are refused.
func parseConfigFile(path string, data []byte) (configFile, error) {
	cfg := configFile{path: path, values: map[string]configValue{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, newUsageError(fmt.Errorf("config file %s: %w", path, err), "fix the YAML syntax")
	}
	if len(doc.Content) == 0 {
		return cfg, nil // empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return cfg, newUsageError(fmt.Errorf("config file %s: line %d: want a mapping of keys to values", path, top.Line),
			"write one 'key: value' per line, e.g. 'repo: s3://s3.example.com/backups/vtpm'")
	}
	keys := configKeys()
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		where := fmt.Sprintf("config file %s: line %d", path, k.Line)
		if err := refuseInlineSecret(k.Value, v); err != nil {
			return cfg, newUsageError(fmt.Errorf("%s: key %q: %w", where, k.Value, err),
				"reference secrets instead: password_file for the vCenter password (or GOVC_PASSWORD), identity_file for the age identity, AWS_PROFILE/AWS_SHARED_CREDENTIALS_FILE or the AWS_* variables for S3")
		}
		i := slices.IndexFunc(keys, func(c configKey) bool { return c.key == k.Value })
		if i < 0 {
			return cfg, newUsageError(fmt.Errorf("%s: unknown key %q", where, k.Value),
				"known keys: "+knownConfigKeys())
		}
		if seen[k.Value] {
			return cfg, newUsageError(fmt.Errorf("%s: key %q given twice", where, k.Value), "keep one of them")
		}
		seen[k.Value] = true
		if v.Kind != yaml.ScalarNode {
			return cfg, newUsageError(fmt.Errorf("%s: key %q: want a single value", where, k.Value), "")
		}
		if v.Tag == "!!null" || v.Value == "" {
			continue // like an empty environment variable: not set
		}
		val := v.Value
		if keys[i].flag == "log-level" {
			if _, err := ui.ParseLogLevel(val); err != nil {
				return cfg, newUsageError(fmt.Errorf("%s: key %q: %w", where, k.Value, err), "")
			}
		}
		if keys[i].path {
			val = expandConfigPath(path, val)
		}
		cfg.values[keys[i].flag] = configValue{key: k.Value, value: val, line: v.Line}
	}
	return cfg, nil
}

// expandConfigPath resolves p, a path written in the config file at
// cfgPath: ~/ is the home directory, a relative path is relative to the
// config file's directory (so a file can sit next to its password file).
func expandConfigPath(cfgPath, p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(cfgPath), p)
}

// refuseInlineSecret returns an error when a key looks like it holds a
// secret (password, secret, token, AWS keys) or the value is a private key.
// The error never contains the value.
func refuseInlineSecret(key string, v *yaml.Node) error {
	k := strings.ToLower(key)
	switch {
	case strings.HasPrefix(k, "aws_"):
		return errors.New("S3 credentials are not read from the config file")
	case strings.Contains(k, "password") && k != "password_file",
		strings.Contains(k, "secret"),
		strings.Contains(k, "token"),
		strings.Contains(k, "private_key"),
		strings.Contains(k, "access_key"):
		return errors.New("secrets are not allowed inline in the config file")
	}
	if v.Kind == yaml.ScalarNode {
		u := strings.ToUpper(v.Value)
		if strings.Contains(u, "AGE-SECRET-KEY-") || strings.Contains(u, "PRIVATE KEY-----") {
			return errors.New("the value is a private key, which is not allowed inline in the config file")
		}
	}
	return nil
}

// knownConfigKeys lists the keys of the config file for hints.
func knownConfigKeys() string {
	var ks []string
	for _, c := range configKeys() {
		ks = append(ks, c.key)
	}
	return strings.Join(ks, ", ")
}

// apply sets every flag of fs that has a value in the file and was set
// neither on the command line nor from the environment (skip). Flags the
// command does not have (url for init, identity_file for backup) are
// ignored: one file serves every command.
func (c configFile) apply(fs *pflag.FlagSet, skip map[string]bool) error {
	for _, k := range configKeys() {
		v, ok := c.values[k.flag]
		if !ok {
			continue
		}
		f := fs.Lookup(k.flag)
		if f == nil || f.Changed || skip[k.flag] {
			continue
		}
		if err := f.Value.Set(v.value); err != nil {
			return newUsageError(fmt.Errorf("config file %s: line %d: key %s: %w", c.path, v.line, v.key, err),
				fmt.Sprintf("fix %s in %s, or pass --%s", v.key, c.path, k.flag))
		}
	}
	return nil
}
