package backup

import (
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// sourceFile is one datastore file to back up.
type sourceFile struct {
	Datastore string
	Dir       string
	Name      string
	Type      string // repository.File* constant
	Size      int64  // as layoutEx reported it; the download tells the truth
	// Home files are copied before the snapshot, disk extents after.
	Home bool
}

func (f sourceFile) path() string { return path.Join(f.Dir, f.Name) }

func (f sourceFile) String() string { return fmt.Sprintf("[%s] %s", f.Datastore, f.path()) }

// layoutTypes maps layoutEx file types to manifest file types; types not
// listed (swap, lock, core dumps, snapshot memory images) are never backed
// up.
var layoutTypes = map[string]string{
	string(types.VirtualMachineFileLayoutExFileTypeConfig):         repository.FileConfig,
	string(types.VirtualMachineFileLayoutExFileTypeExtendedConfig): repository.FileConfig,
	string(types.VirtualMachineFileLayoutExFileTypeNvram):          repository.FileNvram,
	string(types.VirtualMachineFileLayoutExFileTypeSnapshotList):   repository.FileSnapshotList,
	// The user's snapshots keep their state in .vmsn files; without them
	// the restored .vmsd names snapshots that cannot be reverted to.
	string(types.VirtualMachineFileLayoutExFileTypeSnapshotData):   repository.FileSnapshotData,
	string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor): repository.FileDiskDescriptor,
	string(types.VirtualMachineFileLayoutExFileTypeDiskExtent):     repository.FileDiskExtent,
	string(types.VirtualMachineFileLayoutExFileTypeLog):            repository.FileLog,
}

// selectFiles decides what to back up from the VM's layout as it was before
// our snapshot: the home files, and every descriptor and extent of each
// disk's chain (base and any snapshot deltas the user already had). It
// takes the pre-snapshot layout so that our own snapshot's deltas, which
// appear later, are never included.
func selectFiles(vm *mo.VirtualMachine, includeLogs bool) ([]sourceFile, error) {
	if vm.LayoutEx == nil {
		return nil, fmt.Errorf("VM %s reports no file layout (layoutEx): is it inaccessible?", vm.Name)
	}
	byKey := map[int32]types.VirtualMachineFileLayoutExFileInfo{}
	for _, f := range vm.LayoutEx.File {
		byKey[f.Key] = f
	}
	var out []sourceFile
	seen := map[string]bool{}
	add := func(f types.VirtualMachineFileLayoutExFileInfo, home bool) error {
		typ, ok := layoutTypes[f.Type]
		if !ok || (typ == repository.FileLog && !includeLogs) {
			return nil
		}
		var dp object.DatastorePath
		if !dp.FromString(f.Name) {
			return fmt.Errorf("VM %s: cannot parse datastore path %q", vm.Name, f.Name)
		}
		if seen[f.Name] {
			return nil
		}
		seen[f.Name] = true
		dir, name := path.Split(dp.Path)
		out = append(out, sourceFile{
			Datastore: dp.Datastore, Dir: strings.TrimSuffix(dir, "/"), Name: name,
			Type: typ, Size: f.Size, Home: home,
		})
		return nil
	}
	// Disk files come from the disk chains, so extents of disks not in
	// the chain (orphans, our snapshot's deltas) are left out.
	diskFiles := map[int32]bool{}
	for _, d := range vm.LayoutEx.Disk {
		for _, link := range d.Chain {
			for _, k := range link.FileKey {
				diskFiles[k] = true
			}
		}
	}
	for _, f := range vm.LayoutEx.File {
		if diskFiles[f.Key] {
			continue
		}
		if f.Type == string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor) || f.Type == string(types.VirtualMachineFileLayoutExFileTypeDiskExtent) {
			continue
		}
		if err := add(f, true); err != nil {
			return nil, err
		}
	}
	for _, d := range vm.LayoutEx.Disk {
		for _, link := range d.Chain {
			for _, k := range link.FileKey {
				f, ok := byKey[k]
				if !ok {
					return nil, fmt.Errorf("VM %s: disk %d refers to unknown layout file %d", vm.Name, d.Key, k)
				}
				// Descriptors are small: copy them with the home files,
				// before the snapshot rewrites anything.
				home := f.Type == string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor)
				if err := add(f, home); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
