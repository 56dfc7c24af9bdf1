package keys

import (
	"errors"
	"fmt"
	"strings"
)

// ErrKeyNotAvailable means a key a VM depends on is not available on the
// target vCenter. The CLI maps it to exit code 3 (refused / not ready):
// restoring would produce a VM that cannot be powered on.
var ErrKeyNotAvailable = errors.New("key not available")

// NotAvailableError lists the keys a vCenter cannot serve, each with its
// remedy. It is meant to be shown to users verbatim.
type NotAvailableError struct {
	// Statuses are the unavailable keys only.
	Statuses []KeyStatus
	// VCenter names the target vCenter.
	VCenter string
}

// Error returns one line per missing key: key ID, what it protects,
// provider ID and type, reasons, and the remedy.
func (e *NotAvailableError) Error() string {
	lines := make([]string, 0, len(e.Statuses))
	for _, st := range e.Statuses {
		lines = append(lines, FormatStatus(st, e.VCenter))
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrKeyNotAvailable) true.
func (e *NotAvailableError) Is(target error) bool {
	return target == ErrKeyNotAvailable
}

// FormatStatus renders one status as a line for users, e.g.
//
//	key 8f3c... (vm) of provider nkp-prod (native) is not available on vc-b [provider_not_registered]: restore the Native Key Provider nkp-prod from its .p12 backup on vc-b, then retry
func FormatStatus(st KeyStatus, vcenter string) string {
	ptype := st.ProviderType
	if ptype == "" {
		ptype = ProviderUnknown
	}
	provider := st.Ref.ProviderID
	if provider == "" {
		provider = "(default)"
	}
	use := ""
	if st.Ref.Use != "" {
		use = " (" + st.Ref.Use + ")"
	}
	if st.Available {
		return fmt.Sprintf("key %s%s of provider %s (%s) is available on %s", st.Ref.KeyID, use, provider, ptype, vcenter)
	}
	s := fmt.Sprintf("key %s%s of provider %s (%s) is not available on %s", st.Ref.KeyID, use, provider, ptype, vcenter)
	if len(st.Reasons) > 0 {
		s += " [" + strings.Join(st.Reasons, ", ") + "]"
	}
	remedy := st.Remedy
	if remedy == "" {
		remedy = Remedy(st, vcenter)
	}
	return s + ": " + remedy
}

// AvailabilityError returns a *NotAvailableError for the unavailable keys in
// statuses, or nil when every key is available. Restore calls it right after
// Check and refuses to write anything when it is not nil.
func AvailabilityError(vcenter string, statuses []KeyStatus) error {
	var missing []KeyStatus
	for _, st := range statuses {
		if !st.Available {
			missing = append(missing, st)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &NotAvailableError{Statuses: missing, VCenter: vcenter}
}
