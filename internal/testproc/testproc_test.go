package testproc_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/testproc"
)

// A server that exits before it is ready fails the wait at once, with what
// it printed; one that never gets ready fails at the timeout.
func TestWaitReady(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"exits", "echo cannot bind; exit 3", "exited before it was ready (exit status 3): cannot bind"},
		{"never ready", "exec sleep 30", "not ready within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := testproc.Start("/bin/sh", []string{"-c", tc.script}, nil, &testproc.Log{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			err = p.WaitReady(t.Context(), 200*time.Millisecond, testproc.HTTPReady("http://127.0.0.1:1/", nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WaitReady = %v, want %q", err, tc.want)
			}
		})
	}
}

// HTTPReady accepts any answer without a status check, and only the
// statuses its check accepts with one.
func TestHTTPReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer srv.Close()
	if !testproc.HTTPReady(srv.URL, nil)(t.Context()) {
		t.Error("a 403 is not an answer")
	}
	if testproc.HTTPReady(srv.URL, func(code int) bool { return code == http.StatusOK })(t.Context()) {
		t.Error("a 403 passed a check for 200")
	}
	addr, err := testproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if testproc.HTTPReady("http://"+addr, nil)(t.Context()) {
		t.Errorf("nothing listens on %s, yet it is ready", addr)
	}
}
