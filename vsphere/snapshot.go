package vsphere

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// CreateSnapshot takes a snapshot without memory (backups need disks only;
// a memory image would be large and encrypted) and returns its reference.
// With quiesce, VMware Tools quiesces the guest's file systems only:
// application quiescing (VSS writers) is not supported for encrypted VMs,
// and every vTPM VM is encrypted. Quiescing failures come back as the
// task's fault.
func (c *Client) CreateSnapshot(ctx context.Context, vm *object.VirtualMachine, name, desc string, quiesce bool) (types.ManagedObjectReference, error) {
	task, err := c.startSnapshot(ctx, vm, name, desc, quiesce)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create snapshot %q of %s: %w", name, vm.Reference().Value, err)
	}
	info, err := c.waitTask(ctx, task)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create snapshot %q of %s: %w", name, vm.Reference().Value, err)
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return types.ManagedObjectReference{}, fmt.Errorf("create snapshot %q of %s: unexpected result %T", name, vm.Reference().Value, info.Result)
	}
	return ref, nil
}

// startSnapshot starts CreateSnapshot_Task, or with quiesce
// CreateSnapshotEx_Task with a quiesce spec that asks for file-system
// quiescing only.
func (c *Client) startSnapshot(ctx context.Context, vm *object.VirtualMachine, name, desc string, quiesce bool) (*object.Task, error) {
	if !quiesce {
		return vm.CreateSnapshot(ctx, name, desc, false, false)
	}
	spec, err := c.quiesceSpec(ctx, vm)
	if err != nil {
		return nil, err
	}
	req := types.CreateSnapshotEx_Task{This: vm.Reference(), Name: name, Description: desc, Memory: false, QuiesceSpec: spec}
	res, err := methods.CreateSnapshotEx_Task(ctx, c.Vim25(), &req)
	if err != nil {
		return nil, err
	}
	return object.NewTask(c.Vim25(), res.Returnval), nil
}

// quiesceSpec asks a Windows guest for a VSS snapshot in the file-share
// backup context, which involves no application writers; other guests'
// quiescing (sync, fsfreeze) is file-system level anyway.
func (c *Client) quiesceSpec(ctx context.Context, vm *object.VirtualMachine) (types.BaseVirtualMachineGuestQuiesceSpec, error) {
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"config.guestId"}, &m); err != nil {
		return nil, fmt.Errorf("read the guest OS of %s: %w", vm.Reference().Value, err)
	}
	if m.Config != nil && strings.HasPrefix(strings.ToLower(m.Config.GuestId), "win") {
		return &types.VirtualMachineWindowsQuiesceSpec{
			VssBackupContext: string(types.VirtualMachineWindowsQuiesceSpecVssBackupContextCtx_file_share_backup),
		}, nil
	}
	return &types.VirtualMachineGuestQuiesceSpec{}, nil
}

// RemoveSnapshot deletes one snapshot, keeping its children and consolidating
// disks, the way a backup tool must clean up after itself. A snapshot that is
// already gone is not an error.
func (c *Client) RemoveSnapshot(ctx context.Context, vm *object.VirtualMachine, snap types.ManagedObjectReference) error {
	req := types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: types.NewBool(true)}
	res, err := methods.RemoveSnapshot_Task(ctx, c.Vim25(), &req)
	if err == nil {
		_, err = c.waitTask(ctx, object.NewTask(c.Vim25(), res.Returnval))
	}
	if err != nil {
		if fault.Is(err, &types.ManagedObjectNotFound{}) {
			return nil
		}
		return fmt.Errorf("remove snapshot %s of %s: %w", snap.Value, vm.Reference().Value, err)
	}
	return nil
}

// SnapshotInfo is one snapshot of a VM.
type SnapshotInfo struct {
	Name        string
	Description string
	Ref         types.ManagedObjectReference
	Created     time.Time
	// Depth is 0 for a root snapshot; children are deeper.
	Depth int
}

// FindSnapshots returns the VM's snapshots whose name starts with prefix
// (all when empty), oldest first.
func (c *Client) FindSnapshots(ctx context.Context, vm *object.VirtualMachine, prefix string) ([]SnapshotInfo, error) {
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot"}, &m); err != nil {
		return nil, fmt.Errorf("read snapshots of %s: %w", vm.Reference().Value, err)
	}
	var out []SnapshotInfo
	var walk func([]types.VirtualMachineSnapshotTree, int)
	walk = func(nodes []types.VirtualMachineSnapshotTree, depth int) {
		for _, n := range nodes {
			if strings.HasPrefix(n.Name, prefix) {
				out = append(out, SnapshotInfo{Name: n.Name, Description: n.Description, Ref: n.Snapshot, Created: n.CreateTime, Depth: depth})
			}
			walk(n.ChildSnapshotList, depth+1)
		}
	}
	if m.Snapshot != nil {
		walk(m.Snapshot.RootSnapshotList, 0)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Depth < out[j].Depth
	})
	return out, nil
}

// SweepSnapshots removes every snapshot whose name starts with prefix (left
// by a killed backup run), newest and deepest first (LIFO: removing an older
// snapshot first trips a simulator bug and needlessly consolidates twice on
// ESXi). keep, when not nil, spares the snapshots it returns true for (a
// live run's own). It returns the names removed; on error, those removed so
// far.
func (c *Client) SweepSnapshots(ctx context.Context, vm *object.VirtualMachine, prefix string, keep func(SnapshotInfo) bool) ([]string, error) {
	if prefix == "" {
		return nil, fmt.Errorf("sweep snapshots of %s: refusing an empty prefix", vm.Reference().Value)
	}
	snaps, err := c.FindSnapshots(ctx, vm, prefix)
	if err != nil {
		return nil, err
	}
	var removed []string
	for i := len(snaps) - 1; i >= 0; i-- {
		if keep != nil && keep(snaps[i]) {
			continue
		}
		if err := c.RemoveSnapshot(ctx, vm, snaps[i].Ref); err != nil {
			return removed, err
		}
		removed = append(removed, snaps[i].Name)
	}
	return removed, nil
}
