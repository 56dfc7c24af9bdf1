package main

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzParseConfigFile: any config file is read or refused with a usage error
// (exit 2), never a panic; an age identity or private key in it never shows
// in the error (errors are printed and logged) nor gets through as a value;
// what is read names only known flags. Seeds:
// testdata/fuzz/FuzzParseConfigFile.
func FuzzParseConfigFile(f *testing.F) {
	f.Add([]byte("repo: /srv/b\n"))
	f.Add([]byte("repo: [a, b]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfigFile("/etc/vtpm-backup/config.yaml", data)
		secrets := privateKeys(string(data))
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a usage error", err)
			}
			for _, s := range secrets {
				if strings.Contains(strings.ToUpper(err.Error()), s) {
					t.Fatalf("the error quotes a private key: %v", err)
				}
			}
			return
		}
		known := configKeys()
		for flag, v := range cfg.values {
			if !slices.ContainsFunc(known, func(k configKey) bool { return k.flag == flag && k.key == v.key }) || v.value == "" {
				t.Fatalf("value %+v for flag %q", v, flag)
			}
			for _, s := range secrets {
				if strings.Contains(strings.ToUpper(v.value), s) {
					t.Fatalf("a private key got through as %s", v.key)
				}
			}
		}
	})
}

// ageKeyRE matches an age identity (upper case, as privateKeys sees it).
var ageKeyRE = regexp.MustCompile(`AGE-SECRET-KEY-[0-9A-Z]+`)

// privateKeys returns the age identities in s, upper-cased: the marker and
// the key material after it, so that a check does not flag an error that
// merely names the kind of key it refused.
func privateKeys(s string) []string {
	return ageKeyRE.FindAllString(strings.ToUpper(s), -1)
}
