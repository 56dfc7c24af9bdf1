package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain isolates the command tests from the developer's own setup: a
// ~/.config/vtpm-backup/config.yaml or exported VTPM_BACKUP_* / GOVC_*
// variables would otherwise change what the commands under test see.
//
// With VTPM_BACKUP_TEST_AS_MAIN=1 the test binary is vtpm-backup itself:
// tests that need a real process (signals, the README tutorial as a shell
// script) run it under that name instead of building the binary.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	dir, err := os.MkdirTemp("", "vtpm-backup-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("HOME", dir)
	for _, k := range []string{"VTPM_BACKUP_CONFIG", "VTPM_BACKUP_REPO", "VTPM_BACKUP_IDENTITY", "VTPM_BACKUP_WRITER_KEY", "VTPM_BACKUP_TRUST_WRITER",
		"GOVC_URL", "GOVC_USERNAME", "GOVC_PASSWORD", "GOVC_INSECURE", "GOVC_TLS_CA_CERTS", "GOVC_DATACENTER"} {
		os.Unsetenv(k)
	}
	// Backups in this process would set its Go memory limit (limitHeap),
	// and the simulator and other tests share the heap; children that
	// measure memory drop this from their environment.
	os.Setenv("GOMEMLIMIT", "off")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// asMainEnv makes the test binary run main (see TestMain).
const asMainEnv = "VTPM_BACKUP_TEST_AS_MAIN"
