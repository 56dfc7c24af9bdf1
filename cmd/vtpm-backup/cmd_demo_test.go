package main

import (
	"strings"
	"testing"
)

// TestDemoCommand runs "vtpm-backup demo" end to end, as make demo does.
func TestDemoCommand(t *testing.T) {
	stdout, stderr, code := cli(t, "demo", "--dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"demo passed", "identical to the original", "refused, as it must be", "why:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, code = cli(t, "--json", "demo", "--dir", t.TempDir())
	if code != exitOK || len(ofType(jsonLines(t, stdout), "status")) < 10 || len(ofType(jsonLines(t, stdout), "summary")) != 1 {
		t.Fatalf("demo --json: exit %d\n%s", code, stdout)
	}
}
