package vspheretest

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// DeltaDisk is a delta link the fixture added on top of a VM's disk.
type DeltaDisk struct {
	// DescriptorPath and ExtentPath are relative to the datastore.
	DescriptorPath, ExtentPath string
	// Data is the delta extent's content.
	Data []byte
}

// AddDeltaDisk emulates what ESXi does to a disk when a user takes a
// snapshot: a new delta link on top of the current one, which the VM then
// writes to. The simulator's CreateSnapshot creates no delta disks, so the
// fixture uploads a delta descriptor (parentFileNameHint naming the current
// link) and extent, and reconfigures the disk's backing to the delta with
// the old backing as its parent; the simulator's layoutEx then reports the
// two-link chain as ESXi does. (The simulator names extents "-flat.vmdk"
// where ESXi writes "-delta.vmdk" or "-sesparse.vmdk": the chain is what
// matters to backup and restore.)
func (e *Env) AddDeltaDisk(ctx context.Context, v *VTPMVM, data []byte) (*DeltaDisk, error) {
	devs, err := v.VM.Device(ctx)
	if err != nil {
		return nil, fmt.Errorf("add delta disk to %s: %w", v.Name, err)
	}
	disks := devs.SelectByType((*types.VirtualDisk)(nil))
	if len(disks) != 1 {
		return nil, fmt.Errorf("add delta disk to %s: %d disks, want 1", v.Name, len(disks))
	}
	disk := disks[0].(*types.VirtualDisk)
	parent, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if !ok {
		return nil, fmt.Errorf("add delta disk to %s: backing %T", v.Name, disk.Backing)
	}
	var dp object.DatastorePath
	if !dp.FromString(parent.FileName) {
		return nil, fmt.Errorf("add delta disk to %s: backing file %q", v.Name, parent.FileName)
	}
	n := 1
	for p := parent.Parent; p != nil; p = p.Parent {
		n++
	}
	name := fmt.Sprintf("%s-%06d", v.Name, n)
	d := &DeltaDisk{
		DescriptorPath: path.Join(v.Dir, name+".vmdk"),
		ExtentPath:     path.Join(v.Dir, name+"-flat.vmdk"),
		Data:           data,
	}
	desc := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfsSparse"
parentFileNameHint="%s"

# Extent description
RW %d VMFSSPARSE "%s"

# The Disk Data Base
#DDB

ddb.longContentID = "%x"
`, path.Base(dp.Path), len(data)/512, path.Base(d.ExtentPath), len(data))
	c := e.Client
	if err := c.Upload(ctx, v.Datastore, d.DescriptorPath, strings.NewReader(desc), int64(len(desc))); err != nil {
		return nil, err
	}
	if err := c.Upload(ctx, v.Datastore, d.ExtentPath, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, err
	}
	delta := *parent
	delta.FileName = fmt.Sprintf("[%s] %s", v.Datastore, d.DescriptorPath)
	delta.Parent = parent
	delta.Uuid = ""
	disk.Backing = &delta
	spec := types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: disk},
	}}
	task, err := v.VM.Reconfigure(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("add delta disk to %s: %w", v.Name, err)
	}
	if err := task.Wait(ctx); err != nil {
		return nil, fmt.Errorf("add delta disk to %s: %w", v.Name, err)
	}
	// ESXi points the .vmx at the new top of the chain; so does the
	// fixture, so a restore registers the VM on the delta.
	vmx, err := e.ReadFile(ctx, v.Datastore, v.VMXPath)
	if err != nil {
		return nil, err
	}
	old := fmt.Sprintf("scsi0:0.fileName = %q", path.Base(dp.Path))
	if !bytes.Contains(vmx, []byte(old)) {
		return nil, fmt.Errorf("add delta disk to %s: the .vmx has no %s", v.Name, old)
	}
	vmx = bytes.Replace(vmx, []byte(old), []byte(fmt.Sprintf("scsi0:0.fileName = %q", path.Base(d.DescriptorPath))), 1)
	if err := c.Upload(ctx, v.Datastore, v.VMXPath, bytes.NewReader(vmx), int64(len(vmx))); err != nil {
		return nil, err
	}
	v.VMX = vmx
	if err := c.RefreshStorageInfo(ctx, v.VM); err != nil {
		return nil, err
	}
	return d, nil
}
