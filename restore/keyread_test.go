package restore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// A restoring account that may not list key providers (ListKmsClusters is
// denied) still restores: the providers recorded in the backup stand in,
// the keys are checked with QueryCryptoKeyStatus, and restore says so.
func TestRestoreWithoutKeyServerRead(t *testing.T) {
	f := newFixture(t, "kr01")
	ctx := t.Context()
	const note = "could not be listed (the account lacks Cryptographer.ManageKeyServers)"

	// Another vCenter, this role, without the key: still refused.
	other := simtest.Start(t, vspheretest.EnvOptions{DeniedPrivileges: []string{vspheretest.PrivManageKeyServers}})
	_, err := f.restoreTo(t, ctx, other, restore.Options{})
	if !errors.Is(err, keys.ErrKeyNotAvailable) || !strings.Contains(err.Error(), f.vm.KeyID) || !strings.Contains(err.Error(), note) {
		t.Fatalf("restore without the key = %v; want ErrKeyNotAvailable naming the key and the limited check", err)
	}

	if err := f.env.DeleteVM(ctx, f.vm); err != nil {
		t.Fatal(err)
	}
	f.env.DenyPrivileges(vspheretest.PrivManageKeyServers)
	if _, err := keys.ListProviders(ctx, f.env.Client.Vim25()); err == nil {
		t.Fatal("the emulated role may list key providers")
	}
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{})
	if err != nil {
		t.Fatalf("Preflight without key server read: %v", err)
	}
	if w := strings.Join(plan.Warnings, "\n"); !strings.Contains(w, note) {
		t.Errorf("plan warnings %q, want the note %q", w, note)
	}
	if len(plan.Keys) != 1 || !plan.Keys[0].Available || !plan.Keys[0].ProvidersFromBackup || plan.Keys[0].ProviderType != keys.ProviderStandard {
		t.Errorf("key statuses %+v: want the key available, its provider type as recorded", plan.Keys)
	}
	res, err := restore.Run(ctx, f.env.Client, f.repo, plan)
	if err != nil {
		t.Fatal(err)
	}
	f.checkRestoredVM(t, f.env, res, f.vm.Name)
}
