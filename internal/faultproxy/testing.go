package faultproxy

import (
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
)

// StartS3T starts a test S3 server (s3server.StartT) and a proxy in front of
// it whose Restart fault restarts that server; both stop in t.Cleanup. At
// cleanup a restart that failed fails the test. Clients use the proxy's
// Endpoint with the server's keys.
func StartS3T(t testing.TB, seed uint64) (*s3server.Server, *Proxy) {
	t.Helper()
	srv := s3server.StartT(t)
	p, err := New(srv.Endpoint, Options{Seed: seed, Restart: srv.Restart})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Close()
		if err := p.Err(); err != nil {
			t.Errorf("fault proxy: %v\nserver log:\n%s", err, srv.Log())
		}
	})
	return srv, p
}
