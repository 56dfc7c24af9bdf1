package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// openBackend opens the storage named by --repo (or VTPM_BACKUP_REPO).
func (g *globalOptions) openBackend(ctx context.Context) (storage.Backend, error) {
	repo, err := g.requireRepo()
	if err != nil {
		return nil, err
	}
	if strings.Contains(repo, "://") && !strings.HasPrefix(repo, "file://") {
		return nil, newUsageError(fmt.Errorf("repository %q: only local directories are supported yet", repo), "")
	}
	return local.New(strings.TrimPrefix(repo, "file://"))
}
