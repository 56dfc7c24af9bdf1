package vspheretest

import (
	"context"
	"fmt"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Privileges the emulation checks (vSphere privilege IDs).
const (
	// PrivRegisterVM lets a user register an encrypted VM: without it
	// vCenter registers the VM all the same but does not hand its key to
	// the host, and the VM is left locked.
	PrivRegisterVM = "Cryptographer.RegisterVM"
	// PrivRegisterHost lets vCenter put a host into encryption mode
	// (runtime.cryptoState safe) when an encrypted VM is first registered
	// there; without it, on a host not yet in that mode, the VM is left
	// locked.
	PrivRegisterHost = "Cryptographer.RegisterHost"
)

// role is the emulated role of the vCenter user: every privilege but the
// denied ones. The simulator itself grants everything to everyone.
type role struct {
	mu     sync.Mutex
	denied map[string]bool
}

func newRole(denied []string) *role {
	r := &role{denied: map[string]bool{}}
	for _, id := range denied {
		r.denied[id] = true
	}
	return r
}

func (r *role) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.denied[id]
}

// DenyPrivileges takes privileges (e.g. PrivRegisterVM) away from the
// vCenter user, for every session, as an administrator editing the role
// would.
func (e *Env) DenyPrivileges(ids ...string) {
	e.role.mu.Lock()
	defer e.role.mu.Unlock()
	for _, id := range ids {
		e.role.denied[id] = true
	}
}

// GrantPrivileges gives denied privileges back.
func (e *Env) GrantPrivileges(ids ...string) {
	e.role.mu.Lock()
	defer e.role.mu.Unlock()
	for _, id := range ids {
		delete(e.role.denied, id)
	}
}

// SetHostCryptoState sets a host's runtime.cryptoState (types.HostCryptoState:
// incapable, prepared, safe), e.g. to model a host that never ran an
// encrypted VM.
func (e *Env) SetHostCryptoState(ctx context.Context, hostName string, state types.HostCryptoState) error {
	h, err := e.inv.FindHost(ctx, hostName)
	if err != nil {
		return err
	}
	e.updateHost(h.Reference(), state)
	return nil
}

// HostCryptoState reads a host's runtime.cryptoState.
func (e *Env) HostCryptoState(ctx context.Context, hostName string) (types.HostCryptoState, error) {
	h, err := e.inv.FindHost(ctx, hostName)
	if err != nil {
		return "", err
	}
	host, ok := e.Model.Map().Get(h.Reference()).(*simulator.HostSystem)
	if !ok {
		return "", fmt.Errorf("host %s: not a simulator host", hostName)
	}
	var state string
	e.Model.Map().WithLock(e.simContext(), host, func() { state = host.Runtime.CryptoState })
	return types.HostCryptoState(state), nil
}

func (e *Env) simContext() *simulator.Context { return &simulator.Context{Map: e.Model.Map()} }

func (e *Env) updateHost(ref types.ManagedObjectReference, state types.HostCryptoState) {
	r := e.Model.Map()
	ctx := e.simContext()
	if host, ok := r.Get(ref).(*simulator.HostSystem); ok {
		r.AtomicUpdate(ctx, host, []types.PropertyChange{{Name: "runtime.cryptoState", Val: string(state)}})
	}
}

// initHostCryptoState puts every host in the state ESXi starts in (see
// newHostState).
func initHostCryptoState(r *simulator.Registry) {
	ctx := &simulator.Context{Map: r}
	for _, e := range r.All("HostSystem") {
		if h, ok := e.(*simulator.HostSystem); ok {
			newHostState(ctx, h)
		}
	}
}

// prepareHost reports whether the host is in encryption mode (safe), putting
// it there first when the user may (PrivRegisterHost).
func prepareHost(ctx *simulator.Context, ref types.ManagedObjectReference, mayRegisterHost bool) bool {
	host, ok := ctx.Map.Get(ref).(*simulator.HostSystem)
	if !ok {
		return false
	}
	var state string
	ctx.WithLock(host, func() { state = host.Runtime.CryptoState })
	switch {
	case state == string(types.HostCryptoStateSafe):
		return true
	case mayRegisterHost:
		ctx.Map.AtomicUpdate(ctx, host, []types.PropertyChange{{Name: "runtime.cryptoState", Val: string(types.HostCryptoStateSafe)}})
		return true
	}
	return false
}

// keyToHost emulates what vCenter does once a VM encrypted with key sits
// on a host: it puts the host into encryption mode when it may
// (PrivRegisterHost), and hands the VM's key to the host when the user may
// (PrivRegisterVM) and the key's provider serves that host (a Native Key
// Provider serves only cluster hosts, and only hosts with a TPM when
// created with tpmRequired: nativeKeyReaches). Otherwise the VM stays
// registered but locked: runtime.cryptoState locked and connection state
// invalid, as vSphere shows a VM whose host has no key. Unencrypted VMs
// (key nil) are left alone.
func (r *role) keyToHost(ctx *simulator.Context, vm *simulator.VirtualMachine, key *types.CryptoKeyId) {
	if key == nil {
		return
	}
	var hostRef *types.ManagedObjectReference
	ctx.WithLock(vm, func() { hostRef = vm.Runtime.Host })
	locked := !r.has(PrivRegisterVM)
	if hostRef != nil && (!nativeKeyReaches(ctx, *key, *hostRef) || !prepareHost(ctx, *hostRef, r.has(PrivRegisterHost))) {
		locked = true
	}
	changes := []types.PropertyChange{{Name: "runtime.cryptoState", Val: string(types.VirtualMachineCryptoStateUnlocked)}}
	if locked {
		changes = []types.PropertyChange{
			{Name: "runtime.cryptoState", Val: string(types.VirtualMachineCryptoStateLocked)},
			{Name: "runtime.connectionState", Val: types.VirtualMachineConnectionStateInvalid},
		}
	}
	ctx.Map.AtomicUpdate(ctx, vm, changes)
}

// encrypted records what vCenter does when an administrator encrypts a VM:
// its host is now in encryption mode and the VM is unlocked.
func (e *Env) encrypted(ref types.ManagedObjectReference) {
	admin := newRole(nil)
	if vm, ok := e.Model.Map().Get(ref).(*simulator.VirtualMachine); ok {
		var key *types.CryptoKeyId
		e.Model.Map().WithLock(e.simContext(), vm, func() {
			if vm.Config != nil && vm.Config.KeyId != nil {
				k := *vm.Config.KeyId
				key = &k
			}
		})
		admin.keyToHost(e.simContext(), vm, key)
	}
}
