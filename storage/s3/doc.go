// Package s3 is the storage.Backend for S3-compatible object stores (AWS S3,
// MinIO, Ceph RGW, versitygw, ...), built on minio-go.
//
// Objects live under Config.Prefix in one bucket, named exactly as the
// repository names them. The package keeps the storage contract on a store
// that has no rename and no partial objects:
//
//   - Put buffers up to one part in memory and sends it as a single PUT
//     (atomic on S3); larger objects go up as a multipart upload that is
//     aborted on any failure or cancellation, so no object appears.
//   - PutIfAbsent sends If-None-Match: * on the PUT or on the multipart
//     completion (minio-go's PutObject drops the header on completion, so
//     the multipart path uses minio.Core itself).
//   - Retries: minio-go retries 5xx, throttling and connection errors with
//     exponential backoff and jitter, never other 4xx; our bodies are always
//     in-memory buffers, hence seekable, so uploads are retried too.
//     Config.MaxRetries bounds it (default 5 attempts).
//   - Object Lock: the backend is a storage.Retainer. The repository calls
//     SetRetention after a put; Delete removes every version of a name in a
//     versioned bucket (a plain DELETE there only adds a delete marker and
//     would let prune "delete" a retained object) and reports
//     storage.ErrRetained when the lock refuses.
//
// New checks the bucket, so a typo, wrong keys or a dead endpoint fail at
// once with ErrBucketNotFound, ErrAccessDenied or ErrUnreachable instead of
// in the middle of a backup.
package s3
