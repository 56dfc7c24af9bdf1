// Package storage defines the Backend interface that repository objects
// (config, chunks, manifests, locks) are stored through, and its sentinel
// errors.
//
// Implementations live in storage/local (a directory) and storage/s3 (any
// S3-compatible object store through minio-go). Both pass the conformance
// suite in storage/storagetest, which also provides an in-memory backend and
// a fault-injecting wrapper for other packages' tests.
package storage
