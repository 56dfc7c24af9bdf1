package main

import (
	"net"
	"strings"
	"testing"
)

// vCenter unreachable at the start: the backup fails at once with an error
// naming the vCenter it could not reach, and writes nothing.
func TestBackupVCenterUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	// Nothing listens there any more: connections are refused.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	repo := initLocalRepo(t)
	_, stderr, code := cli(t, "--repo", repo, "--url", "https://"+addr+"/sdk", "--insecure", "backup", "some-vm")
	if code == exitOK || !strings.Contains(stderr, addr) || !strings.Contains(stderr, "refused") {
		t.Fatalf("backup with vCenter down: exit %d, want an error naming %s and the refusal:\n%s", code, addr, stderr)
	}
	t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
}
