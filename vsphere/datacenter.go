package vsphere

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Datastore names are unique within a datacenter only: two datacenters
// often both have a "datastore1" or "LocalDS_0". A lookup by name in the
// wrong datacenter finds another datastore (wrong files, or 404), and
// without a datacenter govmomi's finder gives up ("please specify a
// datacenter"). So a VM's files are looked up in the VM's own datacenter,
// found from its ancestors, with its datastores taken by managed object
// reference from the VM (ForVM); and a restore works in the datacenter of
// its target placement (ResolvePlacement, Placement.Client).

// InDatacenter returns a view of c whose lookups by name and path, and
// datastore file operations, happen in dc. It shares c's session: log out
// through c, and use c for tags.
func (c *Client) InDatacenter(dc *object.Datacenter) *Client {
	v := &Client{
		gc:           c.gc,
		host:         c.host,
		instanceUUID: c.instanceUUID,
		dc:           dc,
		dss:          map[string]*object.Datastore{},
		retry:        c.retryPolicyRef(),
		keeper:       c.keeper,
		user:         c.user,
		log:          c.log,
		clk:          c.clk,
	}
	v.finder = find.NewFinder(c.gc.Client, false)
	v.finder.SetDatacenter(dc)
	return v
}

func (c *Client) retryPolicyRef() *RetryPolicy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry
}

// ForVM returns a view of c in vm's datacenter (InDatacenter) that knows
// vm's datastores by their managed object references, so that "[ds] path"
// names in vm's configuration reach vm's datastores whatever other
// datacenter has a datastore of the same name.
func (c *Client) ForVM(ctx context.Context, vm *object.VirtualMachine) (*Client, error) {
	if !c.IsVC() {
		return c, nil // one host, one datacenter
	}
	dc, err := c.datacenterOf(ctx, vm.Reference())
	if err != nil {
		return nil, fmt.Errorf("datacenter of VM %s: %w", vm.Reference().Value, err)
	}
	v := c.InDatacenter(dc)
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"datastore"}, &m); err != nil {
		return nil, fmt.Errorf("datastores of VM %s: %w", vm.Reference().Value, err)
	}
	if err := v.addDatastores(ctx, m.Datastore); err != nil {
		return nil, fmt.Errorf("datastores of VM %s: %w", vm.Reference().Value, err)
	}
	return v, nil
}

// addDatastores makes the datastores refs known by name, with the paths
// the file service needs.
func (c *Client) addDatastores(ctx context.Context, refs []types.ManagedObjectReference) error {
	if len(refs) == 0 {
		return nil
	}
	var dss []mo.Datastore
	if err := property.DefaultCollector(c.Vim25()).Retrieve(ctx, refs, []string{"name"}, &dss); err != nil {
		return err
	}
	for _, m := range dss {
		ds := object.NewDatastore(c.Vim25(), m.Self)
		if err := ds.FindInventoryPath(ctx); err != nil {
			return err
		}
		c.mu.Lock()
		c.dss[m.Name] = ds
		c.mu.Unlock()
	}
	return nil
}

// datacenterOf returns the datacenter above the inventory object ref.
func (c *Client) datacenterOf(ctx context.Context, ref types.ManagedObjectReference) (*object.Datacenter, error) {
	ancestors, err := mo.Ancestors(ctx, c.Vim25(), c.Vim25().ServiceContent.PropertyCollector, ref)
	if err != nil {
		return nil, err
	}
	for i := len(ancestors) - 1; i >= 0; i-- {
		if ancestors[i].Self.Type != "Datacenter" {
			continue
		}
		dc := object.NewDatacenter(c.Vim25(), ancestors[i].Self)
		p, err := find.InventoryPath(ctx, c.Vim25(), dc.Reference())
		if err != nil {
			return nil, err
		}
		dc.InventoryPath = p
		return dc, nil
	}
	return nil, fmt.Errorf("%s %s: %w", ref.Type, ref.Value, ErrNotFound)
}

// datacenterOfPath returns the datacenter of the object at the absolute
// inventory path p ("/DC1/vm/prod", "/DC1/host/C1/Resources"), or nil when
// p is not absolute or names nothing.
func (c *Client) datacenterOfPath(ctx context.Context, p string) *object.Datacenter {
	if !strings.HasPrefix(p, "/") {
		return nil
	}
	ref, err := object.NewSearchIndex(c.Vim25()).FindByInventoryPath(ctx, p)
	if err != nil || ref == nil {
		return nil
	}
	dc, err := c.datacenterOf(ctx, ref.Reference())
	if err != nil {
		return nil
	}
	return dc
}
