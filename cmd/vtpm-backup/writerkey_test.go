package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// initWriterKey loads the writer key "init" created for repo at the
// default path (TestMain points XDG_CONFIG_HOME at a temporary directory).
func initWriterKey(t *testing.T, repo *repository.Repository) *repository.WriterKey {
	t.Helper()
	k, err := repository.LoadWriterKeyFile(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "vtpm-backup", "writer-"+repo.Config().ID+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
