package backup

import (
	"fmt"
	"path"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
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
	// Disk: a file of a disk's chain, the disk with device key DiskKey.
	Disk    bool
	DiskKey int32
}

func (f sourceFile) path() string { return path.Join(f.Dir, f.Name) }

// isVMX reports whether f is the VM's .vmx, its main configuration file,
// by the rule restore and audit apply to the manifest.
func (f sourceFile) isVMX() bool {
	return keys.IsVMX(repository.File{Name: f.Name, Type: f.Type})
}

func (f sourceFile) String() string { return fmt.Sprintf("[%s] %s", f.Datastore, f.path()) }

// layoutTypes maps vSphere's file types to manifest file types; types not
// listed (swap, lock, core dumps, snapshot memory images) are never backed
// up.
var layoutTypes = map[vsphere.FileType]string{
	vsphere.FileConfig:         repository.FileConfig,
	vsphere.FileExtendedConfig: repository.FileConfig,
	vsphere.FileNvram:          repository.FileNvram,
	vsphere.FileSnapshotList:   repository.FileSnapshotList,
	// The user's snapshots keep their state in .vmsn files; without them
	// the restored .vmsd names snapshots that cannot be reverted to.
	vsphere.FileSnapshotData:   repository.FileSnapshotData,
	vsphere.FileDiskDescriptor: repository.FileDiskDescriptor,
	vsphere.FileDiskExtent:     repository.FileDiskExtent,
	vsphere.FileLog:            repository.FileLog,
}

// selectFiles decides what to back up from the VM's layout as it was before
// our snapshot: the home files, and every descriptor and extent of each
// disk's chain (base and any snapshot deltas the user already had). It
// takes the pre-snapshot layout so that our own snapshot's deltas, which
// appear later, are never included. Change tracking files (-ctk.vmdk) are
// not disk data and are left out.
func selectFiles(info *vsphere.VMInfo, includeLogs bool) ([]sourceFile, error) {
	keep := make([]vsphere.FileType, 0, len(layoutTypes))
	for t := range layoutTypes {
		if t != vsphere.FileLog || includeLogs {
			keep = append(keep, t)
		}
	}
	layout, err := info.Layout(keep...)
	if err != nil {
		return nil, err
	}
	out := make([]sourceFile, 0, len(layout))
	for _, f := range layout {
		out = append(out, sourceFile{
			Datastore: f.Datastore, Dir: f.Dir, Name: f.Name, Type: layoutTypes[f.Type], Size: f.Size,
			// Descriptors are small: copy them with the home files,
			// before the snapshot rewrites anything.
			Home: !f.Disk || f.Type == vsphere.FileDiskDescriptor,
			Disk: f.Disk, DiskKey: f.DiskKey,
		})
	}
	return notCtk(out), nil
}
