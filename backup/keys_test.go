package backup

import (
	"reflect"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// What backup writes, keys.FromManifest reads back: the same keys, uses
// and providers.
func TestManifestKeysRoundTrip(t *testing.T) {
	no := false
	k := keys.VMKeys{
		VTPM: true, Firmware: "efi", Encrypted: true,
		VMKey:     &keys.KeyRef{KeyID: "k1", ProviderID: "nkp", Use: keys.UseVM},
		DiskKeys:  []keys.KeyRef{{KeyID: "k2", ProviderID: "kms", Use: keys.DiskUse(2000)}},
		Providers: []keys.Provider{{ID: "nkp", Type: keys.ProviderNative, BackedUp: &no, NKPKeyID: "7d0c3a4e-nkp-identity", TPMRequired: &no}, {ID: "kms", Type: keys.ProviderStandard}},
	}
	infos := manifestKeys(k)
	if len(infos) != 2 || infos[0].ProviderType != "native" || infos[0].NKPBackedUp == nil || *infos[0].NKPBackedUp || infos[1].Use != "disk:2000" {
		t.Fatalf("manifestKeys = %+v", infos)
	}
	if got := manifestKeys(keys.VMKeys{VMKey: &keys.KeyRef{KeyID: "x", ProviderID: "gone"}}); got[0].ProviderType != "unknown" {
		t.Fatalf("provider not captured: %+v", got)
	}
	m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{VM: repository.VMInfo{VTPM: true, Firmware: "efi", Encrypted: true}, Keys: infos, Providers: keys.ManifestProviders(k)}}
	back := keys.FromManifest(m)
	if !reflect.DeepEqual(back.Refs(), k.Refs()) || !reflect.DeepEqual(back.Providers, k.Providers) || !back.VTPM || back.Firmware != "efi" {
		t.Fatalf("FromManifest(manifestKeys(k)) = %+v, want %+v", back, k)
	}
}

// A manifest written before providers were recorded (keys only) still
// reads: each key's provider type and NKP backup flag, no identity.
func TestFromManifestWithoutProviders(t *testing.T) {
	yes := true
	m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{
		VM: repository.VMInfo{VTPM: true, Encrypted: true},
		Keys: []repository.KeyInfo{
			{KeyID: "k1", ProviderID: "nkp", ProviderType: "native", Use: keys.UseVM, NKPBackedUp: &yes},
			{KeyID: "k2", ProviderID: "nkp", ProviderType: "native", Use: keys.DiskUse(2000)},
		},
	}}
	back := keys.FromManifest(m)
	want := []keys.Provider{{ID: "nkp", Type: keys.ProviderNative, BackedUp: &yes}}
	if !reflect.DeepEqual(back.Providers, want) || back.VMKey == nil || len(back.DiskKeys) != 1 {
		t.Fatalf("FromManifest(old manifest) = %+v, want providers %+v", back, want)
	}
}

// A VM whose key comes from a Native Key Provider: the manifest records
// the provider's type, identity, tpmRequired and backup flag, so a restore
// can tell the same provider from a new one under the same ID.
func TestBackupRecordsNativeProvider(t *testing.T) {
	env := simtest.Start(t)
	identity := env.AddNativeProviderSpec(vspheretest.NativeProvider{ID: "nkp-prod", HasBackup: true, TPMRequired: true})
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "nkp-vm", Seed: 5, DiskSize: 1 << 20, ProviderID: "nkp-prod"})
	r := repotest.New(t, repotest.Options{})
	res := New(env.Client, r.Repository, Options{Workers: 1, ToolVersion: "test"}, nil).BackupVM(t.Context(), vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	m, err := r.ReadManifest(t.Context(), res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := []repository.ProviderInfo{{ID: "nkp-prod", Type: "native", NKPKeyID: identity, TPMRequired: &yes, BackedUp: &yes}}
	if !reflect.DeepEqual(m.Providers, want) {
		t.Fatalf("manifest providers %+v, want %+v", m.Providers, want)
	}
	if len(m.Keys) != 1 || m.Keys[0].ProviderID != "nkp-prod" || m.Keys[0].ProviderType != "native" {
		t.Fatalf("manifest keys %+v", m.Keys)
	}
	if p, _ := keys.FromManifest(m).Provider("nkp-prod"); p.NKPKeyID != identity {
		t.Fatalf("FromManifest lost the NKP identity: %+v", p)
	}
}
