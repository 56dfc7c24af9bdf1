package backup

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// ErrUncapturable: the VM has disks this transport cannot copy (vSAN or
// vVols objects, independent disks, raw device mappings). The backup is
// refused before the snapshot unless Options.SkipUncapturable.
var ErrUncapturable = errors.New("VM has disks this backup cannot capture")

// ctkSuffix ends the change tracking files of disks with CBT on: vCenter
// lists them in the disk chain, but they are not disk data, ESXi rebuilds
// them, and a restored VM starts a new CBT epoch anyway.
const ctkSuffix = "-ctk.vmdk"

// uncapturable returns one SkippedDisk per disk that the datastore file
// transport cannot capture, with the reason and its remedy.
func uncapturable(info *vsphere.VMInfo, files []sourceFile) []skippedDisk {
	var out []skippedDisk
	for _, d := range info.Disks {
		if reason := uncapturableReason(d, info.DatastoreTypes, hasExtent(files, d.Key)); reason != "" {
			out = append(out, skippedDisk{key: d.Key, SkippedDisk: repository.SkippedDisk{Label: d.Label, File: d.FileName, Reason: reason}})
		}
	}
	return out
}

// skippedDisk is a SkippedDisk with the device key that finds its files.
type skippedDisk struct {
	repository.SkippedDisk
	key int32
}

// uncapturableReason says why the disk cannot be copied as files ("" when
// it can). extent reports whether vCenter lists a data extent for it.
func uncapturableReason(d vsphere.DiskInfo, dsTypes map[string]string, extent bool) string {
	ds := d.Datastore()
	switch {
	case d.Backing == vsphere.BackingRDM:
		return fmt.Sprintf("a raw device mapping (%s) of a LUN: the LUN has no file image to copy; back it up on the storage array or inside the guest", d.RDMCompatibility)
	case d.Backing == vsphere.BackingRaw:
		return "a raw disk of the host: it has no file image to copy; back it up inside the guest"
	case d.Independent():
		return fmt.Sprintf("an independent disk (%s): snapshots do not cover it, so a copy taken while the VM runs would be torn; make it dependent (VM settings > the disk > Disk Mode), or back it up inside the guest", d.Mode)
	case strings.EqualFold(dsTypes[ds], "vsan"), strings.EqualFold(dsTypes[ds], "vvol"):
		return fmt.Sprintf("on datastore %s of type %s: its disks are objects without a -flat.vmdk file, and this backup reads flat files over the datastore file service; move the disk to a VMFS or NFS datastore (Storage vMotion) to back it up", ds, dsTypes[ds])
	case d.BackingObjectID != "":
		return fmt.Sprintf("an object-backed disk (backing object %s, vSAN or vVols): it has no -flat.vmdk file to read; move it to a VMFS or NFS datastore to back it up", d.BackingObjectID)
	case d.Backing != vsphere.BackingFlat && d.Backing != vsphere.BackingSparse && d.Backing != vsphere.BackingSeSparse:
		return fmt.Sprintf("its backing (%s) is not a disk file this backup reads", d.Backing)
	case !extent:
		return "vCenter lists no data extent (-flat.vmdk) for it: there is nothing to copy, and a backup without its data is no backup"
	}
	return ""
}

func hasExtent(files []sourceFile, key int32) bool {
	for _, f := range files {
		if f.DiskKey == key && f.Disk && f.Type == repository.FileDiskExtent {
			return true
		}
	}
	return false
}

// uncapturableError lists every disk that cannot be captured, one per line.
func uncapturableError(vm string, skipped []skippedDisk) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d disk(s) of VM %s cannot be captured (refused before the snapshot; nothing was written):", len(skipped), vm)
	for _, s := range skipped {
		fmt.Fprintf(&b, "\n  %s (%s): %s", s.Label, s.File, s.Reason)
	}
	b.WriteString("\npass --skip-uncapturable to back up the rest; the backup then records the disks it left out")
	return fmt.Errorf("%w: %s", ErrUncapturable, b.String())
}

// withoutDisks drops the files of the skipped disks.
func withoutDisks(files []sourceFile, skipped []skippedDisk) []sourceFile {
	drop := map[int32]bool{}
	for _, s := range skipped {
		drop[s.key] = true
	}
	out := files[:0:0]
	for _, f := range files {
		if !f.Disk || !drop[f.DiskKey] {
			out = append(out, f)
		}
	}
	return out
}

// notRegistrable says why the backed-up files could be extracted but not
// registered on a vCenter: the encrypted .vmx names files outside the home
// folder by datastore path and cannot be rewritten, and restore writes
// every file into the new home folder. One entry per disk (a linked clone
// whose base lives elsewhere, a disk in another folder or datastore) and
// per other file outside the home folder.
func notRegistrable(info *vsphere.VMInfo, files []sourceFile) []string {
	home := func(f sourceFile) bool { return f.Datastore == info.HomeDatastore && f.Dir == info.HomeDir }
	outside := map[int32][]string{}
	var others []string
	for _, f := range files {
		switch {
		case home(f):
		case f.Disk:
			outside[f.DiskKey] = append(outside[f.DiskKey], f.String())
		default:
			others = append(others, f.String())
		}
	}
	var out []string
	for _, d := range info.Disks {
		out = append(out, diskOutside(info, d, outside[d.Key])...)
	}
	for _, f := range others {
		out = append(out, fmt.Sprintf("%s lives outside the home folder %s", f, info.HomeFolder()))
	}
	return out
}

// diskOutside describes a disk some of whose files lie outside the home
// folder (files), or returns nothing.
func diskOutside(info *vsphere.VMInfo, d vsphere.DiskInfo, files []string) []string {
	if len(files) == 0 {
		return nil
	}
	var top object.DatastorePath
	top.FromString(d.FileName)
	if top.Datastore == info.HomeDatastore && path.Dir(top.Path) == info.HomeDir && len(d.Chain) > 1 {
		return []string{fmt.Sprintf("%s is a linked clone: its chain continues outside the home folder %s in %s", d.Label, info.HomeFolder(), strings.Join(files, ", "))}
	}
	return []string{fmt.Sprintf("%s lives outside the home folder %s: %s", d.Label, info.HomeFolder(), strings.Join(files, ", "))}
}

// notCtk drops the change tracking files (-ctk.vmdk) of the disks.
func notCtk(files []sourceFile) []sourceFile {
	out := files[:0:0]
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ctkSuffix) {
			out = append(out, f)
		}
	}
	return out
}

// leaveOutUncapturable refuses a VM with disks this transport cannot
// capture, or, with Options.SkipUncapturable, drops their files and
// records them, each with a warning.
func (j *vmBackup) leaveOutUncapturable(files []sourceFile) ([]sourceFile, error) {
	skipped := uncapturable(j.info, files)
	if len(skipped) == 0 {
		return files, nil
	}
	if !j.b.opts.SkipUncapturable {
		return nil, uncapturableError(j.info.Name, skipped)
	}
	for _, s := range skipped {
		j.skipped = append(j.skipped, s.SkippedDisk)
		j.res.Warnings = append(j.res.Warnings, fmt.Sprintf("left out %s (%s): %s", s.Label, s.File, s.Reason))
	}
	return withoutDisks(files, skipped), nil
}
