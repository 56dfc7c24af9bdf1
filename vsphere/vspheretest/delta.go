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
	disk, parent, err := onlyDisk(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("add delta disk to %s: %w", v.Name, err)
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
	desc := deltaDescriptor(path.Base(dp.Path), path.Base(d.ExtentPath), len(data))
	c := v.Client
	if err := c.Upload(ctx, v.Datastore, d.DescriptorPath, strings.NewReader(desc), int64(len(desc))); err != nil {
		return nil, err
	}
	if err := c.Upload(ctx, v.Datastore, d.ExtentPath, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, err
	}
	if err := setDeltaBacking(ctx, v, disk, parent, d.DescriptorPath); err != nil {
		return nil, fmt.Errorf("add delta disk to %s: %w", v.Name, err)
	}
	// ESXi points the .vmx at the new top of the chain; so does the
	// fixture, so a restore registers the VM on the delta.
	if err := e.replaceVMXDisk(ctx, v, path.Base(dp.Path), path.Base(d.DescriptorPath)); err != nil {
		return nil, err
	}
	if err := c.RefreshStorageInfo(ctx, v.VM); err != nil {
		return nil, err
	}
	return d, nil
}

// onlyDisk returns the fixture VM's one disk and its flat backing.
func onlyDisk(ctx context.Context, v *VTPMVM) (*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo, error) {
	devs, err := v.VM.Device(ctx)
	if err != nil {
		return nil, nil, err
	}
	disks := devs.SelectByType((*types.VirtualDisk)(nil))
	if len(disks) != 1 {
		return nil, nil, fmt.Errorf("%d disks, want 1", len(disks))
	}
	disk := disks[0].(*types.VirtualDisk)
	backing, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if !ok {
		return nil, nil, fmt.Errorf("backing %T", disk.Backing)
	}
	return disk, backing, nil
}

// deltaDescriptor is the descriptor ESXi writes for a delta link of size
// bytes on top of the parent descriptor.
func deltaDescriptor(parent, extent string, size int) string {
	return fmt.Sprintf(`# Disk DescriptorFile
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
`, parent, size/512, extent, size)
}

// setDeltaBacking reconfigures disk onto the delta descriptor (relative to
// the datastore), with the current backing as its parent.
func setDeltaBacking(ctx context.Context, v *VTPMVM, disk *types.VirtualDisk, parent *types.VirtualDiskFlatVer2BackingInfo, descriptor string) error {
	delta := *parent
	delta.FileName = fmt.Sprintf("[%s] %s", v.Datastore, descriptor)
	delta.Parent = parent
	delta.Uuid = ""
	disk.Backing = &delta
	spec := types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: disk},
	}}
	task, err := v.VM.Reconfigure(ctx, spec)
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// replaceVMXDisk points scsi0:0 of the VM's .vmx from the descriptor file
// from to the descriptor file to (names in the home folder) and uploads it.
func (e *Env) replaceVMXDisk(ctx context.Context, v *VTPMVM, from, to string) error {
	vmx, err := e.ReadFileWith(ctx, v.Client, v.Datastore, v.VMXPath)
	if err != nil {
		return err
	}
	entry := fmt.Sprintf("scsi0:0.fileName = %q", from)
	if !bytes.Contains(vmx, []byte(entry)) {
		return fmt.Errorf("add delta disk to %s: the .vmx has no %s", v.Name, entry)
	}
	vmx = bytes.Replace(vmx, []byte(entry), []byte(fmt.Sprintf("scsi0:0.fileName = %q", to)), 1)
	files := v.Client.HostFiles(e.fileHostIn(v.Client, v.Datastore, v.VMXPath))
	if err := files.Upload(ctx, v.Datastore, v.VMXPath, bytes.NewReader(vmx), int64(len(vmx))); err != nil {
		return err
	}
	v.VMX = vmx
	return nil
}
