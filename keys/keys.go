package keys

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// KeyRef names one key a VM depends on. It is recorded in the backup
// manifest so that a restore can ask the target vCenter for exactly these
// keys before it writes anything.
type KeyRef struct {
	// KeyID is the key's ID as vSphere reports it (config.keyId.keyId).
	KeyID string
	// ProviderID is the key provider (KMS cluster) ID; empty means the
	// vCenter default provider.
	ProviderID string
	// Use says what the key protects: UseVM for the VM home files
	// (.vmx, .nvram, ...) or "disk:<device key>" for a virtual disk.
	Use string
}

// UseVM is KeyRef.Use for the key of the VM home files (config.keyId).
const UseVM = "vm"

// DiskUse returns KeyRef.Use for the disk with the given device key, so that
// a user can tell which disk a missing key belongs to.
func DiskUse(deviceKey int32) string {
	return "disk:" + strconv.Itoa(int(deviceKey))
}

// ProviderType is the kind of key provider; it decides what a user must do
// to make a missing key available again.
type ProviderType string

// Provider types. They are stored in manifests: never rename them.
const (
	// ProviderNative is the vSphere Native Key Provider (NKP): keys live
	// in vCenter and only a .p12 backup of the provider brings them back.
	ProviderNative ProviderType = "native"
	// ProviderStandard is a standard key provider backed by an external
	// KMIP KMS cluster (managementType vCenter).
	ProviderStandard ProviderType = "standard"
	// ProviderTrustAuthority is a vSphere Trust Authority (trusted) key
	// provider.
	ProviderTrustAuthority ProviderType = "trust_authority"
	// ProviderUnknown is a provider whose type vSphere did not tell us.
	ProviderUnknown ProviderType = "unknown"
)

// Provider describes one key provider as a vCenter reports it. It holds no
// secrets: server names and addresses only.
type Provider struct {
	// ID is the provider (KMS cluster) ID, unique per vCenter.
	ID string
	// Type is the provider kind.
	Type ProviderType
	// Default is true when the provider is the vCenter-wide default.
	Default bool
	// BackedUp tells whether a Native Key Provider has been exported to a
	// .p12 backup; nil when unknown or not a native provider. An NKP that
	// was never backed up dies with its vCenter, and so do the VMs'
	// keys.
	BackedUp *bool
	// NKPKeyID is a Native Key Provider's identity (KmipClusterInfo.keyId,
	// API 7.0.2): it survives a restore of the provider from its .p12
	// backup, while a new provider created under the same ID gets a new
	// one and cannot decrypt the old VMs. Empty when unknown.
	NKPKeyID string
	// TPMRequired tells that a Native Key Provider serves its keys only to
	// hosts with a TPM; nil when unknown.
	TPMRequired *bool
	// Health is vCenter's overall status of the provider (green, yellow,
	// red, gray); empty when it could not be read.
	Health string
	// Servers lists the KMIP servers as "name (address:port)".
	Servers []string
}

// VMKeys is what a backup records about a VM's encryption: enough to check,
// on another vCenter and years later, whether the VM can be restored.
type VMKeys struct {
	// VTPM is true when the VM has a virtual TPM device.
	VTPM bool
	// Firmware is "efi" or "bios".
	Firmware string
	// SecureBoot mirrors bootOptions.efiSecureBootEnabled.
	SecureBoot bool
	// HardwareVersion is config.version, e.g. "vmx-19".
	HardwareVersion string
	// Encrypted is true when the VM home files are encrypted
	// (config.keyId is set).
	Encrypted bool
	// VMKey is config.keyId; nil when the home files are not encrypted.
	VMKey *KeyRef
	// DiskKeys are the keys of encrypted disks, including the parents in
	// a snapshot chain, without duplicates.
	DiskKeys []KeyRef
	// EncryptionExtraConfig holds the extraConfig entries starting with
	// "encryption." that vSphere exposes (such as encryption.keySafe, a
	// key locator naming provider and key ID), except the bulky
	// ciphertext encryption.data.
	EncryptionExtraConfig map[string]string
	// Providers are the providers of the keys above as the source
	// vCenter reported them at capture time.
	Providers []Provider
}

// Refs returns every key the VM depends on, VM key first, so callers can
// pass them to Check in one call.
func (k VMKeys) Refs() []KeyRef {
	var refs []KeyRef
	if k.VMKey != nil {
		refs = append(refs, *k.VMKey)
	}
	return append(refs, k.DiskKeys...)
}

// Provider returns the recorded provider with the given ID.
func (k VMKeys) Provider(id string) (Provider, bool) {
	for _, p := range k.Providers {
		if p.ID == id {
			return p, true
		}
	}
	return Provider{}, false
}

// extraConfigPrefix selects the extraConfig entries worth recording.
const extraConfigPrefix = "encryption."

// excludedExtraConfig is the one "encryption." entry not worth recording:
// the encrypted body of the .vmx, large and useless without the key.
const excludedExtraConfig = "encryption.data"

// FromVMConfig extracts the encryption facts of a VM from its configuration.
// It is pure so backup can record the facts even when the key providers
// cannot be listed. A nil cfg gives the zero VMKeys.
func FromVMConfig(cfg *types.VirtualMachineConfigInfo) VMKeys {
	var k VMKeys
	if cfg == nil {
		return k
	}
	k.Firmware = cfg.Firmware
	k.HardwareVersion = cfg.Version
	if b := cfg.BootOptions; b != nil && b.EfiSecureBootEnabled != nil {
		k.SecureBoot = *b.EfiSecureBootEnabled
	}
	if cfg.KeyId != nil {
		k.Encrypted = true
		ref := refFromCryptoKeyID(*cfg.KeyId, UseVM)
		k.VMKey = &ref
	}
	for _, dev := range cfg.Hardware.Device {
		switch d := dev.(type) {
		case *types.VirtualTPM:
			k.VTPM = true
		case *types.VirtualDisk:
			use := DiskUse(d.Key)
			for _, id := range diskKeyIDs(d.Backing) {
				ref := refFromCryptoKeyID(id, use)
				if !slices.Contains(k.DiskKeys, ref) {
					k.DiskKeys = append(k.DiskKeys, ref)
				}
			}
		}
	}
	for _, opt := range cfg.ExtraConfig {
		ov := opt.GetOptionValue()
		if ov == nil || !strings.HasPrefix(ov.Key, extraConfigPrefix) || ov.Key == excludedExtraConfig {
			continue
		}
		if k.EncryptionExtraConfig == nil {
			k.EncryptionExtraConfig = map[string]string{}
		}
		k.EncryptionExtraConfig[ov.Key] = fmt.Sprint(ov.Value)
	}
	return k
}

func refFromCryptoKeyID(id types.CryptoKeyId, use string) KeyRef {
	ref := KeyRef{KeyID: id.KeyId, Use: use}
	if id.ProviderId != nil {
		ref.ProviderID = id.ProviderId.Id
	}
	return ref
}

// diskKeyIDs returns the key IDs of a disk backing and of its parents (the
// snapshot chain), for every backing type that can be encrypted.
func diskKeyIDs(backing types.BaseVirtualDeviceBackingInfo) []types.CryptoKeyId {
	var ids []types.CryptoKeyId
	add := func(id *types.CryptoKeyId) {
		if id != nil {
			ids = append(ids, *id)
		}
	}
	switch b := backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		for ; b != nil; b = b.Parent {
			add(b.KeyId)
		}
	case *types.VirtualDiskSeSparseBackingInfo:
		for ; b != nil; b = b.Parent {
			add(b.KeyId)
		}
	case *types.VirtualDiskSparseVer2BackingInfo:
		for ; b != nil; b = b.Parent {
			add(b.KeyId)
		}
	}
	return ids
}

// Capture records the VM's encryption facts and the providers of its keys as
// the vCenter behind c reports them. When the providers cannot be listed it
// still returns the facts taken from cfg, with the error, so that the caller
// decides whether a backup without provider details is acceptable.
func Capture(ctx context.Context, c *vim25.Client, cfg *types.VirtualMachineConfigInfo) (VMKeys, error) {
	k := FromVMConfig(cfg)
	refs := k.Refs()
	if len(refs) == 0 {
		return k, nil
	}
	all, err := ListProviders(ctx, c)
	if err != nil {
		return k, fmt.Errorf("capture key providers: %w", err)
	}
	for _, ref := range refs {
		if ref.ProviderID == "" {
			continue
		}
		if _, ok := k.Provider(ref.ProviderID); ok {
			continue
		}
		p := Provider{ID: ref.ProviderID, Type: ProviderUnknown}
		if i := slices.IndexFunc(all, func(p Provider) bool { return p.ID == ref.ProviderID }); i >= 0 {
			p = all[i]
		}
		k.Providers = append(k.Providers, p)
	}
	return k, nil
}
