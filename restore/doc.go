// Package restore restores one backup of a vTPM VM: to a vCenter (upload the
// files into a new home folder and register the VM) or to a local folder.
//
// It follows "refuse early, write late":
//
//  1. repository.Select picks the backup: a backup ID, or VM, VM@latest,
//     VM@TIME (the catalog's selection, shared with keys status).
//  2. Preflight runs every check before anything is written: the manifest
//     is valid and restorable; every key the VM depends on is available on
//     the target vCenter (keys.Check, one QueryCryptoKeyStatus call); the
//     datastore, folder, resource pool and host exist; the hosts the VM
//     may run on can get its Native Key Provider keys (in a cluster, with
//     a TPM 2.0 when the provider requires one: KeyHostError); neither a
//     VM with the new name nor the home folder "[ds] NAME/" exists; the
//     datastore
//     has room; and the age identity decrypts a sample chunk. A refused
//     restore has written and registered nothing.
//  3. Run creates the home folder, rebuilds every file from its chunks
//     (N workers decode in parallel, one writer streams them in order
//     into the datastore upload, so memory stays bounded whatever the disk
//     size; zero chunks are written from a shared zero buffer without
//     reading the repository), verifies each chunk and the whole-file
//     SHA-256, registers the VM, checks that vCenter did not leave it
//     locked (ErrVMLocked: vCenter registers an encrypted VM even when
//     its host may not get the key) and optionally powers it on. Any failure or
//     cancellation after the folder was created unregisters what it
//     registered and deletes exactly the files it uploaded and the folder
//     it created, with a fresh context.
//
// File names: the .vmx of an encrypted VM cannot be rewritten (it is mostly
// ciphertext), so it keeps referring to the .nvram and the disks by their
// original names. A restore under a new name therefore keeps the original
// file names inside a new folder named after the new VM, and registers
// "[ds] NEW/ORIGINAL.vmx" under the name NEW. For the same reason a backup
// whose disks lived outside the VM home folder (another datastore or
// folder, referenced by absolute path in the vmx) is refused for a vCenter
// restore with ErrNotRestorable; a restore to a folder still extracts its
// files.
//
// A restore to a local folder needs no vCenter and has the same shape:
// PlanDir checks (manifest, selected files, no file to overwrite, the
// identity) and returns a DirPlan; RunDir writes the original files (e.g.
// the .nvram, as vSphere encrypted it), verified, never overwriting.
//
// A power-on that fails after a complete restore is not a failed restore:
// Run returns the Result with PowerOnErr set (wrapping ErrPowerOn) and
// keeps the VM. Times come from Options.Clock (DirOptions.Clock), by
// default the repository's clock.
package restore
