package keys

import "github.com/vtpm-backup/vtpm-backup/repository"

// FromManifest rebuilds the key facts recorded in a backup's manifest, so a
// restore or an audit checks exactly the keys the VM had at backup time,
// with the provider types and Native Key Provider backup state seen then.
func FromManifest(m *repository.Manifest) VMKeys {
	k := VMKeys{
		VTPM: m.VM.VTPM, Firmware: m.VM.Firmware, SecureBoot: m.VM.SecureBoot,
		HardwareVersion: m.VM.HardwareVersion, Encrypted: m.VM.Encrypted,
		EncryptionExtraConfig: m.EncryptionConfig,
	}
	seen := map[string]bool{}
	for _, ki := range m.Keys {
		ref := KeyRef{KeyID: ki.KeyID, ProviderID: ki.ProviderID, Use: ki.Use}
		if ki.Use == UseVM && k.VMKey == nil {
			k.VMKey = &ref
		} else {
			k.DiskKeys = append(k.DiskKeys, ref)
		}
		if !seen[ki.ProviderID] {
			seen[ki.ProviderID] = true
			k.Providers = append(k.Providers, Provider{ID: ki.ProviderID, Type: ProviderType(ki.ProviderType), BackedUp: ki.NKPBackedUp})
		}
	}
	return k
}

// ToManifest turns captured keys into manifest entries, each with its
// provider's type and Native Key Provider backup state.
func ToManifest(k VMKeys) []repository.KeyInfo {
	var out []repository.KeyInfo
	for _, ref := range k.Refs() {
		ki := repository.KeyInfo{KeyID: ref.KeyID, ProviderID: ref.ProviderID, Use: ref.Use, ProviderType: string(ProviderUnknown)}
		if p, ok := k.Provider(ref.ProviderID); ok {
			ki.ProviderType = string(p.Type)
			ki.NKPBackedUp = p.BackedUp
		}
		out = append(out, ki)
	}
	return out
}
