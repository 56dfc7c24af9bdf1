package keys_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/keys"
)

func keyID(key, provider string) *types.CryptoKeyId {
	id := &types.CryptoKeyId{KeyId: key}
	if provider != "" {
		id.ProviderId = &types.KeyProviderId{Id: provider}
	}
	return id
}

func TestFromVMConfig(t *testing.T) {
	disk := func(key int32, b types.BaseVirtualDeviceBackingInfo) *types.VirtualDisk {
		return &types.VirtualDisk{VirtualDevice: types.VirtualDevice{Key: key, Backing: b}}
	}
	tests := []struct {
		name string
		cfg  *types.VirtualMachineConfigInfo
		want keys.VMKeys
	}{
		{"nil config", nil, keys.VMKeys{}},
		{
			name: "plain bios vm",
			cfg: &types.VirtualMachineConfigInfo{Firmware: "bios", Version: "vmx-13", Hardware: types.VirtualHardware{Device: []types.BaseVirtualDevice{
				disk(2000, &types.VirtualDiskFlatVer2BackingInfo{}),
			}}},
			want: keys.VMKeys{Firmware: "bios", HardwareVersion: "vmx-13"},
		},
		{
			name: "vtpm vm with encrypted disks of every backing type",
			cfg: &types.VirtualMachineConfigInfo{
				Firmware:    "efi",
				Version:     "vmx-19",
				BootOptions: &types.VirtualMachineBootOptions{EfiSecureBootEnabled: types.NewBool(true)},
				KeyId:       keyID("vmkey", "nkp"),
				Hardware: types.VirtualHardware{Device: []types.BaseVirtualDevice{
					&types.VirtualTPM{},
					// Snapshot chain: the parent has its own key, the
					// duplicate of the child's key is dropped.
					disk(2000, &types.VirtualDiskFlatVer2BackingInfo{KeyId: keyID("d0", "kms"),
						Parent: &types.VirtualDiskFlatVer2BackingInfo{KeyId: keyID("d0-parent", "kms"),
							Parent: &types.VirtualDiskFlatVer2BackingInfo{KeyId: keyID("d0", "kms")}}}),
					disk(2001, &types.VirtualDiskSeSparseBackingInfo{KeyId: keyID("d1", "kms")}),
					disk(2002, &types.VirtualDiskSparseVer2BackingInfo{KeyId: keyID("d2", "")}),
					disk(2003, &types.VirtualDiskFlatVer2BackingInfo{}),
					disk(2004, &types.VirtualDiskRawDiskMappingVer1BackingInfo{}),
				}},
				ExtraConfig: []types.BaseOptionValue{
					&types.OptionValue{Key: "encryption.keySafe", Value: "vmware:key/list/()"},
					&types.OptionValue{Key: "encryption.data", Value: "c2VjcmV0"},
					&types.OptionValue{Key: "nvram", Value: "vm.nvram"},
				},
			},
			want: keys.VMKeys{
				VTPM: true, Firmware: "efi", SecureBoot: true, HardwareVersion: "vmx-19", Encrypted: true,
				VMKey: &keys.KeyRef{KeyID: "vmkey", ProviderID: "nkp", Use: "vm"},
				DiskKeys: []keys.KeyRef{
					{KeyID: "d0", ProviderID: "kms", Use: "disk:2000"},
					{KeyID: "d0-parent", ProviderID: "kms", Use: "disk:2000"},
					{KeyID: "d1", ProviderID: "kms", Use: "disk:2001"},
					{KeyID: "d2", ProviderID: "", Use: "disk:2002"},
				},
				EncryptionExtraConfig: map[string]string{"encryption.keySafe": "vmware:key/list/()"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys.FromVMConfig(tt.cfg)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromVMConfig =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestTypeFromManagementType(t *testing.T) {
	tests := []struct {
		mt      string
		servers bool
		want    keys.ProviderType
	}{
		{"nativeProvider", false, keys.ProviderNative},
		{"vCenter", true, keys.ProviderStandard},
		{"trustAuthority", false, keys.ProviderTrustAuthority},
		{"unknown", true, keys.ProviderUnknown},
		{"", true, keys.ProviderStandard},
		{"", false, keys.ProviderUnknown},
		{"somethingNew", false, keys.ProviderUnknown},
	}
	for _, tt := range tests {
		if got := keys.TypeFromManagementType(tt.mt, tt.servers); got != tt.want {
			t.Errorf("TypeFromManagementType(%q, %v) = %s, want %s", tt.mt, tt.servers, got, tt.want)
		}
	}
}

func TestNotAvailableErrorGolden(t *testing.T) {
	statuses := []keys.KeyStatus{
		{Ref: keys.KeyRef{KeyID: "ok", ProviderID: "kms-a", Use: "vm"}, Available: true, ProviderRegistered: true, ProviderType: keys.ProviderStandard},
		{Ref: keys.KeyRef{KeyID: "8f3c1d", ProviderID: "nkp-prod", Use: "vm"}, ProviderType: keys.ProviderNative,
			Reasons: []string{keys.ReasonProviderNotRegistered}},
		{Ref: keys.KeyRef{KeyID: "77aa", ProviderID: "kms-a", Use: "disk:2000"}, ProviderRegistered: true, ProviderType: keys.ProviderStandard,
			Reasons: []string{"KeyStateMissingInKMS"}},
		{Ref: keys.KeyRef{KeyID: "99bb", ProviderID: "kms-a", Use: "disk:2001"}, ProviderRegistered: true, ProviderType: keys.ProviderStandard,
			Reasons: []string{"KeyStateClusterUnreachable"}},
		{Ref: keys.KeyRef{KeyID: "55cc", ProviderID: "kms-a", Use: "disk:2002"}, ProviderRegistered: true, ProviderType: keys.ProviderStandard,
			Reasons: []string{"NoPermissionToAccessKeyProvider"}},
		{Ref: keys.KeyRef{KeyID: "66dd", ProviderID: "ta-1"}, ProviderType: keys.ProviderTrustAuthority,
			Reasons: []string{keys.ReasonProviderNotRegistered}},
		{Ref: keys.KeyRef{KeyID: "11ee"}, ProviderRegistered: true, Reasons: []string{"KeyStateMissingInKMS"}, Remedy: "given remedy wins"},
	}
	err := keys.AvailabilityError("vc-b.example.com", statuses)
	if !errors.Is(err, keys.ErrKeyNotAvailable) {
		t.Fatalf("errors.Is(%v, ErrKeyNotAvailable) = false", err)
	}
	var nae *keys.NotAvailableError
	if !errors.As(err, &nae) || len(nae.Statuses) != 6 || nae.VCenter != "vc-b.example.com" {
		t.Fatalf("errors.As = %+v", nae)
	}
	want := strings.Join([]string{
		"key 8f3c1d (vm) of provider nkp-prod (native) is not available on vc-b.example.com [provider_not_registered]: restore the Native Key Provider nkp-prod from its .p12 backup on vc-b.example.com, then retry",
		"key 77aa (disk:2000) of provider kms-a (standard) is not available on vc-b.example.com [KeyStateMissingInKMS]: key provider kms-a on vc-b.example.com does not reach a KMS that holds this key: point kms-a at the same KMS cluster the backup's vCenter used (or restore the key in the KMS), then retry",
		"key 99bb (disk:2001) of provider kms-a (standard) is not available on vc-b.example.com [KeyStateClusterUnreachable]: check key provider kms-a on vc-b.example.com (Key Providers > kms-a: KMS server connection and trust), then retry",
		"key 55cc (disk:2002) of provider kms-a (standard) is not available on vc-b.example.com [NoPermissionToAccessKeyProvider]: grant the user the Cryptographer privileges (at least Cryptographer.Access and Cryptographer.RegisterVM) on vc-b.example.com, then retry",
		"key 66dd of provider ta-1 (trust_authority) is not available on vc-b.example.com [provider_not_registered]: configure the Trusted Key Provider ta-1 with the same KMS on the vSphere Trust Authority cluster and make it available on vc-b.example.com, then retry",
		"key 11ee of provider (default) (unknown) is not available on vc-b.example.com [KeyStateMissingInKMS]: given remedy wins",
	}, "\n")
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if err := keys.AvailabilityError("vc", statuses[:1]); err != nil {
		t.Errorf("AvailabilityError(all available) = %v", err)
	}
	if err := keys.AvailabilityError("vc", nil); err != nil {
		t.Errorf("AvailabilityError(nil) = %v", err)
	}
}

func TestRemedyNativeRegistered(t *testing.T) {
	st := keys.KeyStatus{Ref: keys.KeyRef{KeyID: "k", ProviderID: "nkp"}, ProviderRegistered: true, ProviderType: keys.ProviderNative,
		Reasons: []string{"KeyStateMissingInKMS"}}
	const want = "the Native Key Provider nkp on vc does not hold this key (a new provider with the same name cannot decrypt old VMs): restore nkp from its .p12 backup on vc, then retry"
	if got := keys.Remedy(st, "vc"); got != want {
		t.Errorf("Remedy = %q, want %q", got, want)
	}
}

func TestReadiness(t *testing.T) {
	vmKey := keys.KeyRef{KeyID: "k", ProviderID: "nkp", Use: "vm"}
	notBackedUp := []keys.Provider{{ID: "nkp", Type: keys.ProviderNative, BackedUp: types.NewBool(false)}}
	backedUp := []keys.Provider{{ID: "nkp", Type: keys.ProviderNative, BackedUp: types.NewBool(true)}}
	ok := []keys.KeyStatus{{Ref: vmKey, Available: true, ProviderRegistered: true, ProviderType: keys.ProviderNative}}
	tests := []struct {
		name     string
		k        keys.VMKeys
		statuses []keys.KeyStatus
		current  []keys.Provider
		want     []string
	}{
		{"ready", keys.VMKeys{VTPM: true, VMKey: &vmKey, Providers: backedUp}, ok, nil, nil},
		{"unencrypted vm without vtpm", keys.VMKeys{}, nil, nil, nil},
		// A key never recorded is a Restorability problem (NeedsVMKey).
		{"vtpm without key", keys.VMKeys{VTPM: true}, nil, nil, nil},
		{"key not checked", keys.VMKeys{VTPM: true, VMKey: &vmKey, Providers: backedUp}, nil, nil,
			[]string{"key k (vm) of provider nkp was not checked on vc"}},
		{"recorded nkp not backed up", keys.VMKeys{VTPM: true, VMKey: &vmKey, Providers: notBackedUp}, ok, nil,
			[]string{"Native Key Provider nkp has never been backed up: if its vCenter is lost, the VM's keys are lost with it; back it up (Key Providers > nkp > Back Up) and keep the .p12 and its password safe"}},
		{"current listing overrides the recorded state", keys.VMKeys{VTPM: true, VMKey: &vmKey, Providers: notBackedUp}, ok, backedUp, nil},
		{"missing key", keys.VMKeys{VTPM: true, VMKey: &vmKey, Providers: backedUp},
			[]keys.KeyStatus{{Ref: vmKey, ProviderType: keys.ProviderNative, Reasons: []string{keys.ReasonProviderNotRegistered}}}, nil,
			[]string{"key k (vm) of provider nkp (native) is not available on vc [provider_not_registered]: restore the Native Key Provider nkp from its .p12 backup on vc, then retry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys.Readiness(tt.k, tt.statuses, tt.current, "vc")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Readiness =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
