package vsphere

import (
	"context"
	"fmt"
	"sort"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// poolHosts are the hosts of the compute resource a resource pool belongs
// to, as registration sees them.
type poolHosts struct {
	// name is the compute resource's (the cluster's or standalone host's).
	name string
	// vcenterChooses: a standalone host or a cluster with DRS on, where
	// RegisterVM_Task may leave the host unset. A cluster with DRS off
	// needs one.
	vcenterChooses bool
	// usable are the hosts that can take the VM: connected, not in
	// maintenance mode, mounting the target datastore; sorted by name.
	usable []hostRef
	// total counts every host of the compute resource.
	total int
}

type hostRef struct {
	name string
	ref  types.ManagedObjectReference
}

// hostsOf reads the compute resource of pool and which of its hosts can
// take a VM whose home is on datastore ds.
func (c *Client) hostsOf(ctx context.Context, pool *object.ResourcePool, ds types.ManagedObjectReference) (*poolHosts, error) {
	pc := property.DefaultCollector(c.Vim25())
	var p mo.ResourcePool
	if err := pc.RetrieveOne(ctx, pool.Reference(), []string{"owner"}, &p); err != nil {
		return nil, fmt.Errorf("read the owner of resource pool %s: %w", pool.InventoryPath, err)
	}
	ph := &poolHosts{vcenterChooses: true}
	var hosts []types.ManagedObjectReference
	if p.Owner.Type == "ClusterComputeResource" {
		var cr mo.ClusterComputeResource
		if err := pc.RetrieveOne(ctx, p.Owner, []string{"name", "host", "configurationEx"}, &cr); err != nil {
			return nil, fmt.Errorf("read cluster %s: %w", p.Owner.Value, err)
		}
		ph.name, hosts = cr.Name, cr.Host
		if cfg, ok := cr.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
			ph.vcenterChooses = cfg.DrsConfig.Enabled != nil && *cfg.DrsConfig.Enabled
		}
	} else {
		var cr mo.ComputeResource
		if err := pc.RetrieveOne(ctx, p.Owner, []string{"name", "host"}, &cr); err != nil {
			return nil, fmt.Errorf("read compute resource %s: %w", p.Owner.Value, err)
		}
		ph.name, hosts = cr.Name, cr.Host
	}
	ph.total = len(hosts)
	if len(hosts) == 0 {
		return ph, nil
	}
	var hs []mo.HostSystem
	if err := pc.Retrieve(ctx, hosts, []string{"name", "runtime.connectionState", "runtime.inMaintenanceMode", "datastore"}, &hs); err != nil {
		return nil, fmt.Errorf("read the hosts of %s: %w", ph.name, err)
	}
	for _, h := range hs {
		if h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected && !h.Runtime.InMaintenanceMode && mounts(h, ds) {
			ph.usable = append(ph.usable, hostRef{name: h.Name, ref: h.Reference()})
		}
	}
	sort.Slice(ph.usable, func(i, j int) bool { return ph.usable[i].name < ph.usable[j].name })
	return ph, nil
}

func mounts(h mo.HostSystem, ds types.ManagedObjectReference) bool {
	for _, d := range h.Datastore {
		if d == ds {
			return true
		}
	}
	return false
}

// pick returns the usable host named name, or nil.
func (ph *poolHosts) pick(name string) *hostRef {
	for i := range ph.usable {
		if ph.usable[i].name == name {
			return &ph.usable[i]
		}
	}
	return nil
}

// hostSystem turns h into an object with its inventory path.
func (c *Client) hostSystem(ctx context.Context, h *hostRef) (*object.HostSystem, error) {
	hs := object.NewHostSystem(c.Vim25(), h.ref)
	p, err := find.InventoryPath(ctx, c.Vim25(), h.ref)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	hs.InventoryPath = p
	return hs, nil
}

// chooseHost decides the host of a placement that names none: the
// original host when it can take the VM (and the pool is the original's
// or vCenter cannot choose); else nil where vCenter chooses (a DRS cluster,
// a standalone host); else, in a cluster without DRS, the first usable
// host by name. No usable host there is a MissingItem in pe.
func (c *Client) chooseHost(ctx context.Context, req PlacementRequest, pl *Placement, originalPool bool, pe *PlacementError) error {
	ds, err := c.FindDatastore(ctx, pl.Datastore)
	if err != nil {
		return err
	}
	ph, err := c.hostsOf(ctx, pl.Pool, ds.Reference())
	if err != nil {
		return err
	}
	h := (*hostRef)(nil)
	if originalPool || !ph.vcenterChooses {
		h = ph.pick(req.Original.Host)
	}
	if h == nil && !ph.vcenterChooses {
		if len(ph.usable) == 0 {
			pe.Missing = append(pe.Missing, MissingItem{Item: PlacementHost, Default: fmt.Errorf("cluster %s has DRS off, so the host must be chosen, and none of its %d hosts is connected, out of maintenance mode and mounts datastore %s", ph.name, ph.total, pl.Datastore)})
			return nil
		}
		h = &ph.usable[0]
		if req.Original.Host != "" {
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("cluster %s has DRS off and the original host %s cannot take the VM (not there, disconnected, in maintenance mode or without datastore %s): registering on host %s", ph.name, req.Original.Host, pl.Datastore, h.name))
		}
	}
	if h == nil {
		return nil
	}
	pl.Host, err = c.hostSystem(ctx, h)
	return err
}
