package keys

import (
	"fmt"
	"path"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// Restorable is what a backup's manifest says about registering it on a
// vCenter, apart from its keys (Readiness and Check judge those).
type Restorable struct {
	// VMX is the name of the backup's .vmx file ("" when it holds none).
	VMX string
	// Problems say why the backup cannot be registered on a vCenter as it
	// is; each names the object and the remedy. Restore refuses such a
	// backup; audit reports it NOT READY for a vCenter restore. Its files
	// can still be extracted with restore --to-dir.
	Problems []string
	// Warnings do not stop a restore but change what it gives back: the
	// disks the backup left out.
	Warnings []string
}

// Restorability runs the checks on m that restore's pre-flight and audit
// share, so that audit never calls ready what restore refuses: exactly one
// .vmx, every file in the VM's home folder (the encrypted .vmx names other
// files by datastore path and cannot be rewritten, so a restore into a new
// home folder would break them), what the backup itself recorded as not
// registrable (linked clones, disks outside the home folder) or left out
// (disks its transport cannot capture), the .nvram of a vTPM VM (its TPM
// state), and a recorded VM key for an encrypted VM (without it the key
// cannot be checked, and the VM would come back locked).
func Restorability(m *repository.Manifest) Restorable {
	var r Restorable
	var outside []string
	for _, f := range m.Files {
		if IsVMX(f) {
			if r.VMX != "" {
				r.Problems = append(r.Problems, fmt.Sprintf("backup %s holds two .vmx files (%s, %s): restore its files with --to-dir", m.BackupID, r.VMX, f.Name))
			}
			r.VMX = f.Name
		}
		if f.Datastore != m.VM.Datastore || strings.TrimSuffix(f.Dir, "/") != strings.TrimSuffix(m.VM.HomeFolder, "/") {
			outside = append(outside, fmt.Sprintf("[%s] %s", f.Datastore, path.Join(f.Dir, f.Name)))
		}
	}
	if r.VMX == "" {
		r.Problems = append(r.Problems, fmt.Sprintf("backup %s of VM %s holds no .vmx file: restore its files with --to-dir", m.BackupID, m.VM.Name))
	}
	switch {
	case len(m.NotRegistrable) > 0:
		for _, why := range m.NotRegistrable {
			r.Problems = append(r.Problems, fmt.Sprintf("backup %s of VM %s can be extracted but not registered: %s; the encrypted .vmx names these files by datastore path and cannot be rewritten: extract them with --to-dir and place them by hand, or move the disks into the home folder (Storage vMotion, or a full clone) before the next backup", m.BackupID, m.VM.Name, why))
		}
	case len(outside) > 0:
		// Written before backups recorded it: judged from the files.
		r.Problems = append(r.Problems, fmt.Sprintf("backup %s of VM %s has files outside its home folder [%s] %s/: %s; the encrypted .vmx names them by datastore path and cannot be rewritten, so restore cannot move them: extract them with --to-dir and place them by hand, or move the disks into the home folder (Storage vMotion) before the next backup",
			m.BackupID, m.VM.Name, m.VM.Datastore, m.VM.HomeFolder, strings.Join(outside, ", ")))
	}
	if m.VM.VTPM && len(m.FileByType(repository.FileNvram)) == 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("VM %s has a vTPM but backup %s holds no .nvram: its TPM secrets (BitLocker, Windows Hello, ...) cannot be restored; pick an older backup that has it",
			m.VM.Name, m.BackupID))
	}
	if NeedsVMKey(m) {
		r.Problems = append(r.Problems, fmt.Sprintf("backup %s of VM %s records a vTPM or encryption but no VM key ID: its key cannot be checked on a vCenter and it would restore as a locked VM; restore its files with --to-dir, or back the VM up again",
			m.BackupID, m.VM.Name))
	}
	for _, d := range m.SkippedDisks {
		r.Warnings = append(r.Warnings, fmt.Sprintf("backup %s left out %s (%s): %s; the restored VM's .vmx still names it: remove the disk in the VM's settings, or restore its data separately, before powering the VM on", m.BackupID, d.Label, d.File, d.Reason))
	}
	return r
}

// IsVMX reports whether f is a VM's .vmx, its main configuration file: the
// one file a vCenter restore registers.
func IsVMX(f repository.File) bool {
	return f.Type == repository.FileConfig && path.Ext(f.Name) == ".vmx"
}

// NeedsVMKey reports whether backup m is of an encrypted or vTPM VM but
// recorded no VM key: one of the Restorability problems, and a reason the
// backup's keys cannot be judged OK.
func NeedsVMKey(m *repository.Manifest) bool {
	return (m.VM.Encrypted || m.VM.VTPM) && FromManifest(m).VMKey == nil
}
