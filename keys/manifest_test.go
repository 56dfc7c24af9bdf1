package keys

import (
	"reflect"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

func TestManifestRoundTrip(t *testing.T) {
	no := false
	k := VMKeys{
		VTPM: true, Firmware: "efi", Encrypted: true,
		VMKey:     &KeyRef{KeyID: "k1", ProviderID: "nkp", Use: UseVM},
		DiskKeys:  []KeyRef{{KeyID: "k2", ProviderID: "kms", Use: DiskUse(2000)}},
		Providers: []Provider{{ID: "nkp", Type: ProviderNative, BackedUp: &no}, {ID: "kms", Type: ProviderStandard}},
	}
	infos := ToManifest(k)
	if len(infos) != 2 || infos[0].ProviderType != "native" || infos[0].NKPBackedUp == nil || *infos[0].NKPBackedUp || infos[1].Use != "disk:2000" {
		t.Fatalf("ToManifest = %+v", infos)
	}
	if got := ToManifest(VMKeys{VMKey: &KeyRef{KeyID: "x", ProviderID: "gone"}}); got[0].ProviderType != "unknown" {
		t.Fatalf("provider not captured: %+v", got)
	}
	m := &repository.Manifest{ManifestHeader: repository.ManifestHeader{VM: repository.VMInfo{VTPM: true, Firmware: "efi", Encrypted: true}, Keys: infos}}
	back := FromManifest(m)
	if !reflect.DeepEqual(back.Refs(), k.Refs()) || !reflect.DeepEqual(back.Providers, k.Providers) || !back.VTPM || back.Firmware != "efi" {
		t.Fatalf("FromManifest(ToManifest(k)) = %+v, want %+v", back, k)
	}
}
