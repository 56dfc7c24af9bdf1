// Package repository implements the vtpm-backup repository format v1 on top
// of a storage.Backend:
//
//	config                      JSON: format version, ID, chunk size, hash, compression, age recipients
//	data/<2 hex>/<chunk id>     age(zstd(plaintext)); chunk ID = SHA-256 of the plaintext
//	manifests/<backup-id>.json  one backup: VM identity, keys, files and their chunk lists
//
// Chunks are content addressed, immutable and written once, so any number of
// backup hosts can write to one repository without coordination; a backup
// exists only once its manifest is written. Backup hosts hold only age
// recipients (public keys): they can write but never read old backups.
// Restores and deep audits pass identities (private keys) explicitly.
package repository
