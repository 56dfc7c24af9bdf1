package repository_test

import (
	"context"
	"io"
	"strings"

	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// mixedChunk returns 4 MiB shaped like a used disk: a quarter random, a
// quarter text-like, a quarter sparse, a quarter repeated pattern.
func mixedChunk(seed uint64) []byte {
	const n = 4 << 20
	b := make([]byte, n)
	copy(b[:n/4], storagetest.Random(seed, n/4))
	text := []byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit; C:\\Windows\\System32\\config ")
	for i := n / 4; i < n/2; i += len(text) {
		copy(b[i:n/2], text)
	}
	r := storagetest.Random(seed+1, n/4/64)
	for i, v := range r {
		b[n/2+i*64] = v
	}
	for i := 3 * n / 4; i < n; i++ {
		b[i] = byte(i % 251)
	}
	return b
}

// nullBackend drops chunk puts, so the benchmark measures hash + zstd +
// age rather than storage.
type nullBackend struct{ storage.Backend }

func (nullBackend) PutIfAbsent(_ context.Context, name string, r io.Reader, _ int64) error {
	if strings.HasPrefix(name, "data/") {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return nil
}

func BenchmarkChunkWrite(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			be := nullBackend{storagetest.NewMemory()}
			r := repotest.New(b, repotest.Options{Backend: be})
			chunks := make([][]byte, 8)
			for i := range chunks {
				chunks[i] = mixedChunk(uint64(i))
			}
			var next atomic.Int64
			var stored atomic.Int64
			b.SetBytes(4 << 20)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := r.NewChunkWriter()
					defer w.Close()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						data := chunks[i%int64(len(chunks))]
						id := repository.ChunkID(sha256.Sum256(data))
						so, err := w.Put(b.Context(), id, data)
						if err != nil {
							b.Error(err)
							return
						}
						stored.Add(so.StoredSize)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(stored.Load())/float64(int64(b.N)*4<<20), "stored/plain")
		})
	}
}
