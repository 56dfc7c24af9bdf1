package main

import (
	"context"

	"github.com/vtpm-backup/vtpm-backup/internal/location"
	"github.com/vtpm-backup/vtpm-backup/storage"
)

// openBackend opens the storage named by --repo (or VTPM_BACKUP_REPO) with
// the --s3-* options. A malformed URL is location.ErrBadLocation (exit 2).
func (g *globalOptions) openBackend(ctx context.Context) (storage.Backend, error) {
	repo, err := g.requireRepo()
	if err != nil {
		return nil, err
	}
	loc, err := location.Parse(repo)
	if err != nil {
		return nil, err
	}
	return location.Open(ctx, loc, location.S3Options{
		Insecure: g.S3Insecure,
		CAFile:   g.S3CAFile,
		Region:   g.S3Region,
	})
}
