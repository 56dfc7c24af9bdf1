package restore

import "errors"

// Sentinel errors, checked with errors.Is. The CLI maps them to exit codes:
// ErrBadTarget is bad input (2), like the selection errors of
// repository.Select; ErrCollision, ErrNoSpace, ErrNotRestorable,
// ErrVMLocked and ErrIdentityInUse are refusals (3), like
// keys.ErrKeyNotAvailable.
var (
	// ErrBadTarget: a restore option names something that does not exist
	// or is invalid (datastore, folder, pool, host, name, --files pattern).
	ErrBadTarget = errors.New("invalid restore target")
	// ErrCollision: the new VM name, its home folder or a local file
	// already exists. Restore never overwrites.
	ErrCollision = errors.New("restore target already exists")
	// ErrNoSpace: the datastore has not enough free space.
	ErrNoSpace = errors.New("not enough free space")
	// ErrNotRestorable: the backup cannot be restored to a vCenter as it
	// is (no .vmx, disks outside the home folder, a vTPM without .nvram,
	// no recorded key: keys.Restorability, which audit runs too).
	ErrNotRestorable = errors.New("backup cannot be restored to a vCenter")
	// ErrIdentityInUse: the restored VM would be powered on with --uuid
	// keep while a VM with the same BIOS UUID (and so MAC addresses) runs.
	ErrIdentityInUse = errors.New("a running VM has the identity the restore would keep")
	// ErrFileCorrupt: a file rebuilt from verified chunks does not match
	// the whole-file SHA-256 of its manifest (a manifest inconsistent with
	// its chunks). The file is never completed on the target.
	ErrFileCorrupt = errors.New("rebuilt file does not match its backup")
	// ErrVMLocked: vCenter registered the restored VM but left it locked:
	// its host did not get the key (a privilege or the host's encryption
	// mode). Restore then removes the VM and its files.
	ErrVMLocked = errors.New("restored VM is locked")
)
