package vspheretest

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// DiskOptions describes a disk AddDisk adds to a fixture VM. The VM's .vmx
// text is left as it is (the registration emulation then ignores the
// disk), so a backup that leaves the disk out still restores.
type DiskOptions struct {
	// Name of the descriptor without ".vmdk"; default "<vm>_<n>".
	Name string
	// Datastore and Dir of the disk's files; default the VM's home.
	Datastore, Dir string
	// Mode is the disk mode; default persistent.
	Mode types.VirtualDiskMode
	// RDM, when set (physicalMode, virtualMode), makes the disk a raw
	// device mapping of a LUN instead of a flat disk.
	RDM types.VirtualDiskCompatibilityMode
	// Parent, a descriptor "[ds] dir/name.vmdk", makes the disk a linked
	// clone: a delta on top of that (shared) base disk.
	Parent string
	// Data is written into the flat extent (flat disks only); its length,
	// a multiple of 1 MiB, is the capacity (default 1 MiB of zeros).
	Data []byte
}

// AddDisk adds a disk to the VM, as the vSphere Client's "Add hard disk"
// (or "Add RDM disk") does, and returns its device key.
func (e *Env) AddDisk(ctx context.Context, v *VTPMVM, o DiskOptions) (int32, error) {
	devs, err := v.VM.Device(ctx)
	if err != nil {
		return 0, err
	}
	n := len(devs.SelectByType((*types.VirtualDisk)(nil)))
	o.setDefaults(v, n)
	size := int64(len(o.Data))
	disk := &types.VirtualDisk{CapacityInBytes: size, CapacityInKB: size / 1024, VirtualDevice: types.VirtualDevice{
		Key: -1, Backing: o.backing(),
		// vCenter labels disks itself; the simulator does not.
		DeviceInfo: &types.Description{Label: fmt.Sprintf("Hard disk %d", n+1)},
	}}
	ctrl, err := devs.FindSCSIController("")
	if err != nil {
		return 0, fmt.Errorf("add disk to %s: %w", v.Name, err)
	}
	devs.AssignController(disk, ctrl)
	spec := &types.VirtualDeviceConfigSpec{
		Operation: types.VirtualDeviceConfigSpecOperationAdd, FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate, Device: disk,
	}
	task, err := v.VM.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{spec}})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("add disk %s to %s: %w", o.Name, v.Name, err)
	}
	if o.RDM == "" && o.Parent == "" {
		flat := path.Join(o.Dir, o.Name+"-flat.vmdk")
		if err := v.Client.Upload(ctx, o.Datastore, flat, bytes.NewReader(o.Data), size); err != nil {
			return 0, err
		}
	}
	if err := e.Client.RefreshStorageInfo(ctx, v.VM); err != nil {
		return 0, err
	}
	return e.diskKey(ctx, v, o.file())
}

func (o *DiskOptions) setDefaults(v *VTPMVM, disks int) {
	if o.Name == "" {
		o.Name = fmt.Sprintf("%s_%d", v.Name, disks)
	}
	if o.Datastore == "" {
		o.Datastore = v.Datastore
	}
	if o.Dir == "" {
		o.Dir = v.Dir
	}
	if o.Mode == "" {
		o.Mode = types.VirtualDiskModePersistent
	}
	if len(o.Data) == 0 {
		o.Data = make([]byte, 1<<20)
	}
}

func (o *DiskOptions) file() string {
	return fmt.Sprintf("[%s] %s", o.Datastore, path.Join(o.Dir, o.Name+".vmdk"))
}

func (o *DiskOptions) backing() types.BaseVirtualDeviceBackingInfo {
	file := types.VirtualDeviceFileBackingInfo{FileName: o.file()}
	if o.RDM != "" {
		return &types.VirtualDiskRawDiskMappingVer1BackingInfo{
			VirtualDeviceFileBackingInfo: file,
			CompatibilityMode:            string(o.RDM),
			DiskMode:                     string(o.Mode),
			DeviceName:                   "/vmfs/devices/disks/naa.600508b1001c3a7f0000000000000001",
			LunUuid:                      "0200000000600508b1001c3a7f000000000000000001",
		}
	}
	b := &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: file, DiskMode: string(o.Mode), ThinProvisioned: types.NewBool(true)}
	if o.Parent != "" {
		b.Parent = &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: o.Parent}, DiskMode: string(o.Mode)}
	}
	return b
}

// diskKey finds the device key of the VM's disk backed by file.
func (e *Env) diskKey(ctx context.Context, v *VTPMVM, file string) (int32, error) {
	devs, err := v.VM.Device(ctx)
	if err != nil {
		return 0, err
	}
	for _, d := range devs.SelectByType((*types.VirtualDisk)(nil)) {
		if fb, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo); ok && fb.GetVirtualDeviceFileBackingInfo().FileName == file {
			return d.GetVirtualDevice().Key, nil
		}
	}
	return 0, fmt.Errorf("VM %s has no disk %s", v.Name, file)
}

// CreateBaseDisk creates a flat disk [ds] dir/name.vmdk holding data (a
// multiple of 1 MiB) outside any VM, such as the base disk of linked
// clones, and returns its datastore path.
func (e *Env) CreateBaseDisk(ctx context.Context, ds, dir, name string, data []byte) (string, error) {
	file := fmt.Sprintf("[%s] %s", ds, path.Join(dir, name+".vmdk"))
	if err := e.inv.MakeDirectory(ctx, ds, dir); err != nil {
		return "", err
	}
	m := object.NewVirtualDiskManager(e.Client.Vim25())
	task, err := m.CreateVirtualDisk(ctx, file, e.inv.Datacenter(), &types.FileBackedVirtualDiskSpec{
		VirtualDiskSpec: types.VirtualDiskSpec{DiskType: string(types.VirtualDiskTypeThin), AdapterType: string(types.VirtualDiskAdapterTypeLsiLogic)},
		CapacityKb:      int64(len(data)) / 1024,
	})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("create disk %s: %w", file, err)
	}
	flat := path.Join(dir, name+"-flat.vmdk")
	if err := e.inv.Upload(ctx, ds, flat, bytes.NewReader(data), int64(len(data))); err != nil {
		return "", err
	}
	return file, nil
}

// SetDatastoreType sets a datastore's summary.type, e.g. "vsan" or "VVOL":
// the simulator's datastores are all local folders, and the type is how a
// client tells an object store from VMFS or NFS.
func (e *Env) SetDatastoreType(name, typ string) error {
	ds := findDatastore(e.simContext(), name)
	if ds == nil {
		return fmt.Errorf("datastore %s: not in the simulator", name)
	}
	e.Model.Map().AtomicUpdate(e.simContext(), ds, []types.PropertyChange{{Name: "summary.type", Val: typ}})
	return nil
}

// SetBackingObjectID gives the VM's disk key the backing object ID of a
// vSAN or vVols object, as vCenter reports for object-backed disks.
func (e *Env) SetBackingObjectID(v *VTPMVM, key int32, id string) error {
	vm, ok := e.Model.Map().Get(v.Ref).(*simulator.VirtualMachine)
	if !ok {
		return fmt.Errorf("VM %s: not in the simulator", v.Name)
	}
	var err error
	e.Model.Map().WithLock(e.simContext(), vm, func() {
		dev := object.VirtualDeviceList(vm.Config.Hardware.Device).FindByKey(key)
		if dev == nil {
			err = fmt.Errorf("VM %s has no device %d", v.Name, key)
			return
		}
		fb, ok := dev.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			err = fmt.Errorf("device %d of VM %s has no file backing", key, v.Name)
			return
		}
		fb.GetVirtualDeviceFileBackingInfo().BackingObjectId = &id
	})
	return err
}

// EnableCTK gives the VM's disk key a change tracking file
// "<descriptor>-ctk.vmdk", as ESXi creates with CBT on, and lists it in the
// disk's chain in layoutEx as vCenter does. The simulator's layoutEx is
// rebuilt on RefreshStorageInfo, which drops it from the chain again.
func (e *Env) EnableCTK(ctx context.Context, v *VTPMVM, key int32) (string, error) {
	vm, ok := e.Model.Map().Get(v.Ref).(*simulator.VirtualMachine)
	if !ok {
		return "", fmt.Errorf("VM %s: not in the simulator", v.Name)
	}
	ctk := strings.TrimSuffix(v.DescriptorPath, ".vmdk") + "-ctk.vmdk"
	data := bytes.Repeat([]byte{0xc7}, 64<<10)
	if err := v.Client.Upload(ctx, v.Datastore, ctk, bytes.NewReader(data), int64(len(data))); err != nil {
		return "", err
	}
	var err error
	e.Model.Map().WithLock(e.simContext(), vm, func() {
		lx := vm.LayoutEx
		fileKey := int32(len(lx.File))
		for _, f := range lx.File {
			fileKey = max(fileKey, f.Key+1)
		}
		for i := range lx.Disk {
			if lx.Disk[i].Key != key || len(lx.Disk[i].Chain) == 0 {
				continue
			}
			lx.File = append(lx.File, types.VirtualMachineFileLayoutExFileInfo{
				Key: fileKey, Name: v.DatastorePath(ctk), Type: string(types.VirtualMachineFileLayoutExFileTypeDiskExtent), Size: int64(len(data)),
			})
			lx.Disk[i].Chain[0].FileKey = append(lx.Disk[i].Chain[0].FileKey, fileKey)
			return
		}
		err = fmt.Errorf("VM %s: no disk %d in layoutEx", v.Name, key)
	})
	return ctk, err
}

// DiskKeys lists the device keys of the VM's disks.
func DiskKeys(ctx context.Context, v *VTPMVM) ([]int32, error) {
	devs, err := v.VM.Device(ctx)
	if err != nil {
		return nil, err
	}
	var keys []int32
	for _, d := range devs.SelectByType((*types.VirtualDisk)(nil)) {
		keys = append(keys, d.GetVirtualDevice().Key)
	}
	return keys, nil
}
