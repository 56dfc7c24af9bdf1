package s3server_test

import (
	"errors"
	"net/http"
	"syscall"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
)

func TestStartAnswersStop(t *testing.T) {
	s := s3server.StartT(t)
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "probe", false); err != nil {
		t.Fatalf("CreateBucket: %v\nserver log:\n%s", err, s.Log())
	}
	if err := s.CreateBucket(ctx, "locked", true); err != nil {
		t.Fatalf("CreateBucket with Object Lock: %v", err)
	}
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.BucketExists(ctx, "probe"); err != nil || !ok {
		t.Fatalf("BucketExists(probe) = %v, %v", ok, err)
	}
	// Anonymous requests are refused: the server checks credentials.
	resp, err := http.Get(s.URL + "/probe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET = %s, want 403", resp.Status)
	}

	pid := s.PID()
	s.Stop()
	s.Stop() // idempotent
	// Signal 0 checks for existence: the reaped process must be gone.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
	if _, err := http.Get(s.URL + "/"); err == nil {
		t.Error("server still answers after Stop")
	}
}

func TestEnv(t *testing.T) {
	s := &s3server.Server{AccessKey: "AK", SecretKey: "SK", Region: "us-east-1"}
	want := []string{"AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK", "AWS_REGION=us-east-1"}
	got := s.Env()
	if len(got) != len(want) {
		t.Fatalf("Env() = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Env()[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestBinaryFromEnv(t *testing.T) {
	t.Setenv(s3server.EnvBinary, "/nonexistent/versitygw")
	if _, err := s3server.Binary(t.Context()); !errors.Is(err, s3server.ErrUnavailable) {
		t.Fatalf("Binary with a missing %s = %v, want ErrUnavailable", s3server.EnvBinary, err)
	}
}
