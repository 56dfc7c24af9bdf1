package vspheretest

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// HostTPMVersion is the TPM every simulated host has unless
// SetHostTPM takes it away: the servers vTPM VMs run on carry a TPM 2.0
// (ESXi 7.0 U2 and later need it for a provider created with
// tpmRequired).
const HostTPMVersion = "2.0"

// newHostState puts a host in the state a freshly added ESXi host is in:
// incapable of running encrypted VMs until vCenter prepares it, and with
// the TPM 2.0 its hardware carries. The simulator's hosts report no TPM
// (its esx.HostCapability leaves tpmSupported false).
func newHostState(ctx *simulator.Context, h *simulator.HostSystem) {
	ctx.Map.AtomicUpdate(ctx, h, []types.PropertyChange{{Name: "runtime.cryptoState", Val: string(types.HostCryptoStateIncapable)}})
	setTPM(ctx, h, true)
}

// setTPM replaces the host's capability with a copy that has a TPM 2.0 or
// none.
func setTPM(ctx *simulator.Context, h *simulator.HostSystem, present bool) {
	ctx.WithLock(h, func() {
		c := new(types.HostCapability)
		if h.Capability != nil {
			*c = *h.Capability
		}
		c.TpmSupported, c.TpmVersion = present, ""
		if present {
			c.TpmVersion = HostTPMVersion
		}
		ctx.Update(h, []types.PropertyChange{{Name: "capability", Val: c}})
	})
}

// SetHostTPM gives the named host a TPM 2.0 (present) or takes it away, as
// a server without a TPM module, or with its TPM off in the firmware,
// reports capability.tpmSupported false.
func (e *Env) SetHostTPM(ctx context.Context, hostName string, present bool) error {
	h, err := e.inv.FindHost(ctx, hostName)
	if err != nil {
		return err
	}
	host, ok := e.Model.Map().Get(h.Reference()).(*simulator.HostSystem)
	if !ok {
		return fmt.Errorf("host %s: not a simulator host", hostName)
	}
	setTPM(e.simContext(), host, present)
	return nil
}

// nativeKeyReaches tells whether a Native Key Provider's key can reach
// host, as vCenter decides: it pushes an NKP's key derivation key to the
// hosts of a cluster only, so a standalone host never gets it; a provider
// created with tpmRequired serves only hosts with a TPM. Keys of other
// providers (standard KMS) reach any host. Lock order: the crypto manager,
// then the host, each alone.
func nativeKeyReaches(ctx *simulator.Context, key types.CryptoKeyId, hostRef types.ManagedObjectReference) bool {
	native, tpmRequired := false, false
	m := ctx.Map.CryptoManager()
	ctx.WithLock(m, func() {
		for _, p := range m.KmipServers {
			if p.ClusterId.Id == key.ProviderId.Id && p.ManagementType == string(types.KmipClusterInfoKmsManagementTypeNativeProvider) {
				native = true
				tpmRequired = p.TpmRequired != nil && *p.TpmRequired
			}
		}
	})
	if !native {
		return true
	}
	host, ok := ctx.Map.Get(hostRef).(*simulator.HostSystem)
	if !ok {
		return false
	}
	inCluster, tpm := false, false
	ctx.WithLock(host, func() {
		inCluster = host.Parent != nil && host.Parent.Type == "ClusterComputeResource"
		tpm = host.Capability != nil && host.Capability.TpmSupported
	})
	return inCluster && (tpm || !tpmRequired)
}
