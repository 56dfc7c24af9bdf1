// Package audit answers the question an administrator asks before a
// disaster: "if this site burns tonight, can we restore every vTPM VM, and
// are the keys there?"
//
// Run checks the latest backup of each VM in a repository: its manifest
// parses and is consistent, every stored object it references is present
// with the recorded size (optionally downloaded and hashed without
// decrypting, or also decrypted and checked against its chunk ID), the
// .nvram of a vTPM VM is in it, every key it depends on is available on a
// target vCenter (the same check restore makes before writing anything),
// the Native Key Provider of those keys has been backed up, and the backup
// is recent enough. With Options.Inventory it also lists the vTPM and
// encrypted VMs of that vCenter that have no backup at all (coverage).
//
// The verdict is deliberately strict: a VM is READY only when every check
// that could be made passed. Key checks need a vCenter; without one a VM
// whose backup depends on keys is NOT READY ("keys not checked"), because an
// encrypted VM whose keys are missing cannot be powered on, and an audit
// that cannot tell is not a green light.
//
// The backups to check come from repository.Catalog (the grouping of
// backups by VM that also serves "vtpm-backup list" and "keys status").
//
// The package does not print: cmd/vtpm-backup turns Reports into tables and
// JSON lines, and package metrics into Prometheus metrics.
package audit
