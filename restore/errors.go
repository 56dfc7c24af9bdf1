package restore

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, checked with errors.Is. The CLI maps them to exit codes:
// ErrBackupNotFound, ErrAmbiguous and ErrBadTarget are bad input (2);
// ErrCollision, ErrNoSpace and ErrNotRestorable are refusals (3), like
// keys.ErrKeyNotAvailable.
var (
	// ErrBackupNotFound: no backup matches the ID or VM[@TIME] given.
	ErrBackupNotFound = errors.New("backup not found")
	// ErrAmbiguous: a VM name matches backups of several VMs (see
	// AmbiguousError).
	ErrAmbiguous = errors.New("ambiguous backup selection")
	// ErrBadTarget: a restore option names something that does not exist
	// or is invalid (datastore, folder, pool, host, name, --files pattern).
	ErrBadTarget = errors.New("invalid restore target")
	// ErrCollision: the new VM name, its home folder or a local file
	// already exists. Restore never overwrites.
	ErrCollision = errors.New("restore target already exists")
	// ErrNoSpace: the datastore has not enough free space.
	ErrNoSpace = errors.New("not enough free space")
	// ErrNotRestorable: the backup cannot be restored to a vCenter as it
	// is (no .vmx, disks outside the home folder, no recorded key).
	ErrNotRestorable = errors.New("backup cannot be restored to a vCenter")
	// ErrFileCorrupt: a file rebuilt from verified chunks does not match
	// the whole-file SHA-256 of its manifest (a manifest inconsistent with
	// its chunks). The file is never completed on the target.
	ErrFileCorrupt = errors.New("rebuilt file does not match its backup")
)

// AmbiguousError says that a VM name matches backups of more than one VM
// (same name, different VMs over time or on different vCenters). The user
// picks one with its inventory path or a backup ID.
type AmbiguousError struct {
	Spec string
	// Candidates describe each VM: inventory path, instance UUID, vCenter
	// and its latest backup ID.
	Candidates []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q matches backups of %d different VMs: restore by inventory path (e.g. %q) or by backup ID:\n  %s",
		e.Spec, len(e.Candidates), "/DC0/vm/NAME@latest", strings.Join(e.Candidates, "\n  "))
}

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }
