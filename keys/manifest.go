package keys

import "github.com/vtpm-backup/vtpm-backup/repository"

// FromManifest rebuilds the key facts recorded in a backup's manifest, so a
// restore, an audit and keys status check exactly the keys the VM had at
// backup time, with the provider types and Native Key Provider backup state
// seen then. It is the one reading shared by those three jobs, so it lives
// in the lowest package they all import; the writing side (the backup's
// manifestKeys) lives with its only user.
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
