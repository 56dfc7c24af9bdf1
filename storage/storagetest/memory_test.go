package storagetest_test

import (
	"context"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

func TestMemory(t *testing.T) {
	storagetest.RunTests(t, func(context.Context, *testing.T) storage.Backend {
		return storagetest.NewMemory()
	}, storagetest.Options{})
}

func TestFaultyPassesThrough(t *testing.T) {
	storagetest.RunTests(t, func(context.Context, *testing.T) storage.Backend {
		return storagetest.NewFaulty(storagetest.NewMemory())
	}, storagetest.Options{})
}
