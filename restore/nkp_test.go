package restore_test

import (
	"errors"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

const nkpID = "nkp-prod"

// newNKPFixture backs up a vTPM VM whose key comes from a Native Key
// Provider; it returns the fixture and the provider's identity.
func newNKPFixture(t *testing.T, name string) (*fixture, string) {
	t.Helper()
	return newNKPFixtureOf(t, name, vspheretest.NativeProvider{ID: nkpID, HasBackup: true})
}

// newNKPFixtureOf is newNKPFixture with the provider described by spec.
func newNKPFixtureOf(t *testing.T, name string, spec vspheretest.NativeProvider) (*fixture, string) {
	t.Helper()
	env := simtest.Start(t, vspheretest.EnvOptions{APIVersion: vspheretest.API80U3})
	identity := env.AddNativeProviderSpec(spec)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	be := storagetest.NewFaulty(storagetest.NewMemory())
	repo, err := repository.Init(t.Context(), be, repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: name, Seed: 9, DiskSize: testDiskSize, ProviderID: spec.ID})
	res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(t.Context(), vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	repo.SetIdentities([]age.Identity{id})
	m, err := repo.ReadManifest(t.Context(), res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, be: be, repo: repo, id: id, vm: vm, m: m}, identity
}

// A new Native Key Provider under the backup's provider ID is not the
// provider the VM's key came from: refused before anything is written, on
// every API level (8.0.3's KeyStateManagedByNKP does not tell them apart).
// The provider restored from its .p12 (same identity) lets the restore
// through; a vCenter below 8.0.3 is never asked about the NKP key.
func TestNKPIdentityDecides(t *testing.T) {
	f, identity := newNKPFixture(t, "nkp01")
	for _, tc := range []struct {
		api       string
		wantAsked bool
	}{
		{vspheretest.API70U2, false},
		{vspheretest.API80U3, true},
	} {
		t.Run(tc.api, func(t *testing.T) {
			ctx := t.Context()
			target := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true, APIVersion: tc.api})
			target.AddNativeProviderSpec(vspheretest.NativeProvider{ID: nkpID, HasBackup: true})
			// Even a key the target's simulator would serve under that
			// provider ID must not let the new provider pass.
			if err := target.AddKey(f.vm.KeyID, nkpID); err != nil {
				t.Fatal(err)
			}
			before := state(t, target)
			_, err := f.restoreTo(t, ctx, target, restore.Options{})
			if !errors.Is(err, keys.ErrKeyNotAvailable) {
				t.Fatalf("restore onto a new NKP with the same ID = %v, want ErrKeyNotAvailable", err)
			}
			for _, want := range []string{f.vm.KeyID, nkpID, keys.ReasonNKPIdentityMismatch, identity, "restore the Native Key Provider " + nkpID + " from its .p12 backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal lacks %q:\n%v", want, err)
				}
			}
			if after := state(t, target); after != before {
				t.Fatalf("a refused restore changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
			}

			target.AddNativeProviderSpec(vspheretest.NativeProvider{ID: nkpID, Identity: identity, HasBackup: true})
			plan, err := restore.Preflight(ctx, target.Client, f.repo, f.m, restore.Options{})
			if err != nil {
				t.Fatalf("restore onto the provider restored from its .p12: %v", err)
			}
			if st := plan.Keys[0]; !st.Available || !strings.Contains(st.Check, keys.CheckNKPIdentity) ||
				strings.Contains(st.Check, keys.CheckKeyStatus) == !tc.wantAsked {
				t.Fatalf("key status on API %s = %+v", tc.api, st)
			}
			if asked := target.NKPStatusQueries() > 0; asked != tc.wantAsked {
				t.Fatalf("API %s: vCenter asked about NKP keys %d times, want asked=%v", tc.api, target.NKPStatusQueries(), tc.wantAsked)
			}
			res, err := restore.Run(ctx, target.Client, f.repo, plan)
			if err != nil {
				t.Fatalf("restore run: %v", err)
			}
			f.checkRestoredVM(t, target, res, f.vm.Name)
		})
	}
}
