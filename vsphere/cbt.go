package vsphere

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// AllAreas is the change ID that asks QueryChangedAreas for the allocated
// areas of a disk rather than the changed ones: on a thin disk only what
// was ever written, on a thick one the whole disk.
const AllAreas = "*"

// ErrCBTReset: vCenter no longer knows the change ID asked about, or
// change tracking is not active for the disk (turned off, or not yet in
// effect, or reset by a resize, a Storage vMotion or a host crash): the
// changes since the last backup cannot be known, the disk must be read
// whole.
var ErrCBTReset = errors.New("change tracking data unavailable (CBT reset or not active)")

// DiskArea is a byte range [Start, Start+Length) of a virtual disk.
type DiskArea struct {
	Start, Length int64
}

// QueryChangedAreas returns the areas of the disk with device key key, as
// of snapshot snap, changed since changeID (a change ID a previous
// snapshot's disk carried), or with AllAreas its allocated areas. vCenter
// answers for a part of the disk at a time; this asks again from the end
// of each answer until capacity. A FileFault (the change ID is unknown,
// tracking not active) is ErrCBTReset; other faults are returned wrapped.
func (c *Client) QueryChangedAreas(ctx context.Context, vm *object.VirtualMachine, snap types.ManagedObjectReference, key int32, capacity int64, changeID string) ([]DiskArea, error) {
	var out []DiskArea
	for start := int64(0); start < capacity; {
		req := types.QueryChangedDiskAreas{This: vm.Reference(), Snapshot: &snap, DeviceKey: key, StartOffset: start, ChangeId: changeID}
		res, err := methods.QueryChangedDiskAreas(ctx, c.Vim25(), &req)
		if err != nil {
			if fault.Is(err, &types.FileFault{}) {
				err = fmt.Errorf("%w: %w", ErrCBTReset, err)
			}
			return nil, fmt.Errorf("query changed areas of disk %d of %s from offset %d (change ID %s): %w", key, vm.Reference().Value, start, changeID, err)
		}
		info := res.Returnval
		next := info.StartOffset + info.Length
		if info.StartOffset > start || next <= start {
			return nil, fmt.Errorf("query changed areas of disk %d of %s: answer for [%d, %d) asked from %d makes no progress", key, vm.Reference().Value, info.StartOffset, next, start)
		}
		for _, a := range info.ChangedArea {
			s, e := max(a.Start, start), min(a.Start+a.Length, capacity)
			if e > s {
				out = append(out, DiskArea{Start: s, Length: e - s})
			}
		}
		start = next
	}
	return out, nil
}

// SnapshotDisks describes the disks of a snapshot as it recorded them:
// device key, capacity, backing file, UUID and CBT change ID.
func (c *Client) SnapshotDisks(ctx context.Context, snap types.ManagedObjectReference) ([]DiskInfo, error) {
	var m mo.VirtualMachineSnapshot
	if err := property.DefaultCollector(c.Vim25()).RetrieveOne(ctx, snap, []string{"config.hardware.device"}, &m); err != nil {
		return nil, fmt.Errorf("read the disks of snapshot %s: %w", snap.Value, err)
	}
	return disksOf(m.Config.Hardware.Device), nil
}

// EnableChangeTracking turns Changed Block Tracking on for the VM
// (config.changeTrackingEnabled). vSphere starts tracking at the VM's next
// stun: a snapshot created or removed, or a power-on.
func (c *Client) EnableChangeTracking(ctx context.Context, vm *object.VirtualMachine) error {
	on := true
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &on})
	if err == nil {
		_, err = c.waitTask(ctx, task)
	}
	if err != nil {
		return fmt.Errorf("enable change tracking of %s: %w", vm.Reference().Value, err)
	}
	return nil
}
