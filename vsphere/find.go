package vsphere

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// AmbiguousError says a VM name matched several VMs; the user must pass an
// inventory path or a managed object reference instead.
type AmbiguousError struct {
	Name       string
	Candidates []string // "inventory/path (vm-42)", sorted
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("VM name %q matches %d VMs: %s (use the inventory path or the vm-NNN reference)",
		e.Name, len(e.Candidates), strings.Join(e.Candidates, ", "))
}

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

var morefPattern = regexp.MustCompile(`^(?:VirtualMachine:)?(vm-\d+)$`)

// FindVM resolves ref, which is a managed object reference ("vm-42" or
// "VirtualMachine:vm-42"), an inventory path ("/DC0/vm/folder/name", or
// relative to the datacenter's VM folder when it contains a slash) or a plain
// VM name searched in the whole inventory. The returned object has its
// InventoryPath set. A name matching several VMs yields *AmbiguousError.
func (c *Client) FindVM(ctx context.Context, ref string) (*object.VirtualMachine, error) {
	if ref == "" {
		return nil, fmt.Errorf("find VM: empty name: %w", ErrNotFound)
	}
	if m := morefPattern.FindStringSubmatch(ref); m != nil {
		mref := types.ManagedObjectReference{Type: "VirtualMachine", Value: m[1]}
		return c.vmByRef(ctx, mref)
	}
	if strings.Contains(ref, "/") {
		vm, err := c.finder.VirtualMachine(ctx, ref)
		if err != nil {
			return nil, wrapFinderError("VM", ref, err)
		}
		return vm, nil
	}

	hits, err := c.vmsNamed(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("VM %q: %w", ref, ErrNotFound)
	case 1:
		return c.vmByRef(ctx, hits[0])
	}
	amb := &AmbiguousError{Name: ref}
	for _, h := range hits {
		p, err := find.InventoryPath(ctx, c.Vim25(), h)
		if err != nil {
			p = "?"
		}
		amb.Candidates = append(amb.Candidates, fmt.Sprintf("%s (%s)", p, h.Value))
	}
	sort.Strings(amb.Candidates)
	return nil, amb
}

// vmsNamed returns every VM of the inventory named name, however the name
// looks (a name like "vm-42" is a name here, not a reference).
func (c *Client) vmsNamed(ctx context.Context, name string) ([]types.ManagedObjectReference, error) {
	v, err := view.NewManager(c.Vim25()).CreateContainerView(ctx, c.Vim25().ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, fmt.Errorf("find VM %q: %w", name, err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name"}, &vms); err != nil {
		return nil, fmt.Errorf("find VM %q: %w", name, err)
	}
	var hits []types.ManagedObjectReference
	for _, vm := range vms {
		if vm.Name == name {
			hits = append(hits, vm.Self)
		}
	}
	return hits, nil
}

func (c *Client) vmByRef(ctx context.Context, ref types.ManagedObjectReference) (*object.VirtualMachine, error) {
	p, err := find.InventoryPath(ctx, c.Vim25(), ref)
	if err != nil {
		if fault.Is(err, &types.ManagedObjectNotFound{}) {
			return nil, fmt.Errorf("VM %s: %w", ref.Value, ErrNotFound)
		}
		return nil, fmt.Errorf("VM %s: %w", ref.Value, err)
	}
	vm := object.NewVirtualMachine(c.Vim25(), ref)
	vm.InventoryPath = p
	return vm, nil
}

// VMListEntry is one VM of ListVMs: enough to select VMs (by vTPM/encryption)
// without a full VMInfo per VM.
type VMListEntry struct {
	Name     string
	Ref      types.ManagedObjectReference
	Template bool
	// KeyID is config.keyId (nil: the VM home is not encrypted).
	KeyID *types.CryptoKeyId
	// VTPM reports a VirtualTPM device.
	VTPM bool
	// VM is a handle for further calls (InventoryPath not set).
	VM *object.VirtualMachine
}

// ListVMs returns every VM below folderPath (recursively), or in the whole
// inventory when folderPath is empty, sorted by name then reference. One
// property retrieval for all VMs.
func (c *Client) ListVMs(ctx context.Context, folderPath string) ([]VMListEntry, error) {
	root := c.Vim25().ServiceContent.RootFolder
	if folderPath != "" {
		f, err := c.FindFolder(ctx, folderPath)
		if err != nil {
			return nil, err
		}
		root = f.Reference()
	}
	v, err := view.NewManager(c.Vim25()).CreateContainerView(ctx, root, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var vms []mo.VirtualMachine
	props := []string{"name", "config.template", "config.keyId", "config.hardware.device"}
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, props, &vms); err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	out := make([]VMListEntry, 0, len(vms))
	for _, vm := range vms {
		e := VMListEntry{Name: vm.Name, Ref: vm.Self, VM: object.NewVirtualMachine(c.Vim25(), vm.Self)}
		if vm.Config != nil {
			e.Template = vm.Config.Template
			e.KeyID = vm.Config.KeyId
			e.VTPM = hasVTPM(vm.Config.Hardware.Device)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b VMListEntry) int {
		if r := strings.Compare(a.Name, b.Name); r != 0 {
			return r
		}
		return strings.Compare(a.Ref.Value, b.Ref.Value)
	})
	return out, nil
}

func hasVTPM(devs []types.BaseVirtualDevice) bool {
	for _, d := range devs {
		if _, ok := d.(*types.VirtualTPM); ok {
			return true
		}
	}
	return false
}

// FindFolder returns the VM folder at path (absolute, or relative to the
// datacenter); an empty path means the datacenter's default VM folder.
func (c *Client) FindFolder(ctx context.Context, path string) (*object.Folder, error) {
	var (
		f   *object.Folder
		err error
	)
	if path == "" {
		f, err = c.finder.DefaultFolder(ctx)
	} else {
		f, err = c.finder.Folder(ctx, path)
	}
	if err != nil {
		return nil, wrapFinderError("folder", path, err)
	}
	return f, nil
}

// FindResourcePool returns the resource pool at path ("/DC0/host/C0/Resources"
// or "C0/Resources"). An empty path picks the only pool of the datacenter and
// fails, listing candidates, when there are several.
func (c *Client) FindResourcePool(ctx context.Context, path string) (*object.ResourcePool, error) {
	if path != "" {
		p, err := c.finder.ResourcePool(ctx, path)
		if err != nil {
			return nil, wrapFinderError("resource pool", path, err)
		}
		return p, nil
	}
	pools, err := c.finder.ResourcePoolList(ctx, "*/Resources")
	if err != nil {
		return nil, wrapFinderError("resource pool", "(default)", err)
	}
	if len(pools) == 1 {
		return pools[0], nil
	}
	names := make([]string, 0, len(pools))
	for _, p := range pools {
		names = append(names, p.InventoryPath)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("default resource pool: %d candidates, choose one: %s", len(pools), strings.Join(names, ", "))
}

// FindHost returns the host at path or with that name.
func (c *Client) FindHost(ctx context.Context, path string) (*object.HostSystem, error) {
	h, err := c.finder.HostSystem(ctx, path)
	if err != nil {
		return nil, wrapFinderError("host", path, err)
	}
	return h, nil
}

// FindDatastore returns the datastore with that name or inventory path.
func (c *Client) FindDatastore(ctx context.Context, name string) (*object.Datastore, error) {
	c.mu.Lock()
	ds, ok := c.dss[name]
	c.mu.Unlock()
	if ok {
		return ds, nil
	}
	ds, err := c.finder.Datastore(ctx, name)
	if err != nil {
		return nil, wrapFinderError("datastore", name, err)
	}
	c.mu.Lock()
	c.dss[name] = ds
	c.mu.Unlock()
	return ds, nil
}

// DatastoreSpace is the capacity and free space of a datastore in bytes.
type DatastoreSpace struct {
	Name       string
	Capacity   int64
	FreeSpace  int64
	Accessible bool
}

// DatastoreSpace reads summary.capacity/freeSpace, for restore's free-space
// check.
func (c *Client) DatastoreSpace(ctx context.Context, name string) (DatastoreSpace, error) {
	ds, err := c.FindDatastore(ctx, name)
	if err != nil {
		return DatastoreSpace{}, err
	}
	var m mo.Datastore
	if err := ds.Properties(ctx, ds.Reference(), []string{"summary"}, &m); err != nil {
		return DatastoreSpace{}, fmt.Errorf("datastore %s: %w", name, err)
	}
	return DatastoreSpace{
		Name:       m.Summary.Name,
		Capacity:   m.Summary.Capacity,
		FreeSpace:  m.Summary.FreeSpace,
		Accessible: m.Summary.Accessible,
	}, nil
}

func wrapFinderError(kind, name string, err error) error {
	var nf *find.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	var dnf *find.DefaultNotFoundError
	if errors.As(err, &dnf) {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	var mf *find.MultipleFoundError
	if errors.As(err, &mf) {
		return fmt.Errorf("%s %q: several found, give a full inventory path: %w", kind, name, err)
	}
	var dm *find.DefaultMultipleFoundError
	if errors.As(err, &dm) {
		return fmt.Errorf("%s: several found, give a name or path: %w", kind, err)
	}
	return fmt.Errorf("%s %q: %w", kind, name, err)
}

// UUIDHolder is a VM found by its BIOS UUID, with its power state.
type UUIDHolder struct {
	Name       string
	MoRef      string
	PowerState types.VirtualMachinePowerState
}

// VMsByBIOSUUID returns every VM of the vCenter (all datacenters) whose
// BIOS UUID (config.uuid) is uuid, in one search and one property
// retrieval. The BIOS UUID, not the name, is what a second VM must not
// share with a running one: guests, DHCP and MAC addresses derive from it.
func (c *Client) VMsByBIOSUUID(ctx context.Context, uuid string) ([]UUIDHolder, error) {
	if uuid == "" {
		return nil, nil
	}
	refs, err := object.NewSearchIndex(c.Vim25()).FindAllByUuid(ctx, nil, uuid, true, types.NewBool(false))
	if err != nil {
		return nil, fmt.Errorf("find VMs with BIOS UUID %s: %w", uuid, err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	morefs := make([]types.ManagedObjectReference, 0, len(refs))
	for _, r := range refs {
		morefs = append(morefs, r.Reference())
	}
	var vms []mo.VirtualMachine
	if err := property.DefaultCollector(c.Vim25()).Retrieve(ctx, morefs, []string{"name", "runtime.powerState"}, &vms); err != nil {
		return nil, fmt.Errorf("read the VMs with BIOS UUID %s: %w", uuid, err)
	}
	out := make([]UUIDHolder, 0, len(vms))
	for _, vm := range vms {
		out = append(out, UUIDHolder{Name: vm.Name, MoRef: vm.Self.Value, PowerState: vm.Runtime.PowerState})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MoRef < out[j].MoRef })
	return out, nil
}
