package backup

import (
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// manifestKeys turns captured keys into manifest entries, each with its
// provider's type and Native Key Provider backup state. keys.FromManifest
// reads them back for restore, audit and keys status.
func manifestKeys(k keys.VMKeys) []repository.KeyInfo {
	var out []repository.KeyInfo
	for _, ref := range k.Refs() {
		ki := repository.KeyInfo{KeyID: ref.KeyID, ProviderID: ref.ProviderID, Use: ref.Use, ProviderType: string(keys.ProviderUnknown)}
		if p, ok := k.Provider(ref.ProviderID); ok {
			ki.ProviderType = string(p.Type)
			ki.NKPBackedUp = p.BackedUp
		}
		out = append(out, ki)
	}
	return out
}
