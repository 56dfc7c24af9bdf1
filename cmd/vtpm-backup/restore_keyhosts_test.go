package main

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// A restore of a Native Key Provider VM onto the standalone host is
// refused with exit 3 before anything is written, saying in text and in
// JSON what the host lacks and what to do.
func TestRestoreCommandNKPStandaloneHost(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{APIVersion: vspheretest.API80U3, NativeProviderID: "nkp-prod", NativeHasBackup: true})
	f := newRestoreFixtureIn(t, env, vspheretest.VMOptions{Name: "cli-nkp", ProviderID: "nkp-prod"})
	args := append(f.args(env), "restore", "cli-nkp", "--identity", f.identity, "--name", "cli-nkp-2", "--pool", "/DC0/host/DC0_H0/Resources")

	stdout, stderr, code := cli(t, args...)
	if code != exitNotReady {
		t.Fatalf("exit %d, want %d: %s", code, exitNotReady, stderr)
	}
	for _, want := range []string{"DC0_H0", "standalone host", "nkp-prod", "hint: restore into a cluster: pass --pool"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("a refused restore printed a plan: %s", stdout)
	}

	stdout, stderr, code = cli(t, append([]string{"--json"}, args...)...)
	if code != exitNotReady {
		t.Fatalf("--json: exit %d, want %d: %s", code, exitNotReady, stderr)
	}
	errs := ofType(jsonLines(t, stderr), ui.TypeError)
	if len(errs) != 1 {
		t.Fatalf("--json: %d error messages, want 1:\n%s", len(errs), stderr)
	}
	msg, _ := errs[0]["error"].(string)
	hint, _ := errs[0]["hint"].(string)
	if errs[0]["code"] != float64(exitNotReady) || errs[0]["reason"] != "key_host_not_in_cluster" || !strings.Contains(msg, "DC0_H0") || !strings.Contains(msg, "nkp-prod") || !strings.Contains(hint, "--pool") {
		t.Errorf("--json error message %v", errs[0])
	}
	for _, m := range jsonLines(t, stdout) {
		if m["message_type"] == ui.TypeRestorePlan || m["message_type"] == ui.TypeRestoreDone {
			t.Errorf("a refused restore printed %v", m)
		}
	}
	if ok, _ := env.Client.Exists(t.Context(), vspheretest.Datastore, "cli-nkp-2"); ok {
		t.Fatal("the refused restore wrote to the datastore")
	}
}
