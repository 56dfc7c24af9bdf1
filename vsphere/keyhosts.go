package vsphere

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// KeyHost is a host a restored VM may run on, with what a vSphere Native
// Key Provider asks of a host before it serves it keys.
//
// vCenter pushes an NKP's key derivation key "to all ESXi hosts in the
// cluster" (vSphere Security, "What Is vSphere Native Key Provider"), so a
// standalone host never gets one; a provider created with "use key
// provider only with TPM protected ESXi hosts" (KmipClusterInfo.tpmRequired,
// API 7.0.2) serves only hosts with a TPM 2.0. The TPM facts are the
// host's capability.tpmSupported ("whether this host supports the
// integrity measurement using a TPM device", API 4.0) and
// capability.tpmVersion (API 6.7), govmomi v0.56.0
// vim25/types.HostCapability. summary.tpmAttestation is not used: vCenter
// fills it only after a remote attestation, which NKP does not need.
type KeyHost struct {
	Name string
	// Target: the VM may run on this host (see KeyHosts).
	Target bool
	// Cluster names the host's cluster; "" for a standalone host.
	Cluster string
	// TPM: capability.tpmSupported; TPMVersion is capability.tpmVersion
	// ("2.0", "1.2"; "" when the host does not say).
	TPM        bool
	TPMVersion string
}

// HasTPM2 reports whether the host has a TPM an NKP created with
// tpmRequired accepts: a TPM 2.0. A host that reports a TPM without its
// version is given the benefit of the doubt: ESXi before 6.7 did not
// report it, and those hosts cannot run an NKP at all.
func (h KeyHost) HasTPM2() bool {
	return h.TPM && (h.TPMVersion == "" || strings.HasPrefix(h.TPMVersion, "2."))
}

// KeyHosts returns the hosts a VM placed by pl may run on, each of which
// must get the VM's key (Target): pl.Host when the placement names one;
// else the hosts of its pool's compute resource that can take the VM
// (connected, out of maintenance mode, mounting the datastore), among
// which vCenter chooses (a standalone host, a DRS cluster). The other
// hosts of the pool that can take the VM come too, not Target: the
// alternatives to name in a refusal. Sorted by name.
func (c *Client) KeyHosts(ctx context.Context, pl *Placement) ([]KeyHost, error) {
	ds, err := c.FindDatastore(ctx, pl.Datastore)
	if err != nil {
		return nil, err
	}
	ph, err := c.hostsOf(ctx, pl.Pool, ds.Reference())
	if err != nil {
		return nil, err
	}
	refs := make([]types.ManagedObjectReference, 0, len(ph.usable)+1)
	for _, h := range ph.usable {
		refs = append(refs, h.ref)
	}
	if pl.Host != nil && !slices.Contains(refs, pl.Host.Reference()) {
		refs = append(refs, pl.Host.Reference())
	}
	if len(refs) == 0 {
		return nil, nil
	}
	pc := property.DefaultCollector(c.Vim25())
	var hs []mo.HostSystem
	if err := pc.Retrieve(ctx, refs, []string{"name", "parent", "capability.tpmSupported", "capability.tpmVersion"}, &hs); err != nil {
		return nil, fmt.Errorf("read the TPM and cluster of the target hosts: %w", err)
	}
	clusters, err := c.clusterNames(ctx, hs)
	if err != nil {
		return nil, err
	}
	out := make([]KeyHost, 0, len(hs))
	for _, h := range hs {
		kh := KeyHost{Name: h.Name, Target: pl.Host == nil || pl.Host.Reference() == h.Reference()}
		if h.Parent != nil {
			kh.Cluster = clusters[*h.Parent]
		}
		if h.Capability != nil {
			kh.TPM, kh.TPMVersion = h.Capability.TpmSupported, h.Capability.TpmVersion
		}
		out = append(out, kh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// clusterNames names the clusters among the hosts' parents; a standalone
// host's parent is a plain ComputeResource, which gets no entry.
func (c *Client) clusterNames(ctx context.Context, hs []mo.HostSystem) (map[types.ManagedObjectReference]string, error) {
	var refs []types.ManagedObjectReference
	seen := map[types.ManagedObjectReference]bool{}
	for _, h := range hs {
		if h.Parent != nil && h.Parent.Type == "ClusterComputeResource" && !seen[*h.Parent] {
			seen[*h.Parent] = true
			refs = append(refs, *h.Parent)
		}
	}
	names := make(map[types.ManagedObjectReference]string, len(refs))
	if len(refs) == 0 {
		return names, nil
	}
	var crs []mo.ClusterComputeResource
	if err := property.DefaultCollector(c.Vim25()).Retrieve(ctx, refs, []string{"name"}, &crs); err != nil {
		return nil, fmt.Errorf("read the clusters of the target hosts: %w", err)
	}
	for _, cr := range crs {
		names[cr.Reference()] = cr.Name
	}
	return names, nil
}
