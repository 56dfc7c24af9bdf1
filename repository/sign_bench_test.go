package repository_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// BenchmarkManifestVerification measures what authenticating costs a
// reader: a catalog's header read (ranged read of the header, signature
// object, header digest, Ed25519 verification) and a whole manifest read
// (whole digest), signed versus the same manifest read unsigned. Chunk
// counts: 2 500 is a 10 GB VM at 4 MiB chunks, 25 000 a 100 GB one.
func BenchmarkManifestVerification(b *testing.B) {
	for _, n := range []int{2500, 25000} {
		be := storagetest.NewMemory()
		repo := repotest.New(b, repotest.Options{Backend: be, ChunkSize: chunkSize}).Repository
		m := writeBigManifest(b, repo, n)
		size, err := be.Stat(b.Context(), repository.ManifestObjectName(m.BackupID))
		if err != nil {
			b.Fatal(err)
		}
		// The same bytes without their signature, read by a reader that
		// accepts unsigned manifests: the cost before signing existed.
		unsigned := storagetest.NewMemory()
		for _, name := range []string{"config", repository.ManifestObjectName(m.BackupID)} {
			copyObject(b, be, unsigned, name)
		}
		plain, err := repository.Open(b.Context(), unsigned)
		if err != nil {
			b.Fatal(err)
		}
		plain.SetTrust(repository.Trust{AllowUnsigned: true})
		for _, rc := range []struct {
			name string
			r    *repository.Repository
		}{{"signed", repo}, {"unsigned", plain}} {
			b.Run(fmt.Sprintf("header/%d-chunks/%s", n, rc.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := rc.r.ReadManifestHeader(b.Context(), m.BackupID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("whole/%d-chunks/%s", n, rc.name), func(b *testing.B) {
				b.SetBytes(size.Size)
				for b.Loop() {
					if _, err := rc.r.ReadManifest(b.Context(), m.BackupID); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func copyObject(b *testing.B, from, to storage.Backend, name string) {
	b.Helper()
	data, err := storage.ReadAll(b.Context(), from, name)
	if err != nil {
		b.Fatal(err)
	}
	if err := to.Put(b.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		b.Fatal(err)
	}
}
