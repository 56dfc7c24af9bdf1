// Package s3server starts a real S3-compatible server (versitygw, Apache-2.0)
// on 127.0.0.1 for tests and for trying the tool by hand (make s3-server).
//
// Our S3 code is tested against a real server, not a mock, because the
// behaviours that matter (SigV4 rejection, conditional creates, multipart,
// Object Lock) are exactly what mocks get wrong (see TESTBED.md on gofakes3).
// versitygw is pinned in go.mod as a Go tool; this package finds its binary
// or builds it once into <module root>/.bin, then runs one server process per
// Start with a temporary directory, a free port and random keys.
package s3server
