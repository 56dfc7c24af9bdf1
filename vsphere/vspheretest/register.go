package vspheretest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// installRegistration wraps every VM folder present now with
// registeringFolder, so RegisterVM_Task behaves like ESXi (see doc.go).
func installRegistration(r *simulator.Registry, role *role) {
	for _, e := range r.All("Folder") {
		f, ok := e.(*simulator.Folder)
		if !ok {
			continue
		}
		for _, t := range f.ChildType {
			if t == "VirtualMachine" {
				r.Put(&registeringFolder{Folder: f, role: role})
				break
			}
		}
	}
}

// registeringFolder is a simulator VM folder whose RegisterVM_Task reads the
// .vmx like ESXi: firmware, hardware version, secure boot, nvram, vTPM,
// SCSI disks and the encryption key locator; it refuses an encrypted vmx
// whose key this vCenter cannot get, with EncryptionKeyRequired. Like
// vCenter, it registers an encrypted VM whose key it has but may not give
// to the host (see role.keyToHost) and leaves it locked.
type registeringFolder struct {
	*simulator.Folder
	role *role
}

// RegisterVMTask overrides simulator.Folder.RegisterVMTask.
func (f *registeringFolder) RegisterVMTask(ctx *simulator.Context, req *types.RegisterVM_Task) soap.HasFault {
	task := simulator.CreateTask(f, "registerVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return f.register(ctx, req)
	})
	return &methods.RegisterVM_TaskBody{Res: &types.RegisterVM_TaskResponse{Returnval: task.Run(ctx)}}
}

func (f *registeringFolder) register(ctx *simulator.Context, req *types.RegisterVM_Task) (types.AnyType, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(req.Path) || path.Ext(p.Path) != ".vmx" {
		return nil, &types.InvalidArgument{InvalidProperty: "path"}
	}
	if fault := checkPlacement(ctx, req); fault != nil {
		return nil, fault
	}
	// Datastore names are unique per datacenter only: the one meant is in
	// the folder's datacenter.
	dc := datacenterOf(ctx, f.Self)
	ds := findDatastoreIn(ctx, dc, p.Datastore)
	if ds == nil {
		return nil, &types.NotFound{}
	}
	local := filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p.Path))
	vmx, err := readVMX(local)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &types.NotFound{}
		}
		return nil, &types.InvalidArgument{InvalidProperty: "path"}
	}

	var key *types.CryptoKeyId
	if ks := vmx["encryption.keysafe"]; ks != "" {
		key, err = keyFromKeySafe(ks)
		if err != nil {
			return nil, &types.InvalidVmConfig{Property: "encryption.keySafe"}
		}
		if !keyAvailable(ctx, *key) {
			return nil, &types.EncryptionKeyRequired{RequiredKey: []types.CryptoKeyId{*key}}
		}
	}

	// The simulator insists on "<name>.nvram" and vmware.log in the home
	// folder; ESXi reads the vmx's nvram entry and creates the log at power
	// on. Provide what the simulator wants for the duration of its
	// registration only: the stand-in goes before layoutEx is read, so
	// layoutEx lists the nvram the vmx names, as on ESXi.
	dir := filepath.Dir(local)
	name := req.Name
	if name == "" {
		name = path.Base(path.Dir(p.Path))
	}
	cleanup, err := satisfySimulatorFiles(dir, name, vmx.nvram(p.Path))
	defer cleanup()
	if err != nil {
		return nil, &types.FileFault{File: dir}
	}

	body, ok := f.Folder.RegisterVMTask(ctx, req).(*methods.RegisterVM_TaskBody)
	if !ok || body.Res == nil {
		return nil, &types.RuntimeFault{}
	}
	inner := ctx.Map.Get(body.Res.Returnval).(*simulator.Task)
	inner.Wait()
	if inner.Info.Error != nil {
		return nil, inner.Info.Error.Fault
	}
	ref := inner.Info.Result.(types.ManagedObjectReference)
	vm := ctx.Map.Get(ref).(*simulator.VirtualMachine)

	spec, fault := vmx.configSpec(ctx, dc, p, key)
	if fault == nil {
		res := vm.ReconfigVMTask(ctx, &types.ReconfigVM_Task{This: ref, Spec: spec}).(*methods.ReconfigVM_TaskBody)
		t := ctx.Map.Get(res.Res.Returnval).(*simulator.Task)
		t.Wait()
		if t.Info.Error != nil {
			fault = t.Info.Error.Fault
		}
	}
	if fault != nil {
		ctx.WithLock(vm, func() { vm.UnregisterVM(ctx, &types.UnregisterVM{This: ref}) })
		return nil, fault
	}
	cleanup()
	ctx.WithLock(vm, func() { vm.RefreshStorageInfo(ctx, nil) })
	f.role.keyToHost(ctx, vm, key)
	return ref, nil
}

// findDatastore returns the first datastore named name in any datacenter
// (the fixture's helpers use it for DC0's, which comes first).
func findDatastore(ctx *simulator.Context, name string) *simulator.Datastore {
	return findDatastoreIn(ctx, nil, name)
}

// findDatastoreIn returns the datastore named name in datacenter dc (nil:
// any).
func findDatastoreIn(ctx *simulator.Context, dc *simulator.Datacenter, name string) *simulator.Datastore {
	for _, e := range ctx.Map.All("Datastore") {
		ds, ok := e.(*simulator.Datastore)
		if ok && ds.Name == name && (dc == nil || datacenterOf(ctx, ds.Self) == dc) {
			return ds
		}
	}
	return nil
}

// datacenterOf walks up from ref to its datacenter (nil when there is none).
func datacenterOf(ctx *simulator.Context, ref types.ManagedObjectReference) *simulator.Datacenter {
	for obj := ctx.Map.Get(ref); obj != nil; {
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		obj = ctx.Map.Get(*e.Entity().Parent)
	}
	return nil
}

// satisfySimulatorFiles makes <name>.nvram (a hard link to the vmx's nvram,
// or an empty stand-in) and vmware.log exist; cleanup removes the stand-ins
// it created, except the log the simulator keeps writing. Calling cleanup
// twice is harmless.
func satisfySimulatorFiles(dir, name, nvram string) (func(), error) {
	var created []string
	cleanup := func() {
		for _, f := range created {
			_ = os.Remove(f)
		}
	}
	want := filepath.Join(dir, name+".nvram")
	if _, err := os.Stat(want); errors.Is(err, os.ErrNotExist) {
		src := filepath.Join(dir, filepath.Base(nvram))
		if err := os.Link(src, want); err != nil {
			if err := os.WriteFile(want, nil, 0o600); err != nil {
				return cleanup, err
			}
		}
		created = append(created, want)
	}
	log := filepath.Join(dir, "vmware.log")
	if _, err := os.Stat(log); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(log, nil, 0o600); err != nil {
			return cleanup, err
		}
	}
	return cleanup, nil
}

// vmxFile holds vmx entries with lower-case keys (vmx keys are case
// insensitive).
type vmxFile map[string]string

var vmxLine = regexp.MustCompile(`^\s*([^=#\s]+)\s*=\s*"(.*)"\s*$`)

func readVMX(name string) (vmxFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return nil, err
	}
	return ParseVMX(data), nil
}

// ParseVMX parses .vmx text into lower-cased keys and unquoted values,
// skipping comments and malformed lines.
func ParseVMX(data []byte) map[string]string {
	out := vmxFile{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := vmxLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		out[strings.ToLower(m[1])] = m[2]
	}
	return out
}

// nvram is the nvram file named by the vmx, default "<vmx name>.nvram".
func (v vmxFile) nvram(vmxPath string) string {
	if n := v["nvram"]; n != "" {
		return n
	}
	return strings.TrimSuffix(path.Base(vmxPath), ".vmx") + ".nvram"
}

func keyFromKeySafe(s string) (*types.CryptoKeyId, error) {
	kl, err := crypto.ImportKeyLocator(s)
	if err != nil {
		return nil, err
	}
	var walk func(*crypto.KeyLocator) *types.CryptoKeyId
	walk = func(k *crypto.KeyLocator) *types.CryptoKeyId {
		if k == nil {
			return nil
		}
		switch {
		case k.Type == crypto.KeyLocatorTypeFQID && k.Indirect != nil:
			return &types.CryptoKeyId{
				KeyId:      k.Indirect.FQID.KeyID,
				ProviderId: &types.KeyProviderId{Id: k.Indirect.FQID.KeyServerID},
			}
		case k.Type == crypto.KeyLocatorTypePair && k.Pair != nil:
			return walk(k.Pair.Locker)
		case k.Type == crypto.KeyLocatorTypeList:
			for _, e := range k.List {
				if id := walk(e); id != nil {
					return id
				}
			}
		}
		return nil
	}
	if id := walk(kl); id != nil && id.KeyId != "" {
		return id, nil
	}
	return nil, errors.New("no fqid key locator")
}

var scsiDisk = regexp.MustCompile(`^scsi(\d+):(\d+)\.filename$`)

// configSpec turns vmx entries into the reconfiguration ESXi effectively
// applies when it loads the vmx.
func (v vmxFile) configSpec(ctx *simulator.Context, dc *simulator.Datacenter, vmxPath object.DatastorePath, key *types.CryptoKeyId) (types.VirtualMachineConfigSpec, types.BaseMethodFault) {
	spec, fault := v.baseSpec(vmxPath, key)
	if fault != nil {
		return spec, fault
	}
	disks := v.disks(vmxPath)
	spec.DeviceChange = append(spec.DeviceChange, v.controllers(disks)...)
	devs, fault := diskDevices(ctx, dc, disks)
	if fault != nil {
		return spec, fault
	}
	spec.DeviceChange = append(spec.DeviceChange, devs...)
	return spec, nil
}

// baseSpec is everything but the SCSI devices: firmware, hardware version,
// secure boot, nvram, the encryption key and the vTPM.
func (v vmxFile) baseSpec(vmxPath object.DatastorePath, key *types.CryptoKeyId) (types.VirtualMachineConfigSpec, types.BaseMethodFault) {
	spec := types.VirtualMachineConfigSpec{Firmware: v["firmware"]}
	if spec.Firmware == "" {
		spec.Firmware = string(types.GuestOsDescriptorFirmwareTypeBios)
	}
	if hw := v["virtualhw.version"]; hw != "" {
		if _, err := strconv.Atoi(hw); err != nil {
			return spec, &types.InvalidVmConfig{Property: "virtualHW.version"}
		}
		spec.Version = "vmx-" + hw
	}
	if strings.EqualFold(v["uefi.securebootenabled"], "TRUE") || strings.EqualFold(v["uefi.secureboot.enabled"], "TRUE") {
		spec.BootOptions = &types.VirtualMachineBootOptions{EfiSecureBootEnabled: types.NewBool(true)}
	}
	spec.ExtraConfig = []types.BaseOptionValue{&types.OptionValue{Key: "nvram", Value: v.nvram(vmxPath.Path)}}
	if key != nil {
		spec.Crypto = &types.CryptoSpecEncrypt{CryptoKeyId: *key}
	}
	if strings.EqualFold(v["vtpm.present"], "TRUE") {
		spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationAdd,
			Device:    &types.VirtualTPM{VirtualDevice: types.VirtualDevice{Key: -50}},
		})
	}
	return spec, nil
}

// vmxDisk is one present scsiX:Y disk of a vmx.
type vmxDisk struct {
	bus, unit int32
	file      string // "[ds] dir/name.vmdk"
}

// disks lists the present SCSI disks by bus and unit, their file names
// made absolute against the vmx's folder.
func (v vmxFile) disks(vmxPath object.DatastorePath) []vmxDisk {
	var disks []vmxDisk
	for k, file := range v {
		m := scsiDisk.FindStringSubmatch(k)
		if m == nil || !strings.EqualFold(v[fmt.Sprintf("scsi%s:%s.present", m[1], m[2])], "TRUE") {
			continue
		}
		bus, _ := strconv.Atoi(m[1])
		unit, _ := strconv.Atoi(m[2])
		if !strings.HasPrefix(file, "[") {
			file = fmt.Sprintf("[%s] %s", vmxPath.Datastore, path.Join(path.Dir(vmxPath.Path), file))
		}
		disks = append(disks, vmxDisk{int32(bus), int32(unit), file})
	}
	sort.Slice(disks, func(i, j int) bool {
		return disks[i].bus < disks[j].bus || disks[i].bus == disks[j].bus && disks[i].unit < disks[j].unit
	})
	return disks
}

// controllers adds one SCSI controller (of the vmx's scsiN.virtualDev type)
// per bus the disks use; controller keys are -100-bus.
func (v vmxFile) controllers(disks []vmxDisk) []types.BaseVirtualDeviceConfigSpec {
	var out []types.BaseVirtualDeviceConfigSpec
	buses := map[int32]bool{}
	for _, d := range disks {
		if buses[d.bus] {
			continue
		}
		buses[d.bus] = true
		ctrl := types.VirtualSCSIController{
			SharedBus: types.VirtualSCSISharingNoSharing,
			VirtualController: types.VirtualController{
				BusNumber:     d.bus,
				VirtualDevice: types.VirtualDevice{Key: -100 - d.bus},
			},
		}
		var dev types.BaseVirtualDevice
		switch v[fmt.Sprintf("scsi%d.virtualdev", d.bus)] {
		case "lsilogic":
			dev = &types.VirtualLsiLogicController{VirtualSCSIController: ctrl}
		case "lsisas1068":
			dev = &types.VirtualLsiLogicSASController{VirtualSCSIController: ctrl}
		default:
			dev = &types.ParaVirtualSCSIController{VirtualSCSIController: ctrl}
		}
		out = append(out, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev})
	}
	return out
}

// diskDevices adds each disk on its controller, with the capacity its
// descriptor states.
func diskDevices(ctx *simulator.Context, dc *simulator.Datacenter, disks []vmxDisk) ([]types.BaseVirtualDeviceConfigSpec, types.BaseMethodFault) {
	var out []types.BaseVirtualDeviceConfigSpec
	for i, d := range disks {
		desc, _, fault := ctx.Map.FileManager().DiskDescriptor(ctx, &dc.Self, d.file)
		if fault != nil {
			return nil, fault
		}
		unit := d.unit
		capacity := int64(desc.Capacity())
		out = append(out, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationAdd,
			Device: &types.VirtualDisk{
				VirtualDevice: types.VirtualDevice{
					Key:           -200 - int32(i),
					ControllerKey: -100 - d.bus,
					UnitNumber:    &unit,
					Backing: &types.VirtualDiskFlatVer2BackingInfo{
						DiskMode:                     string(types.VirtualDiskModePersistent),
						ThinProvisioned:              types.NewBool(true),
						VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: d.file},
					},
				},
				CapacityInBytes: capacity,
				CapacityInKB:    capacity / 1024,
			},
		})
	}
	return out, nil
}

var _ mo.Reference = (*registeringFolder)(nil)
