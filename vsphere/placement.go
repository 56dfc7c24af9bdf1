package vsphere

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
)

// PlacementRequest says where to register a VM. Datastore, Folder, Pool and
// Host are what the caller asked for (inventory paths or names); each empty
// one falls back to Original's. The folder and the pool fall back further,
// to the datacenter's default VM folder and only resource pool, when the
// original no longer exists (with a warning). The host is the requested
// one; else the original host when it can take the VM (connected, not in
// maintenance mode, mounting the datastore) and the pool is the original
// one or belongs to a cluster without DRS; else vCenter chooses where it
// can (a DRS cluster, a standalone host), and in a cluster without DRS,
// which RegisterVM_Task refuses without a host, the first usable host by
// name.
type PlacementRequest struct {
	// Name is the VM's name; it also names the home folder "[ds] Name/".
	Name                          string
	Datastore, Folder, Pool, Host string
	// Original is where the VM lived.
	Original OriginalPlacement
}

// OriginalPlacement is a VM's placement as it was (at backup time).
type OriginalPlacement struct {
	// Name of the VM: Placement.OriginalExists reports whether a VM of
	// that name is still there (looked up only when it differs from
	// PlacementRequest.Name).
	Name                          string
	Datastore, Folder, Pool, Host string
}

// Placement is a resolved PlacementRequest: the inventory objects to
// register into, and what already exists where the VM would go. Deciding
// what to refuse is the caller's.
type Placement struct {
	// Client is the resolving client in the placement's datacenter: use
	// it for the restore's datastore and inventory operations.
	Client *Client

	Name      string
	Datastore string
	// HomeFolder is "[Datastore] Name/".
	HomeFolder string
	Folder     *object.Folder
	Pool       *object.ResourcePool
	// Host is nil when vCenter chooses.
	Host *object.HostSystem
	// Warnings say where a default stood in for a vanished original.
	Warnings []string

	// NameTaken lists the VMs already named Name.
	NameTaken []ExistingVM
	// HomeExists: the home folder exists on the datastore.
	HomeExists bool
	// OriginalExists: a VM named Original.Name exists (only looked up
	// when it differs from Name; false otherwise).
	OriginalExists bool
}

// ExistingVM identifies a VM found in the inventory.
type ExistingVM struct {
	InventoryPath string
	MoRef         string
}

// PlacementItem names one part of a placement.
type PlacementItem string

// The items of a placement.
const (
	PlacementDatastore PlacementItem = "datastore"
	PlacementFolder    PlacementItem = "folder"
	PlacementPool      PlacementItem = "resource pool"
	PlacementHost      PlacementItem = "host"
	// PlacementDatacenter is missing when a vCenter has several
	// datacenters and nothing says which one to restore to.
	PlacementDatacenter PlacementItem = "datacenter"
)

// MissingItem is one placement item that does not exist.
type MissingItem struct {
	Item PlacementItem
	// Name is the item as requested, or the original's ("" when there was
	// none, or when no host of a cluster without DRS can take the VM: then
	// Default says why).
	Name string
	// Requested: the caller asked for Name; otherwise Name is the
	// original placement's.
	Requested bool
	// Default, when set, says why the datacenter's default (folder or
	// pool) could not stand in for the missing original.
	Default error
}

func (m MissingItem) String() string {
	switch {
	case m.Requested:
		return fmt.Sprintf("%s %q", m.Item, m.Name)
	case m.Default != nil && m.Name == "":
		return fmt.Sprintf("no %s (%v)", m.Item, m.Default)
	case m.Default != nil:
		return fmt.Sprintf("the original %s %q and a default one (%v)", m.Item, m.Name, m.Default)
	}
	return fmt.Sprintf("the original %s %q", m.Item, m.Name)
}

// PlacementError lists every placement item that does not exist, so a user
// fixes them all in one go. errors.Is(err, ErrNotFound) is true.
type PlacementError struct {
	// VCenter is the host the lookups were made on.
	VCenter string
	Missing []MissingItem
}

func (e *PlacementError) Error() string {
	items := make([]string, 0, len(e.Missing))
	for _, m := range e.Missing {
		items = append(items, m.String())
	}
	return fmt.Sprintf("placement on %s: not found: %s", e.VCenter, strings.Join(items, "; "))
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *PlacementError) Unwrap() error { return ErrNotFound }

// ResolvePlacement looks up every item of req and what already exists where
// the VM would go. Items that do not exist are reported together in a
// *PlacementError; other lookup failures (network, a name matching several
// objects) are returned as they come. The existence checks (NameTaken,
// HomeExists, OriginalExists) run only once every item was found.
//
// The lookups happen in one datacenter (see placementDatacenter), whose
// view of c the Placement carries for the restore's file operations.
func (c *Client) ResolvePlacement(ctx context.Context, req PlacementRequest) (*Placement, error) {
	dcc := c.placementDatacenter(ctx, req)
	if dcc == nil {
		return nil, &PlacementError{VCenter: c.host, Missing: []MissingItem{{Item: PlacementDatacenter, Default: fmt.Errorf("%s has several datacenters and none was chosen", c.host)}}}
	}
	pl, err := dcc.resolvePlacement(ctx, req)
	if err != nil {
		return nil, err
	}
	pl.Client = dcc
	return pl, nil
}

// placementDatacenter returns c in the datacenter a placement goes to: that
// of an absolute --folder, --pool, --host or --datastore inventory path;
// else c's own (--datacenter, or the only one); else that of the original
// folder or pool when they still exist; else nil.
func (c *Client) placementDatacenter(ctx context.Context, req PlacementRequest) *Client {
	for _, p := range []string{req.Folder, req.Pool, req.Host, req.Datastore} {
		if dc := c.datacenterOfPath(ctx, p); dc != nil {
			return c.InDatacenter(dc)
		}
	}
	if c.dc != nil {
		return c
	}
	for _, p := range []string{req.Original.Folder, req.Original.Pool} {
		if dc := c.datacenterOfPath(ctx, p); dc != nil {
			return c.InDatacenter(dc)
		}
	}
	return nil
}

func (c *Client) resolvePlacement(ctx context.Context, req PlacementRequest) (*Placement, error) {
	pl := &Placement{Name: req.Name}
	pe := &PlacementError{VCenter: c.host}
	if err := c.placeDatastore(ctx, req, pl, pe); err != nil {
		return nil, err
	}
	if err := c.placeFolder(ctx, req, pl, pe); err != nil {
		return nil, err
	}
	originalPool, err := c.placePool(ctx, req, pl, pe)
	if err != nil {
		return nil, err
	}
	if err := c.placeHost(ctx, req, pl, originalPool, pe); err != nil {
		return nil, err
	}
	if len(pe.Missing) > 0 {
		return nil, pe
	}
	if err := c.checkOccupied(ctx, req, pl); err != nil {
		return nil, err
	}
	return pl, nil
}

// lookup runs find for name; a not-found becomes a MissingItem in pe (and
// a nil object), anything else is returned.
func lookup[T any](ctx context.Context, pe *PlacementError, item PlacementItem, name string, requested bool, find func(context.Context, string) (T, error)) (T, error) {
	obj, err := find(ctx, name)
	if errors.Is(err, ErrNotFound) {
		pe.Missing = append(pe.Missing, MissingItem{Item: item, Name: name, Requested: requested})
		var zero T
		return zero, nil
	}
	return obj, err
}

func (c *Client) placeDatastore(ctx context.Context, req PlacementRequest, pl *Placement, pe *PlacementError) error {
	name := req.Datastore
	if name == "" {
		name = req.Original.Datastore
	}
	// An inventory path names the datacenter too (placementDatacenter);
	// datastore paths ("[ds] dir") take the name.
	pl.Datastore = name
	if strings.HasPrefix(name, "/") {
		pl.Datastore = path.Base(name)
	}
	pl.HomeFolder = fmt.Sprintf("[%s] %s/", pl.Datastore, pl.Name)
	_, err := lookup(ctx, pe, PlacementDatastore, name, req.Datastore != "", c.FindDatastore)
	return err
}

// placeFolder: the requested folder, else the original one, else the
// datacenter's default VM folder.
func (c *Client) placeFolder(ctx context.Context, req PlacementRequest, pl *Placement, pe *PlacementError) error {
	var err error
	if req.Folder != "" {
		pl.Folder, err = lookup(ctx, pe, PlacementFolder, req.Folder, true, c.FindFolder)
		return err
	}
	if req.Original.Folder != "" {
		pl.Folder, err = c.FindFolder(ctx, req.Original.Folder)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	f, derr := c.FindFolder(ctx, "")
	if derr != nil {
		if !errors.Is(derr, ErrNotFound) {
			return derr
		}
		pe.Missing = append(pe.Missing, MissingItem{Item: PlacementFolder, Name: req.Original.Folder, Default: derr})
		return nil
	}
	pl.Folder = f
	pl.Warnings = append(pl.Warnings, fmt.Sprintf("the original folder %s does not exist on %s: registering in %s", req.Original.Folder, c.host, f.InventoryPath))
	return nil
}

// placePool: the requested pool, else the original one, else the
// datacenter's only pool. It reports whether the original pool is used.
func (c *Client) placePool(ctx context.Context, req PlacementRequest, pl *Placement, pe *PlacementError) (bool, error) {
	var err error
	if req.Pool != "" {
		pl.Pool, err = lookup(ctx, pe, PlacementPool, req.Pool, true, c.FindResourcePool)
		return false, err
	}
	if req.Original.Pool != "" {
		pl.Pool, err = c.FindResourcePool(ctx, req.Original.Pool)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	// Several pools, or none: a default cannot stand in either way.
	p, derr := c.FindResourcePool(ctx, "")
	if derr != nil {
		pe.Missing = append(pe.Missing, MissingItem{Item: PlacementPool, Name: req.Original.Pool, Default: derr})
		return false, nil
	}
	pl.Pool = p
	pl.Warnings = append(pl.Warnings, fmt.Sprintf("the original resource pool %s does not exist on %s: using %s", req.Original.Pool, c.host, p.InventoryPath))
	return false, nil
}

// placeHost: the requested host; else chooseHost's pick among the hosts of
// the pool's compute resource.
func (c *Client) placeHost(ctx context.Context, req PlacementRequest, pl *Placement, originalPool bool, pe *PlacementError) error {
	if req.Host != "" {
		var err error
		pl.Host, err = lookup(ctx, pe, PlacementHost, req.Host, true, c.FindHost)
		return err
	}
	if pl.Pool == nil || pe.missing(PlacementDatastore) {
		return nil // reported already; a host is judged by both
	}
	return c.chooseHost(ctx, req, pl, originalPool, pe)
}

func (e *PlacementError) missing(item PlacementItem) bool {
	for _, m := range e.Missing {
		if m.Item == item {
			return true
		}
	}
	return false
}

// checkOccupied records what already exists where the VM would go.
func (c *Client) checkOccupied(ctx context.Context, req PlacementRequest, pl *Placement) error {
	hits, err := c.vmsNamed(ctx, pl.Name)
	if err != nil {
		return err
	}
	for _, h := range hits {
		p, err := find.InventoryPath(ctx, c.Vim25(), h)
		if err != nil {
			p = "?"
		}
		pl.NameTaken = append(pl.NameTaken, ExistingVM{InventoryPath: p, MoRef: h.Value})
	}
	if pl.HomeExists, err = c.Exists(ctx, pl.Datastore, pl.Name); err != nil {
		return fmt.Errorf("look for the home folder %s: %w", pl.HomeFolder, err)
	}
	if req.Original.Name != "" && req.Original.Name != pl.Name {
		orig, err := c.vmsNamed(ctx, req.Original.Name)
		if err != nil {
			return err
		}
		pl.OriginalExists = len(orig) > 0
	}
	return nil
}
