package keys

import "github.com/vtpm-backup/vtpm-backup/repository"

// FromManifest rebuilds the key facts recorded in a backup's manifest, so a
// restore, an audit and keys status check exactly the keys the VM had at
// backup time, with the provider facts seen then. It is the one reading
// shared by those three jobs, so it lives in the lowest package they all
// import; the writing side is ManifestProviders and the backup's
// manifestKeys.
//
// Manifests written before repository.ProviderInfo existed give only each
// key's provider type and NKP backup flag; their providers come back
// without identity or tpmRequired.
func FromManifest(m *repository.Manifest) VMKeys {
	k := VMKeys{
		VTPM: m.VM.VTPM, Firmware: m.VM.Firmware, SecureBoot: m.VM.SecureBoot,
		HardwareVersion: m.VM.HardwareVersion, Encrypted: m.VM.Encrypted,
		EncryptionExtraConfig: m.EncryptionConfig,
	}
	for _, pi := range m.Providers {
		k.Providers = append(k.Providers, Provider{
			ID: pi.ID, Type: ProviderType(pi.Type), NKPKeyID: pi.NKPKeyID,
			TPMRequired: pi.TPMRequired, BackedUp: pi.BackedUp,
		})
	}
	for _, ki := range m.Keys {
		ref := KeyRef{KeyID: ki.KeyID, ProviderID: ki.ProviderID, Use: ki.Use}
		if ki.Use == UseVM && k.VMKey == nil {
			k.VMKey = &ref
		} else {
			k.DiskKeys = append(k.DiskKeys, ref)
		}
		if _, ok := k.Provider(ki.ProviderID); !ok {
			k.Providers = append(k.Providers, Provider{ID: ki.ProviderID, Type: ProviderType(ki.ProviderType), BackedUp: ki.NKPBackedUp})
		}
	}
	return k
}

// ManifestProviders turns the providers captured with a VM's keys into
// manifest entries, so a restore can tell the same Native Key Provider from
// a new one with the same ID.
func ManifestProviders(k VMKeys) []repository.ProviderInfo {
	out := make([]repository.ProviderInfo, 0, len(k.Providers))
	for _, p := range k.Providers {
		out = append(out, repository.ProviderInfo{
			ID: p.ID, Type: string(p.Type), NKPKeyID: p.NKPKeyID,
			TPMRequired: p.TPMRequired, BackedUp: p.BackedUp,
		})
	}
	return out
}
