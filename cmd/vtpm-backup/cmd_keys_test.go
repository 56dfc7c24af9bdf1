package main

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

func TestKeysProvidersCommand(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{NativeProviderID: "nkp-prod", NativeHasBackup: false})
	stdout, stderr, code := cli(t, append(vcArgs(env), "keys", "providers")...)
	if code != exitOK {
		t.Fatalf("keys providers: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"NKP BACKED UP", "kms-prod", "standard", "nkp-prod", "native", "NO"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, _ = cli(t, append(append([]string{"--json"}, vcArgs(env)...), "keys", "providers")...)
	ps := ofType(jsonLines(t, stdout), "key_provider")
	if len(ps) != 2 {
		t.Fatalf("key_provider messages: %v", ps)
	}
	for _, p := range ps {
		if p["id"] == "nkp-prod" && (p["type"] != "native" || p["nkp_backed_up"] != false) {
			t.Errorf("native provider: %v", p)
		}
	}
	if _, stderr, code := cli(t, "keys", "providers"); code != exitUsage || !strings.Contains(stderr, "GOVC_URL") {
		t.Errorf("without vCenter: exit %d: %s", code, stderr)
	}
}

func TestKeysStatusCommand(t *testing.T) {
	b := newBackedUp(t)
	for _, arg := range []string{b.vm.Name, b.vm.Name + "@latest", b.backupID} {
		stdout, stderr, code := cli(t, b.args("keys", "status", arg)...)
		if code != exitOK || !strings.Contains(stdout, b.vm.KeyID) || !strings.Contains(stdout, "AVAILABLE") {
			t.Fatalf("keys status %s: exit %d\n%s\n%s", arg, code, stdout, stderr)
		}
	}
	// Another vCenter that does not know the provider: exit 3 and the remedy.
	other, err := vspheretest.NewSecondEnv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	args := []string{"--json", "--repo", b.repo, "--url", other.URL.String(), "--insecure", "keys", "status", b.vm.Name}
	stdout, stderr, code := cli(t, args...)
	if code != exitNotReady {
		t.Fatalf("keys status on a vCenter without the provider: exit %d: %s", code, stderr)
	}
	st := ofType(jsonLines(t, stdout), "key_status")
	if len(st) != 1 || st[0]["available"] != false || st[0]["provider_registered"] != false || !strings.Contains(st[0]["remedy"].(string), "register the same KMS cluster") {
		t.Fatalf("key_status: %v", st)
	}
	if !strings.Contains(stderr, b.vm.KeyID) || !strings.Contains(stderr, "cannot be restored on") {
		t.Errorf("stderr: %s", stderr)
	}
	if _, stderr, code := cli(t, b.args("keys", "status", "no-such")...); code != exitUsage || !strings.Contains(stderr, "no backup of a VM named") {
		t.Errorf("unknown backup: exit %d: %s", code, stderr)
	}
	if _, stderr, code := cli(t, b.args("keys", "status", b.vm.Name+"@soon")...); code != exitUsage || !strings.Contains(stderr, "invalid backup selection") {
		t.Errorf("unreadable selection: exit %d: %s", code, stderr)
	}
	if _, _, code := cli(t, b.args("keys", "bogus")...); code != exitUsage {
		t.Errorf("unknown keys subcommand: exit %d", code)
	}
}
