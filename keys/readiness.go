package keys

import "fmt"

// Readiness lists, in words for an audit report, why the VM described by k
// could not be restored with its keys on vcenter, or is at risk of becoming
// unrestorable. It only covers the availability of the keys a backup
// recorded: a key that was never recorded is a Restorability problem, and
// a stale backup is for the audit to judge.
//
// statuses come from Check on vcenter for k.Refs(). current is a fresh
// ListProviders of vcenter; when nil the providers recorded in k are used
// to judge whether a Native Key Provider has been backed up. An empty
// result means the keys are ready.
func Readiness(k VMKeys, statuses []KeyStatus, current []Provider, vcenter string) []string {
	var reasons []string
	for _, ref := range k.Refs() {
		st, ok := statusFor(statuses, ref)
		switch {
		case !ok:
			reasons = append(reasons, fmt.Sprintf("key %s (%s) of provider %s was not checked on %s", ref.KeyID, ref.Use, ref.ProviderID, vcenter))
		case !st.Available:
			reasons = append(reasons, FormatStatus(st, vcenter))
		}
	}
	providers := k.Providers
	if current != nil {
		providers = current
	}
	seen := map[string]bool{}
	for _, ref := range k.Refs() {
		if seen[ref.ProviderID] {
			continue
		}
		seen[ref.ProviderID] = true
		for _, p := range providers {
			if p.ID == ref.ProviderID && p.Type == ProviderNative && p.BackedUp != nil && !*p.BackedUp {
				reasons = append(reasons, fmt.Sprintf("Native Key Provider %s has never been backed up: if its vCenter is lost, the VM's keys are lost with it; back it up (Key Providers > %s > Back Up) and keep the .p12 and its password safe", p.ID, p.ID))
			}
		}
	}
	return reasons
}

func statusFor(statuses []KeyStatus, ref KeyRef) (KeyStatus, bool) {
	for _, st := range statuses {
		if st.Ref == ref {
			return st, true
		}
	}
	return KeyStatus{}, false
}
