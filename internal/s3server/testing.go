package s3server

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// buildTimeout bounds a cold build of versitygw (about 2 minutes on 2 cores)
// plus the start.
const buildTimeout = 10 * time.Minute

// StartT starts a server for a test and stops it in t.Cleanup. When the
// binary cannot be built (no go toolchain), the test is skipped outside CI
// and fails in CI (CI=true), like restic's SkipDisallowed: a CI run that
// silently skipped the S3 tests would prove nothing.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := StartDefault(t.Context())
	if err != nil {
		if errors.Is(err, ErrUnavailable) && !InCI() {
			t.Skipf("S3 tests skipped: %v (set %s to a versitygw binary, or install Go)", err, EnvBinary)
		}
		t.Fatalf("start S3 test server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartDefault is Start with default options and a bounded build time, for
// TestMain functions that cannot use StartT: on an ErrUnavailable error
// outside CI they should print it and skip their S3 tests, in CI fail.
func StartDefault(ctx context.Context) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	return Start(ctx, Options{})
}

// InCI reports whether we run in continuous integration, where a missing
// S3 server is a failure rather than a reason to skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}
