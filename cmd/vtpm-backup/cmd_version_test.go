package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Version: "v0.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	devel := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		name               string
		ldVersion, ldCommt string
		bi                 *debug.BuildInfo
		version, commit    string
		line               string
	}{
		{"ldflags win", "v9.9.9-3-gabc", "feedface", bi, "v9.9.9-3-gabc", "feedface",
			"vtpm-backup v9.9.9-3-gabc (commit feedface, modified) built with go1.26.0"},
		{"build info", "", "", bi, "v0.2.0", "0123456789abcdef0123",
			"vtpm-backup v0.2.0 (commit 0123456789ab, modified) built with go1.26.0"},
		{"devel", "", "", devel, "devel", "", "vtpm-backup devel built with go1.26.0"},
		{"no build info", "", "", nil, "devel", "", "vtpm-backup devel built with " + runtime.Version()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := buildVersion(tc.ldVersion, tc.ldCommt, tc.bi)
			if v.Version != tc.version || v.Commit != tc.commit {
				t.Errorf("got %+v, want version %q commit %q", v, tc.version, tc.commit)
			}
			if got := formatVersion(v); !strings.HasPrefix(got, tc.line) {
				t.Errorf("formatVersion = %q, want prefix %q", got, tc.line)
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	g, out, _ := testGlobals(t, nil)
	if err := runVersion(t.Context(), versionOptions{}, g, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "vtpm-backup ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("text output %q", out.String())
	}

	g, out, _ = testGlobals(t, nil)
	g.JSON = true
	if err := runVersion(t.Context(), versionOptions{Short: true}, g, nil); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("JSON output %q: %v", out.String(), err)
	}
	if m["message_type"] != "version" || m["go_version"] == "" || m["version"] == "" {
		t.Errorf("JSON output %v", m)
	}
}

func TestVersionCommandLine(t *testing.T) {
	stdout, stderr, code := cli(t, "version", "--short")
	if code != exitOK || stderr != "" || strings.Contains(stdout, " ") {
		t.Errorf("exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
