package storage_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The logging wrapper is a backend like any other.
func TestLoggingConformance(t *testing.T) {
	storagetest.RunTests(t, func(_ context.Context, t *testing.T) storage.Backend {
		b, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return storage.WithLogging(b, debugLogger(io.Discard))
	}, storagetest.Options{})
}

// Each call is one debug line with its operation, object, size and
// duration; the optional interfaces survive the wrapping; a logger that
// does not show debug leaves the backend as it is.
func TestLoggingWrapper(t *testing.T) {
	ctx := t.Context()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	lb := storage.WithLogging(b, debugLogger(&buf))
	if _, ok := lb.(storage.Cleaner); !ok {
		t.Error("the wrapper hides the backend's Cleaner")
	}
	if _, ok := lb.(storage.Retainer); ok {
		t.Error("the wrapper claims a Retainer the backend is not")
	}
	if err := lb.Put(ctx, "data/ab/obj", strings.NewReader("12345"), 5); err != nil {
		t.Fatal(err)
	}
	rc, err := lb.Get(ctx, "data/ab/obj", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	_, _ = lb.Stat(ctx, "data/ab/missing")
	if _, err := lb.(storage.Cleaner).CleanStale(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"level=DEBUG msg=\"storage call\"", "op=put object=data/ab/obj", "size=5", "duration=",
		"op=get object=data/ab/obj", "offset=1 length=3 bytes=3",
		"op=stat object=data/ab/missing", "error=", "op=clean-stale",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	info := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if storage.WithLogging(b, info) != storage.Backend(b) {
		t.Error("a logger without debug still wraps the backend")
	}
}
