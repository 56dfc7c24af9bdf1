// Package faultproxy is an HTTP proxy on 127.0.0.1 that injects faults into
// the traffic between an S3 client and the test S3 server (versitygw, see
// internal/s3server): error answers (500 InternalError, 503 SlowDown),
// latency, a response body trickled out in small pieces, connections reset
// in the middle of the request body or of the response, and a restart of
// the server in the middle of a request.
//
// Faults are rules: a fault for the Nth request of a kind (PUT, GET, LIST,
// ...) counted from when the rule was set, or for a share of them drawn from
// a seeded generator. A rule injects at most Max faults, so a test can stay
// under or go over the client's retry count on purpose. Nothing waits on
// the wall clock to synchronise: a fault happens at a request, not at a
// time; delays are the faults themselves.
//
// The proxy keeps the Host header of each request, so SigV4 signatures made
// for the proxy's address still verify at the server.
//
// Test support: import it from _test.go files only (depguard enforces it).
package faultproxy
