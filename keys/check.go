package keys

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// ReasonProviderNotRegistered is KeyStatus.Reasons for a key whose provider
// ID is not registered on the target vCenter at all. It is ours, not
// vSphere's: vSphere would only say KeyStateMissingInKMS, which sends the
// user to the wrong place.
const ReasonProviderNotRegistered = "provider_not_registered"

// ReasonNoStatus is KeyStatus.Reasons when vCenter returned no status for a
// key we asked about.
const ReasonNoStatus = "no_status_returned"

// vSphere's reasons (CryptoManagerKmipCryptoKeyStatusKeyUnavailableReason)
// that we treat specially.
const (
	reasonMissingInKMS    = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateMissingInKMS)
	reasonNotActive       = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateNotActiveOrEnabled)
	reasonManagedByNKP    = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateManagedByNKP)
	reasonManagedByTA     = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateManagedByTrustAuthority)
	reasonNoPermission    = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonNoPermissionToAccessKeyProvider)
	reasonMissingInCache  = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateMissingInCache)
	reasonClusterInvalid  = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateClusterInvalid)
	reasonClusterUnreach  = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateClusterUnreachable)
	reasonWrappingMissing = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonWrappingKeyMissingInKMS)
)

// KeyStatus is the verdict on one key on one vCenter: whether a VM needing
// it can be restored there, and if not, why and what to do.
type KeyStatus struct {
	// Ref is the key asked about.
	Ref KeyRef
	// Available is true when the vCenter can serve the key.
	Available bool
	// ProviderRegistered is true when Ref.ProviderID is registered on the
	// vCenter (or Ref.ProviderID is empty: the default provider).
	ProviderRegistered bool
	// ProviderType is the provider's type on the vCenter, or as recorded
	// at backup time when the vCenter does not know the provider.
	ProviderType ProviderType
	// Reasons are vSphere's reasons (e.g. KeyStateMissingInKMS) and ours
	// (ReasonProviderNotRegistered). An available key may carry a reason
	// that explains why vCenter could not verify it further, such as
	// KeyStateManagedByNKP.
	Reasons []string
	// Remedy tells the user what to do; empty when Available.
	Remedy string
	// ProvidersFromBackup: the vCenter refused to list its key providers
	// (the account lacks Cryptographer.ManageKeyServers), so ProviderType
	// is the type recorded at backup time and ProviderRegistered was
	// assumed, leaving the verdict to QueryCryptoKeyStatus alone.
	ProvidersFromBackup bool
	// Check says how the key was checked (CheckKeyStatus,
	// CheckNKPIdentity and the vCenter's API level, ...): for a Native Key
	// Provider before vSphere 8.0 U3 vCenter cannot confirm a key, and
	// users must know that only the provider was compared.
	Check string
}

// ReasonNKPIdentityMismatch is KeyStatus.Reasons for a key whose Native
// Key Provider is registered on the target under the same ID but with
// another identity than at backup time: a new provider created under the
// old name, which cannot decrypt the VM. Ours, not vSphere's.
const ReasonNKPIdentityMismatch = "nkp_identity_mismatch"

// Checks done on a key (KeyStatus.Check).
const (
	// CheckKeyStatus: vCenter's QueryCryptoKeyStatus answered.
	CheckKeyStatus = "QueryCryptoKeyStatus"
	// CheckProviderRegistered: the provider is not registered; nothing
	// more to ask.
	CheckProviderRegistered = "provider registered"
	// CheckNKPIdentity: the Native Key Provider's ID and identity were
	// compared with the backup's record.
	CheckNKPIdentity = "NKP provider ID and identity"
)

// NKPStatusAPI is the first vSphere API level whose QueryCryptoKeyStatus
// answers for Native Key Provider keys (KeyStateManagedByNKP, vSphere 8.0
// U3). Earlier vCenters answer as if such a key were missing.
const NKPStatusAPI = "8.0.3"

// AnswersNKPStatus reports whether a vCenter of API level api (About.ApiVersion,
// e.g. "8.0.3.0") answers QueryCryptoKeyStatus for NKP keys.
func AnswersNKPStatus(api string) bool {
	want := strings.Split(NKPStatusAPI, ".")
	got := strings.Split(api, ".")
	for i, ws := range want {
		w, _ := strconv.Atoi(ws)
		g := 0
		if i < len(got) {
			g, _ = strconv.Atoi(got[i])
		}
		if g != w {
			return g > w
		}
	}
	return true
}

// APIVersion is the API level of the vCenter behind c (About.ApiVersion).
func APIVersion(c *vim25.Client) string { return c.ServiceContent.About.ApiVersion }

// Check asks the vCenter behind c whether it can serve every key in refs.
// recorded are the providers as captured at backup time (VMKeys.Providers);
// they give the provider type, and so the remedy, for providers the target
// does not know, and the Native Key Provider identity to compare.
//
// Keys of a Native Key Provider are checked by provider ID and identity
// (a new provider under the same ID is refused), and with
// QueryCryptoKeyStatus only where the vCenter's API answers for them
// (NKPStatusAPI); KeyStatus.Check says which check was done. Other keys go
// to QueryCryptoKeyStatus, in one call. The result has one status per ref,
// in order. An error means the check itself failed, not that a key is
// missing: use AvailabilityError for that. A vCenter that refuses to list
// its providers (NoPermission) does not stop the check: the recorded
// providers stand in, and every status says so (ProvidersFromBackup).
func Check(ctx context.Context, c *vim25.Client, refs []KeyRef, recorded []Provider) ([]KeyStatus, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	providers, err := ListProviders(ctx, c)
	fromBackup := false
	if err != nil {
		if !fault.Is(err, &types.NoPermission{}) {
			return nil, fmt.Errorf("check keys: %w", err)
		}
		providers, fromBackup = nil, true
	}
	vc, api := VCenterName(c), APIVersion(c)
	statuses := make([]KeyStatus, 0, len(refs))
	var ask []int
	for i, ref := range refs {
		st, query := preCheck(ref, providers, recorded, vc, api, fromBackup)
		if query {
			ask = append(ask, i)
		}
		statuses = append(statuses, st)
	}
	if err := queryStatus(ctx, c, refs, ask, statuses); err != nil {
		return nil, err
	}
	for i := range statuses {
		if !statuses[i].Available && statuses[i].Remedy == "" {
			statuses[i].Remedy = Remedy(statuses[i], vc)
		}
	}
	return statuses, nil
}

// preCheck judges ref from the provider lists alone and says whether
// vCenter must still be asked about the key.
func preCheck(ref KeyRef, providers, recorded []Provider, vc, api string, fromBackup bool) (KeyStatus, bool) {
	st := KeyStatus{Ref: ref, ProviderType: ProviderUnknown, ProviderRegistered: ref.ProviderID == "" || fromBackup, ProvidersFromBackup: fromBackup, Check: CheckKeyStatus}
	target, registered := findProvider(providers, ref.ProviderID)
	rec, hasRec := findProvider(recorded, ref.ProviderID)
	if fromBackup {
		return fromBackupCheck(st, rec, hasRec, vc, api)
	}
	switch {
	case registered:
		st.ProviderRegistered, st.ProviderType = true, target.Type
	case hasRec && rec.Type != "":
		st.ProviderType = rec.Type
	}
	if !st.ProviderRegistered {
		st.Check, st.Reasons = CheckProviderRegistered, []string{ReasonProviderNotRegistered}
		return st, false
	}
	if !registered || target.Type != ProviderNative {
		return st, true
	}
	st.Check = CheckNKPIdentity
	switch {
	case hasRec && rec.NKPKeyID != "" && rec.NKPKeyID != target.NKPKeyID:
		st.Reasons = []string{ReasonNKPIdentityMismatch}
		st.Remedy = fmt.Sprintf("the Native Key Provider %s on %s has identity %s, the backup's keys came from identity %s (a new provider created under the same ID cannot decrypt the VM): restore the Native Key Provider %s from its .p12 backup on %s (remove the new one first), then retry",
			ref.ProviderID, vc, orUnknown(target.NKPKeyID), rec.NKPKeyID, ref.ProviderID, vc)
		return st, false
	case !hasRec || rec.NKPKeyID == "":
		st.Check = "NKP provider ID only (the backup recorded no NKP identity)"
	}
	if AnswersNKPStatus(api) {
		st.Check += " and " + CheckKeyStatus
		return st, true
	}
	st.Check += fmt.Sprintf("; vCenter API %s does not report NKP key status (from %s)", orUnknown(api), NKPStatusAPI)
	st.Available = true
	return st, false
}

// fromBackupCheck judges a key when the target's providers could not be
// listed: QueryCryptoKeyStatus decides, except for a Native Key Provider
// key on a vCenter below NKPStatusAPI, which neither answer can confirm.
func fromBackupCheck(st KeyStatus, rec Provider, hasRec bool, vc, api string) (KeyStatus, bool) {
	if hasRec && rec.Type != "" {
		st.ProviderType = rec.Type
	}
	if st.ProviderType != ProviderNative || AnswersNKPStatus(api) {
		return st, true
	}
	st.Check = "none"
	st.Reasons = []string{ReasonNKPUnverifiable}
	st.Remedy = fmt.Sprintf("%s (API %s) reports no status for Native Key Provider keys and the user may not list key providers, so neither the provider %s nor its identity can be checked: grant Cryptographer.ManageKeyServers on %s, then retry", vc, orUnknown(api), st.Ref.ProviderID, vc)
	return st, false
}

// ReasonNKPUnverifiable is KeyStatus.Reasons for a Native Key Provider key
// that nothing on the target can confirm (providers not listable, vCenter
// below NKPStatusAPI). Ours, not vSphere's.
const ReasonNKPUnverifiable = "nkp_unverifiable"

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func findProvider(ps []Provider, id string) (Provider, bool) {
	if i := slices.IndexFunc(ps, func(p Provider) bool { return p.ID == id }); i >= 0 {
		return ps[i], true
	}
	return Provider{}, false
}

// queryStatus asks vCenter, in one QueryCryptoKeyStatus call, about the
// refs at the indexes in ask and fills their statuses.
func queryStatus(ctx context.Context, c *vim25.Client, refs []KeyRef, ask []int, statuses []KeyStatus) error {
	if len(ask) == 0 {
		return nil
	}
	ids := make([]types.CryptoKeyId, 0, len(ask))
	for _, i := range ask {
		id := types.CryptoKeyId{KeyId: refs[i].KeyID}
		if refs[i].ProviderID != "" {
			id.ProviderId = &types.KeyProviderId{Id: refs[i].ProviderID}
		}
		ids = append(ids, id)
	}
	res, err := crypto.NewManagerKmip(c).QueryCryptoKeyStatus(ctx, ids, crypto.CheckKeyAvailable)
	if err != nil {
		return fmt.Errorf("query key status: %w", err)
	}
	for j, i := range ask {
		st := &statuses[i]
		ks, ok := findStatus(res, j, refs[i])
		if !ok {
			st.Reasons = []string{ReasonNoStatus}
			continue
		}
		if ks.Reason != "" {
			st.Reasons = []string{ks.Reason}
		}
		st.Available = availableFromStatus(ks)
	}
	return nil
}

// findStatus returns the status of ref: at index i when vCenter kept the
// request order (it does), else by searching, so a reordering vCenter
// cannot make us report the wrong key.
func findStatus(res []types.CryptoManagerKmipCryptoKeyStatus, i int, ref KeyRef) (types.CryptoManagerKmipCryptoKeyStatus, bool) {
	match := func(s types.CryptoManagerKmipCryptoKeyStatus) bool {
		pid := ""
		if s.KeyId.ProviderId != nil {
			pid = s.KeyId.ProviderId.Id
		}
		return s.KeyId.KeyId == ref.KeyID && (pid == ref.ProviderID || ref.ProviderID == "")
	}
	if i < len(res) && match(res[i]) {
		return res[i], true
	}
	if j := slices.IndexFunc(res, match); j >= 0 {
		return res[j], true
	}
	return types.CryptoManagerKmipCryptoKeyStatus{}, false
}

// availableFromStatus decides availability from vSphere's answer. Besides
// keyAvailable it accepts three reasons that do not mean "missing":
// KeyStateNotActiveOrEnabled (govmomi's crypto.IsValidKey treats such a key
// as valid: a KMS still serves deactivated keys for decryption), and
// KeyStateManagedByNKP / KeyStateManagedByTrustAuthority (vCenter does not
// hold these keys itself; hosts derive or fetch them from the registered
// provider, so the provider being registered is all vCenter can confirm).
func availableFromStatus(s types.CryptoManagerKmipCryptoKeyStatus) bool {
	if s.KeyAvailable != nil && *s.KeyAvailable {
		return true
	}
	switch s.Reason {
	case reasonNotActive, reasonManagedByNKP, reasonManagedByTA:
		return true
	}
	return false
}

// VCenterName is how remedies and errors name the vCenter behind c: the
// host of its URL.
func VCenterName(c *vim25.Client) string {
	if c == nil || c.Client == nil || c.URL() == nil {
		return "the vCenter"
	}
	return c.URL().Host
}

// Remedy returns what a user must do so that the key of st becomes available
// on vcenter. It depends on the provider type and on whether the provider is
// registered there, because the fix for a native provider (restore its .p12
// backup) has nothing in common with the fix for a KMIP one.
func Remedy(st KeyStatus, vcenter string) string {
	id := st.Ref.ProviderID
	reason := ""
	if len(st.Reasons) > 0 {
		reason = st.Reasons[0]
	}
	if st.ProviderRegistered {
		switch reason {
		case reasonNoPermission:
			return fmt.Sprintf("grant the user the Cryptographer privileges (at least Cryptographer.Access and Cryptographer.RegisterVM) on %s, then retry", vcenter)
		case reasonClusterUnreach, reasonClusterInvalid, reasonMissingInCache:
			return fmt.Sprintf("check key provider %s on %s (Key Providers > %s: KMS server connection and trust), then retry", id, vcenter, id)
		}
	}
	switch st.ProviderType {
	case ProviderNative:
		if st.ProviderRegistered {
			return fmt.Sprintf("the Native Key Provider %s on %s does not hold this key (a new provider with the same name cannot decrypt old VMs): restore %s from its .p12 backup on %s, then retry", id, vcenter, id, vcenter)
		}
		return fmt.Sprintf("restore the Native Key Provider %s from its .p12 backup on %s, then retry", id, vcenter)
	case ProviderStandard:
		if st.ProviderRegistered {
			if reason == reasonWrappingMissing {
				return fmt.Sprintf("the wrapping key of provider %s is missing in its KMS: restore it in the KMS, then retry", id)
			}
			return fmt.Sprintf("key provider %s on %s does not reach a KMS that holds this key: point %s at the same KMS cluster the backup's vCenter used (or restore the key in the KMS), then retry", id, vcenter, id)
		}
		return fmt.Sprintf("register the same KMS cluster under provider ID %s on %s (Key Providers > Add Standard Key Provider), then retry", id, vcenter)
	case ProviderTrustAuthority:
		if st.ProviderRegistered {
			return fmt.Sprintf("the Trusted Key Provider %s on %s does not reach a KMS that holds this key: configure it on the Trust Authority cluster with the same KMS, then retry", id, vcenter)
		}
		return fmt.Sprintf("configure the Trusted Key Provider %s with the same KMS on the vSphere Trust Authority cluster and make it available on %s, then retry", id, vcenter)
	}
	if st.ProviderRegistered {
		return fmt.Sprintf("make key provider %s on %s serve this key, then retry", id, vcenter)
	}
	return fmt.Sprintf("register key provider %s, serving the same keys as on the backup's vCenter, on %s, then retry", id, vcenter)
}

// ProvidersFromBackupNote says, once for all statuses, that the vCenter's
// key providers could not be listed and those recorded in the backup stood
// in; "" when they were listed.
func ProvidersFromBackupNote(statuses []KeyStatus, vcenter string) string {
	for _, st := range statuses {
		if st.ProvidersFromBackup {
			return fmt.Sprintf("the key providers of %s could not be listed (the account lacks Cryptographer.ManageKeyServers): the provider types recorded in the backup were used, and each key was checked with QueryCryptoKeyStatus alone; grant the privilege for a full check", vcenter)
		}
	}
	return ""
}
