package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
