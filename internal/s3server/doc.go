// Package s3server starts a real S3-compatible server (versitygw, Apache-2.0)
// on 127.0.0.1 for tests and for trying the tool by hand (make s3-server).
//
// Our S3 code is tested against a real server, not a mock, because the
// behaviours that matter (SigV4 rejection, conditional creates, multipart,
// Object Lock) are exactly what mocks get wrong: gofakes3, for one, stores
// minio-go's aws-chunked multipart framing as data and ignores signatures
// and Object Lock. versitygw is pinned as a Go tool in tools/go.mod (its own
// module, so the product's go.mod lists only what the binary needs); this
// package finds its binary or builds it once from that module into
// <module root>/.bin, then runs one server process per Start with a
// temporary directory, a free port and random keys.
package s3server
