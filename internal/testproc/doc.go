// Package testproc runs the server executables tests talk to (versitygw
// for internal/s3server, the Pushgateway for internal/pushgateway) as
// child processes: started on a free 127.0.0.1 port with their output
// kept for failure messages, waited for until a server-specific check
// says they are ready, killed with the test binary on Linux, and stopped
// by Kill.
//
// It is test support, for those packages and _test.go files only
// (.golangci.yml, depguard): the release binary never starts a server.
package testproc
