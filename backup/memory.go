package backup

import (
	"context"
	"fmt"
	"sync"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// DefaultMaxMemory is the memory budget of a backup run's chunk buffers
// and chunk writers when Options.MaxMemory is zero: enough for two VMs at
// full speed, and for --parallel 8 to stay well under 256 MiB of resident
// memory (issue 13). Everything else a run holds (manifests, the index of
// known chunks, connections) is small beside it.
const DefaultMaxMemory = 128 << 20

// MinMaxMemory is the smallest budget: one chunk writer and two chunk
// buffers of the largest chunk size, so one VM can always make progress.
const MinMaxMemory = 32 << 20

// memoryPool is the memory all VMs of a run share: chunk-sized buffers the
// readers fill, and chunk writers (a zstd encoder and two buffers of the
// largest stored object each) the workers encode and upload with. A VM's
// pipeline takes what it needs chunk by chunk and gives it back, so the
// run's memory is bounded by the budget however many VMs run at once;
// more VMs in parallel share it instead of multiplying it.
//
// Both are allocated on first use, up to their limits: a run of one small
// VM allocates no more than it uses. Nothing that holds a writer ever waits
// for a buffer, so the VMs cannot deadlock on the pool.
type memoryPool struct {
	repo      *repository.Repository
	chunkSize int64

	mu                    sync.Mutex
	bufsMade, writersMade int
	maxBufs, maxWriters   int
	bufs                  chan []byte
	writers               chan *repository.ChunkWriter
}

// writerMemory is what one chunk writer holds: its compressed and stored
// buffers (each the largest stored object) and the zstd encoder's state
// (its history and tables: 3.3 MiB measured with 4 MiB chunks).
func writerMemory(repo *repository.Repository) int64 {
	return 2*repo.MaxStoredSize() + 4<<20
}

// newMemoryPool sizes the pool for a run of parallel VMs with workers
// workers each: as much as they can use (workers+2 buffers and workers
// writers per VM, what one VM's pipeline keeps busy), capped by budget
// bytes, half of which goes to writers.
func newMemoryPool(repo *repository.Repository, workers, parallel int, budget int64) *memoryPool {
	if budget <= 0 {
		budget = DefaultMaxMemory
	}
	cs := repo.Config().ChunkSize
	wm := writerMemory(repo)
	maxWriters := max(1, min(workers*parallel, int(budget/2/wm)))
	maxBufs := max(2, min((workers+2)*parallel, int((budget-int64(maxWriters)*wm)/cs)))
	return &memoryPool{
		repo: repo, chunkSize: cs,
		maxBufs: maxBufs, maxWriters: maxWriters,
		bufs:    make(chan []byte, maxBufs),
		writers: make(chan *repository.ChunkWriter, maxWriters),
	}
}

// String describes the pool's limits, for logs.
func (m *memoryPool) String() string {
	return fmt.Sprintf("%d chunk buffers of %d MiB, %d chunk writers", m.maxBufs, m.chunkSize>>20, m.maxWriters)
}

// buffer returns a chunk buffer, waiting for one when all are in use.
func (m *memoryPool) buffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.bufs:
		return b, nil
	default:
	}
	m.mu.Lock()
	if m.bufsMade < m.maxBufs {
		m.bufsMade++
		m.mu.Unlock()
		return make([]byte, m.chunkSize), nil
	}
	m.mu.Unlock()
	select {
	case b := <-m.bufs:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// putBuffer gives a buffer back.
func (m *memoryPool) putBuffer(b []byte) { m.bufs <- b[:cap(b)] }

// writer returns a chunk writer, waiting for one when all are in use.
func (m *memoryPool) writer(ctx context.Context) (*repository.ChunkWriter, error) {
	select {
	case w := <-m.writers:
		return w, nil
	default:
	}
	m.mu.Lock()
	if m.writersMade < m.maxWriters {
		m.writersMade++
		m.mu.Unlock()
		return m.repo.NewChunkWriter(), nil
	}
	m.mu.Unlock()
	select {
	case w := <-m.writers:
		return w, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// putWriter gives a writer back.
func (m *memoryPool) putWriter(w *repository.ChunkWriter) { m.writers <- w }
