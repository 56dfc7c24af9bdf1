// Package pushgateway starts a real Prometheus Pushgateway on 127.0.0.1
// for tests and reads back what was pushed to it.
//
// The metrics code is tested against the real server, as the S3 code is
// against versitygw (internal/s3server): what matters (the push protocol,
// grouping keys, the consistency checks the gateway applies to a push) is
// what a mock would get wrong. The Go module proxy does not serve the
// Pushgateway; Debian does (package prometheus-pushgateway), and .ci/run
// installs it. A missing binary skips the tests outside CI and fails them
// under CI=true, so a CI run cannot pass without having pushed.
package pushgateway
