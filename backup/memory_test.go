package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

func TestMemoryPoolSizing(t *testing.T) {
	repo := repotest.New(t, repotest.Options{Backend: storagetest.NewMemory()}).Repository
	wm := writerMemory(repo)
	tests := []struct {
		name                  string
		workers, parallel     int
		budget                int64
		wantWriters, wantBufs int
	}{
		{"one VM: what its pipeline uses", 2, 1, DefaultMaxMemory, 2, 4},
		{"8 VMs share the default budget", 2, 8, DefaultMaxMemory, int(DefaultMaxMemory / 2 / wm), int((DefaultMaxMemory - DefaultMaxMemory/2/wm*wm) / (4 << 20))},
		{"the smallest budget still runs one VM", 2, 8, MinMaxMemory, 1, int((MinMaxMemory - wm) / (4 << 20))},
		{"a budget below one writer", 2, 8, 1 << 20, 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemoryPool(repo, tc.workers, tc.parallel, tc.budget)
			if m.maxWriters != tc.wantWriters || m.maxBufs != tc.wantBufs {
				t.Fatalf("pool = %s, want %d writers and %d buffers", m, tc.wantWriters, tc.wantBufs)
			}
			if tc.budget >= MinMaxMemory {
				if used := int64(m.maxWriters)*wm + int64(m.maxBufs)*(4<<20); used > tc.budget {
					t.Fatalf("pool %s holds %d MiB, over the budget of %d MiB", m, used>>20, tc.budget>>20)
				}
			}
		})
	}
}

// TestMemoryPoolShared runs many pipelines at once on the smallest pool:
// each file is stored whole and right, none waits forever, and the pool
// never made more than its limits.
func TestMemoryPoolShared(t *testing.T) {
	repo := repotest.New(t, repotest.Options{Backend: storagetest.NewMemory(), ChunkSize: repository.MinChunkSize}).Repository
	m := newMemoryPool(repo, 2, 8, 1) // one writer, two buffers
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := storagetest.Random(uint64(i), 5*int(repository.MinChunkSize)+77)
			p := newPipeline(repo, repository.NewIndex(), 2, m, func(int64) {})
			size, sum, chunks, err := p.store(t.Context(), bytes.NewReader(data))
			want := sha256.Sum256(data)
			if err != nil || size != int64(len(data)) || sum != hex.EncodeToString(want[:]) || len(chunks) != 6 {
				t.Errorf("pipeline %d: store = %d bytes, %s, %d chunks, %v", i, size, sum, len(chunks), err)
			}
		}()
	}
	wg.Wait()
	if m.bufsMade > m.maxBufs || m.writersMade > m.maxWriters || m.maxWriters != 1 || m.maxBufs != 2 {
		t.Fatalf("pool %s made %d buffers and %d writers", m, m.bufsMade, m.writersMade)
	}
}
