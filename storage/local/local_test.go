package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunTests(t, func(_ context.Context, t *testing.T) storage.Backend {
		b, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, storagetest.Options{})
}

// A failed put must not leave its temporary file behind.
func TestNoTemporaryLeftovers(t *testing.T) {
	dir := t.TempDir()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Put(t.Context(), "data/x", strings.NewReader("short"), 100)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("leftover file %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Temporary files of a killed put are removed once older than the cutoff;
// a fresh one (a put in progress) and real objects stay.
func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), "data/ab/chunk", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "data", "ab", ".tmp-killed")
	fresh := filepath.Join(dir, "data", ".tmp-running")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := b.CleanStale(t.Context(), time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CleanStale = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("the stale temporary is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("the temporary of a running put was removed")
	}
	if _, err := b.Stat(t.Context(), "data/ab/chunk"); err != nil {
		t.Errorf("a real object was touched: %v", err)
	}
}
