package backup

import (
	"reflect"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// What backup writes, keys.FromManifest reads back: the same keys, uses
// and providers.
func TestManifestKeysRoundTrip(t *testing.T) {
	no := false
	k := keys.VMKeys{
		VTPM: true, Firmware: "efi", Encrypted: true,
		VMKey:     &keys.KeyRef{KeyID: "k1", ProviderID: "nkp", Use: keys.UseVM},
		DiskKeys:  []keys.KeyRef{{KeyID: "k2", ProviderID: "kms", Use: keys.DiskUse(2000)}},
		Providers: []keys.Provider{{ID: "nkp", Type: keys.ProviderNative, BackedUp: &no}, {ID: "kms", Type: keys.ProviderStandard}},
	}
	infos := manifestKeys(k)
	if len(infos) != 2 || infos[0].ProviderType != "native" || infos[0].NKPBackedUp == nil || *infos[0].NKPBackedUp || infos[1].Use != "disk:2000" {
		t.Fatalf("manifestKeys = %+v", infos)
	}
	if got := manifestKeys(keys.VMKeys{VMKey: &keys.KeyRef{KeyID: "x", ProviderID: "gone"}}); got[0].ProviderType != "unknown" {
		t.Fatalf("provider not captured: %+v", got)
	}
	m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{VM: repository.VMInfo{VTPM: true, Firmware: "efi", Encrypted: true}, Keys: infos}}
	back := keys.FromManifest(m)
	if !reflect.DeepEqual(back.Refs(), k.Refs()) || !reflect.DeepEqual(back.Providers, k.Providers) || !back.VTPM || back.Firmware != "efi" {
		t.Fatalf("FromManifest(manifestKeys(k)) = %+v, want %+v", back, k)
	}
}
