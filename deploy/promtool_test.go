package deploy_test

import (
	"os"
	"os/exec"
	"testing"
)

// inCI reports whether we run in continuous integration, where a missing
// tool is a failure rather than a reason to skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// lookTool finds a tool a test runs: missing, the test is skipped, except
// in CI (.ci/run installs it), where it fails.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("%s not found: .ci/run must install Debian's %s", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// TestPromtoolRules runs Prometheus' own checks on the alert rules: the
// syntax and PromQL of every rule (promtool check rules), and the unit
// tests of alerts_test.yaml (promtool test rules), in which a stale
// backup fires VTPMBackupStale, a VM that is not ready fires
// VTPMBackupNotReady and a failed backup fires VTPMBackupFailed.
func TestPromtoolRules(t *testing.T) {
	promtool := lookTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
