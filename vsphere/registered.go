package vsphere

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// ErrVMLocked: vCenter registered a VM that cannot run as it is, because
// its host did not get the VM's encryption key (see LockedError).
var ErrVMLocked = errors.New("registered VM is locked")

// LockedError describes a VM that RegisterVM_Task registered but left
// locked or invalid. vCenter registers an encrypted VM even when it may not
// hand the VM's key to the host: the user lacks Cryptographer.RegisterVM,
// or the host is not in encryption mode and the user lacks
// Cryptographer.RegisterHost to put it there. errors.Is(err, ErrVMLocked)
// is true.
type LockedError struct {
	// VM is the registered VM's managed object ID.
	VM string
	// CryptoState is runtime.cryptoState ("locked"; empty before vSphere
	// 6.7 and for unencrypted VMs); ConnectionState is
	// runtime.connectionState (e.g. "invalid").
	CryptoState     string
	ConnectionState string
	// Host is the name of the VM's host ("" when unknown) and
	// HostCryptoState its runtime.cryptoState (safe, prepared, incapable;
	// "" when unknown): anything but safe means the host is not in
	// encryption mode.
	Host            string
	HostCryptoState string
}

func (e *LockedError) Error() string {
	s := fmt.Sprintf("VM %s is registered but not usable: runtime.cryptoState %q, connection state %q", e.VM, e.CryptoState, e.ConnectionState)
	if e.Host != "" {
		s += fmt.Sprintf(" on host %s (host cryptoState %q)", e.Host, e.HostCryptoState)
	}
	return s
}

// Unwrap makes errors.Is(err, ErrVMLocked) true.
func (e *LockedError) Unwrap() error { return ErrVMLocked }

// HostEncryptionOff reports whether the VM's host is known not to be in
// encryption mode (its cryptoState is set and not safe).
func (e *LockedError) HostEncryptionOff() bool {
	return e.HostCryptoState != "" && e.HostCryptoState != string(types.HostCryptoStateSafe)
}

// CheckRegistered reads the state of a VM just registered and returns a
// *LockedError when it is locked (runtime.cryptoState locked) or not
// connected (connection state invalid, inaccessible, orphaned or
// disconnected): vCenter's RegisterVM_Task succeeds in those cases too.
func (c *Client) CheckRegistered(ctx context.Context, vm *object.VirtualMachine) error {
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.Vim25()).RetrieveOne(ctx, vm.Reference(), []string{"runtime.cryptoState", "runtime.connectionState", "runtime.host"}, &m); err != nil {
		return fmt.Errorf("read the state of registered VM %s: %w", vm.Reference().Value, err)
	}
	rt := m.Runtime
	if rt.CryptoState != string(types.VirtualMachineCryptoStateLocked) && (rt.ConnectionState == "" || rt.ConnectionState == types.VirtualMachineConnectionStateConnected) {
		return nil
	}
	le := &LockedError{VM: vm.Reference().Value, CryptoState: rt.CryptoState, ConnectionState: string(rt.ConnectionState)}
	if rt.Host != nil {
		var h mo.HostSystem
		// Best effort: the host only sharpens the remedy.
		if err := property.DefaultCollector(c.Vim25()).RetrieveOne(ctx, *rt.Host, []string{"name", "runtime.cryptoState"}, &h); err == nil {
			le.Host, le.HostCryptoState = h.Name, h.Runtime.CryptoState
		}
	}
	return le
}
