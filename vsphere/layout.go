package vsphere

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// FileType is the type vSphere gives a VM file in its layout (layoutEx).
type FileType string

// The file types a backup cares about; vSphere has more (swap, lock, core
// dumps, snapshot memory, ...).
const (
	FileConfig         = FileType(types.VirtualMachineFileLayoutExFileTypeConfig)
	FileExtendedConfig = FileType(types.VirtualMachineFileLayoutExFileTypeExtendedConfig)
	FileNvram          = FileType(types.VirtualMachineFileLayoutExFileTypeNvram)
	FileSnapshotList   = FileType(types.VirtualMachineFileLayoutExFileTypeSnapshotList)
	FileSnapshotData   = FileType(types.VirtualMachineFileLayoutExFileTypeSnapshotData)
	FileDiskDescriptor = FileType(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor)
	FileDiskExtent     = FileType(types.VirtualMachineFileLayoutExFileTypeDiskExtent)
	FileLog            = FileType(types.VirtualMachineFileLayoutExFileTypeLog)
	FileSwap           = FileType(types.VirtualMachineFileLayoutExFileTypeSwap)
)

// LayoutFile is one file of a VM's layout.
type LayoutFile struct {
	Datastore string
	// Dir is the folder on the datastore, without a trailing slash.
	Dir  string
	Name string
	Type FileType
	// Size is as vCenter last scanned it (RefreshStorageInfo).
	Size int64
	// Disk: the file is a link of a disk's backing chain (a descriptor or
	// an extent); DiskKey is then the disk's device key.
	Disk    bool
	DiskKey int32
}

// Path is the file's path on its datastore.
func (f LayoutFile) Path() string { return path.Join(f.Dir, f.Name) }

// String is "[ds] dir/name".
func (f LayoutFile) String() string { return fmt.Sprintf("[%s] %s", f.Datastore, f.Path()) }

// Layout lists the VM's files of the kept types (none given: every type)
// from the layoutEx VMInfo read: first the files outside any disk chain in
// layoutEx order, then each disk's chain, disk by disk, link by link.
// Descriptors and extents outside every chain (orphans, leftovers) are
// never listed, and a file is listed once. Only kept files' paths are
// parsed, so an odd path of a type not kept (say a swap file elsewhere)
// cannot fail the call.
func (i *VMInfo) Layout(keep ...FileType) ([]LayoutFile, error) {
	if i.Raw == nil || i.Raw.LayoutEx == nil {
		return nil, fmt.Errorf("VM %s reports no file layout (layoutEx): is it inaccessible?", i.Name)
	}
	lx := i.Raw.LayoutEx
	byKey := map[int32]types.VirtualMachineFileLayoutExFileInfo{}
	for _, f := range lx.File {
		byKey[f.Key] = f
	}
	l := layoutList{vm: i.Name, keep: keep, seen: map[string]bool{}}
	inChain := map[int32]bool{}
	for _, d := range lx.Disk {
		for _, link := range d.Chain {
			for _, k := range link.FileKey {
				inChain[k] = true
			}
		}
	}
	for _, f := range lx.File {
		t := FileType(f.Type)
		if inChain[f.Key] || t == FileDiskDescriptor || t == FileDiskExtent {
			continue
		}
		if err := l.add(f, nil); err != nil {
			return nil, err
		}
	}
	for _, d := range lx.Disk {
		for _, link := range d.Chain {
			for _, k := range link.FileKey {
				f, ok := byKey[k]
				if !ok {
					return nil, fmt.Errorf("VM %s: disk %d refers to unknown layout file %d", i.Name, d.Key, k)
				}
				if err := l.add(f, &d.Key); err != nil {
					return nil, err
				}
			}
		}
	}
	return l.out, nil
}

// layoutList collects Layout's answer.
type layoutList struct {
	vm   string
	keep []FileType
	seen map[string]bool
	out  []LayoutFile
}

// add lists f, a link of the chain of the disk whose key diskKey points to
// (nil: no disk's).
func (l *layoutList) add(f types.VirtualMachineFileLayoutExFileInfo, diskKey *int32) error {
	t := FileType(f.Type)
	if len(l.keep) > 0 && !slices.Contains(l.keep, t) {
		return nil
	}
	var dp object.DatastorePath
	if !dp.FromString(f.Name) {
		return fmt.Errorf("VM %s: cannot parse datastore path %q", l.vm, f.Name)
	}
	if l.seen[f.Name] {
		return nil
	}
	l.seen[f.Name] = true
	dir, name := path.Split(dp.Path)
	lf := LayoutFile{
		Datastore: dp.Datastore, Dir: strings.TrimSuffix(dir, "/"), Name: name,
		Type: t, Size: f.Size,
	}
	if diskKey != nil {
		lf.Disk, lf.DiskKey = true, *diskKey
	}
	l.out = append(l.out, lf)
	return nil
}
