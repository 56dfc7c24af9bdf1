package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// server is the one versitygw shared by the tests of this package; nil when
// it could not be built outside CI (the tests then skip).
var (
	server     *s3server.Server
	skipReason string
	bucketSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	s, err := s3server.StartDefault(context.Background())
	switch {
	case err == nil:
		server = s
	case errors.Is(err, s3server.ErrUnavailable) && !s3server.InCI():
		skipReason = err.Error()
	default:
		fmt.Fprintln(os.Stderr, "start S3 test server:", err)
		os.Exit(1)
	}
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

func needServer(t *testing.T) *s3server.Server {
	t.Helper()
	if server == nil {
		t.Skipf("S3 tests skipped: %s", skipReason)
	}
	return server
}

// newBucket creates a fresh bucket for one test.
func newBucket(t *testing.T, objectLock bool) string {
	t.Helper()
	s := needServer(t)
	name := fmt.Sprintf("test-%d", bucketSeq.Add(1))
	if err := s.CreateBucket(t.Context(), name, objectLock); err != nil {
		t.Fatal(err)
	}
	return name
}

func config(bucket string) s3.Config {
	return s3.Config{
		Endpoint:  server.Endpoint,
		Bucket:    bucket,
		Prefix:    "repo/one",
		Region:    server.Region,
		PlainHTTP: true,
		AccessKey: server.AccessKey,
		SecretKey: server.SecretKey,
	}
}

func open(ctx context.Context, t *testing.T, cfg s3.Config) *s3.Backend {
	t.Helper()
	b, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	needServer(t)
	storagetest.RunTests(t, func(ctx context.Context, t *testing.T) storage.Backend {
		return open(ctx, t, config(newBucket(t, false)))
	}, storagetest.Options{})
}

// In an Object Lock (hence versioned) bucket, Delete removes versions and
// everything else must behave the same.
func TestConformanceObjectLockBucket(t *testing.T) {
	needServer(t)
	storagetest.RunTests(t, func(ctx context.Context, t *testing.T) storage.Backend {
		return open(ctx, t, config(newBucket(t, true)))
	}, storagetest.Options{})
}

// A cancelled or failed multipart put aborts its upload: no parts are left
// to cost storage.
func TestFailedPutAbortsUpload(t *testing.T) {
	s := needServer(t)
	bucket := newBucket(t, false)
	cfg := config(bucket)
	cfg.PartSize = s3.MinPartSize
	b := open(t.Context(), t, cfg)
	data := storagetest.Random(3, 3*s3.MinPartSize)
	// A reader that fails after two parts.
	failing := io.MultiReader(bytes.NewReader(data[:2*s3.MinPartSize+10]), errReader{})
	if err := b.Put(t.Context(), "data/failed", failing, int64(len(data))); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.PutIfAbsent(ctx, "data/cancelled", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("PutIfAbsent with a cancelled context succeeded")
	}
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	for u := range c.ListIncompleteUploads(t.Context(), bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("incomplete upload left behind: %s (%s)", u.Key, u.UploadID)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk read error") }

func TestNewErrors(t *testing.T) {
	s := needServer(t)
	bucket := newBucket(t, false)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadEndpoint := closed.Addr().String()
	closed.Close() // nothing listens there any more: connection refused

	tests := []struct {
		name    string
		modify  func(*s3.Config)
		want    error
		mention string
	}{
		{"missing bucket", func(c *s3.Config) { c.Bucket = "no-such-bucket" }, s3.ErrBucketNotFound, "create it first"},
		{"wrong secret", func(c *s3.Config) { c.SecretKey = "wrong" + c.SecretKey }, s3.ErrAccessDenied, "AWS_ACCESS_KEY_ID"},
		{"unknown key", func(c *s3.Config) { c.AccessKey = "AKNOBODY" }, s3.ErrAccessDenied, "AWS_ACCESS_KEY_ID"},
		{"unreachable", func(c *s3.Config) { c.Endpoint = deadEndpoint; c.MaxRetries = 1 }, s3.ErrUnreachable, deadEndpoint},
		{"bad part size", func(c *s3.Config) { c.PartSize = 1 << 20 }, nil, "minimum"},
		{"bad lock mode", func(c *s3.Config) { c.LockMode = "forever" }, nil, "lock mode"},
		{"bad bucket name", func(c *s3.Config) { c.Bucket = "Bad_Name" }, nil, "bucket name"},
		{"endpoint with path", func(c *s3.Config) { c.Endpoint += "/x" }, nil, "host[:port]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(bucket)
			tc.modify(&cfg)
			b, err := s3.New(t.Context(), cfg)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("New = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("New = %v, want it to mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), s.SecretKey) {
				t.Errorf("error reveals the secret key: %v", err)
			}
		})
	}
}

// The AWS chain (environment variables) is used when Config has no keys.
func TestCredentialsFromEnvironment(t *testing.T) {
	s := needServer(t)
	bucket := newBucket(t, false)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_SESSION_TOKEN", "")
	cfg := config(bucket)
	cfg.AccessKey, cfg.SecretKey = "", ""
	b := open(t.Context(), t, cfg)
	if err := b.Put(t.Context(), "x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Location(), "s3+http://"+s.Endpoint+"/"+bucket+"/repo/one"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
}

// A create-only put of an object larger than a part uses a conditional
// multipart completion; it must be exclusive too.
func TestPutIfAbsentMultipart(t *testing.T) {
	needServer(t)
	cfg := config(newBucket(t, false))
	cfg.PartSize = s3.MinPartSize
	b := open(t.Context(), t, cfg)
	ctx := t.Context()
	data := storagetest.Random(7, 2*s3.MinPartSize+123)
	if err := b.PutIfAbsent(ctx, "data/big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutIfAbsent: %v", err)
	}
	other := storagetest.Random(8, len(data))
	err := b.PutIfAbsent(ctx, "data/big", bytes.NewReader(other), int64(len(other)))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	got, err := storage.ReadAll(ctx, b, "data/big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content after refused PutIfAbsent: %d bytes, %v; want the first writer's", len(got), err)
	}
	// Unknown size takes the multipart path as well.
	if err := b.Put(ctx, "data/unknown", bytes.NewReader(data), -1); err != nil {
		t.Fatalf("Put of unknown size: %v", err)
	}
	if got, err := storage.ReadAll(ctx, b, "data/unknown"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back unknown-size put: %d bytes, %v", len(got), err)
	}
}

// Two writers racing with multipart create-only puts: exactly one wins. The
// early Stat cannot decide it (both see no object), the condition on the
// completion does.
func TestPutIfAbsentMultipartRace(t *testing.T) {
	needServer(t)
	cfg := config(newBucket(t, false))
	cfg.PartSize = s3.MinPartSize
	b := open(t.Context(), t, cfg)
	const n = 3
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			data := storagetest.Random(uint64(10+i), s3.MinPartSize+1)
			errs <- b.PutIfAbsent(t.Context(), "locks/big", bytes.NewReader(data), int64(len(data)))
		}()
	}
	close(start)
	wins := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrExists):
			t.Errorf("PutIfAbsent: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won, want 1", wins)
	}
}

func TestObjectLock(t *testing.T) {
	needServer(t)
	b := open(t.Context(), t, config(newBucket(t, true)))
	ctx := t.Context()
	var r storage.Retainer = b

	put := func(name, body string) {
		t.Helper()
		if err := b.Put(ctx, name, strings.NewReader(body), int64(len(body))); err != nil {
			t.Fatalf("Put(%s): %v", name, err)
		}
	}
	put("data/kept", "v1")
	put("data/kept", "v2") // two versions
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := r.SetRetention(ctx, "data/kept", until); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	got, err := r.Retention(ctx, "data/kept")
	if err != nil || !got.Equal(until) {
		t.Fatalf("Retention = %v, %v; want %v", got, err, until)
	}
	err = b.Delete(ctx, "data/kept")
	if !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Delete of a retained object = %v, want ErrRetained", err)
	}
	if data, err := storage.ReadAll(ctx, b, "data/kept"); err != nil || string(data) != "v2" {
		t.Fatalf("retained object after refused Delete = %q, %v; want v2", data, err)
	}

	// Unretained objects in a versioned bucket are deleted for good: no
	// older version comes back.
	put("data/free", "v1")
	put("data/free", "v2")
	if got, err := r.Retention(ctx, "data/free"); err != nil || !got.IsZero() {
		t.Fatalf("Retention of an unretained object = %v, %v; want zero", got, err)
	}
	if err := b.Delete(ctx, "data/free"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "data/free"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "data/free"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := r.SetRetention(ctx, "data/missing", until); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetRetention(missing) = %v, want ErrNotFound", err)
	}
	if _, err := r.Retention(ctx, "data/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Retention(missing) = %v, want ErrNotFound", err)
	}
}

// Uploads a killed process never aborted are aborted by CleanStale once
// they are older than the cutoff; a newer one (a write in progress) and
// uploads outside the repository's prefix are left alone.
func TestCleanStaleAbortsIncompleteUploads(t *testing.T) {
	s := needServer(t)
	bucket := newBucket(t, false)
	b := open(t.Context(), t, config(bucket))
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: c}
	for _, key := range []string{"repo/one/data/ab/killed", "elsewhere/not-ours", "repo/one/unrelated-app-upload"} {
		if _, err := core.NewMultipartUpload(t.Context(), bucket, key, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	uploads := func() []string {
		t.Helper()
		var keys []string
		for u := range c.ListIncompleteUploads(t.Context(), bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
		return keys
	}
	if n, err := b.CleanStale(t.Context(), time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("CleanStale with a cutoff before the uploads = %d, %v; want 0", n, err)
	}
	if n, err := b.CleanStale(t.Context(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("CleanStale = %d, %v; want 1", n, err)
	}
	if got := uploads(); len(got) != 2 || got[0] != "elsewhere/not-ours" || got[1] != "repo/one/unrelated-app-upload" {
		t.Fatalf("incomplete uploads after CleanStale: %v", got)
	}
}
