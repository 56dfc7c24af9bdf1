package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// Stats counts what a backup read and wrote.
type Stats struct {
	BytesRead     int64
	BytesUploaded int64 // stored (compressed, encrypted) bytes put
	ChunksNew     int64
	ChunksKnown   int64
	ChunksZero    int64
	// BytesSkipped is disk data not read thanks to Changed Block
	// Tracking: chunks taken from the previous backup (ChunksReused) or
	// unallocated, hence zero.
	BytesSkipped int64
	ChunksReused int64
}

// pipeline cuts files into fixed, aligned chunks and stores the new ones
// with a fixed number of workers. Its memory comes from a memoryPool,
// shared with the other VMs of the run: chunk buffers for the reader and
// chunk writers for the workers, taken chunk by chunk.
type pipeline struct {
	repo      *repository.Repository
	index     *repository.Index
	chunkSize int64
	workers   int
	mem       *memoryPool
	progress  func(n int64)

	mu      sync.Mutex
	objects map[string]repository.StoredObject

	bytesRead, bytesUploaded            atomic.Int64
	chunksNew, chunksKnown, chunksZeros atomic.Int64
	bytesSkipped, chunksReused          atomic.Int64
}

// newPipeline returns a pipeline with workers workers drawing on mem; nil
// mem gives it a pool of its own, sized for one VM.
func newPipeline(repo *repository.Repository, index *repository.Index, workers int, mem *memoryPool, progress func(int64)) *pipeline {
	if workers < 1 {
		workers = 1
	}
	if mem == nil {
		mem = newMemoryPool(repo, workers, 1, 0)
	}
	return &pipeline{
		repo:      repo,
		index:     index,
		chunkSize: repo.Config().ChunkSize,
		workers:   workers,
		mem:       mem,
		progress:  progress,
		objects:   map[string]repository.StoredObject{},
	}
}

// close is kept for symmetry with the pool's owner: the pipeline holds
// nothing between files.
func (p *pipeline) close() {}

func (p *pipeline) stats() Stats {
	return Stats{
		BytesRead:     p.bytesRead.Load(),
		BytesUploaded: p.bytesUploaded.Load(),
		ChunksNew:     p.chunksNew.Load(),
		ChunksKnown:   p.chunksKnown.Load(),
		ChunksZero:    p.chunksZeros.Load(),
		BytesSkipped:  p.bytesSkipped.Load(),
		ChunksReused:  p.chunksReused.Load(),
	}
}

// job is one chunk on its way through the pipeline. Both the worker that
// stores it and the hasher of the whole file read its buffer; the last of
// them to finish gives it back to the pool.
type job struct {
	index int
	data  []byte
	refs  *atomic.Int32
}

func (f *fileChunks) done(j job) {
	if j.refs.Add(-1) == 0 {
		f.p.mem.putBuffer(j.data)
	}
}

// chunkSource hands out a file's chunks in order: Next fills buf with the
// next one (shorter only at the end of the file) and says io.EOF, with no
// data, after the last. vsphere.ChunkReader is one: it resumes a cut
// transfer at the chunk it was reading.
type chunkSource interface {
	Next(ctx context.Context, buf []byte) (int, error)
}

// knownChunks is a chunkSource that hands over some chunks without data,
// their manifest entry being known without reading them: the previous
// backup's chunk where Changed Block Tracking reports no change, a zero
// chunk where it reports nothing allocated.
type knownChunks interface {
	chunkSource
	// Known returns the entry, stored object (for a non-zero entry) and
	// plaintext size of the next chunk when it is known, and moves past
	// it; ok false means the next chunk must be read with Next.
	Known() (entry string, so repository.StoredObject, size int64, ok bool)
}

// readerChunks cuts an io.Reader into chunks; a reader that fails ends the
// file with that error.
type readerChunks struct{ r eofReader }

func (rc *readerChunks) Next(_ context.Context, buf []byte) (int, error) {
	if rc.r.err == io.EOF {
		return 0, io.EOF
	}
	// io.ReadFull says ErrUnexpectedEOF both at a file's short last chunk
	// and when the reader itself failed that way (an HTTP body cut off
	// before its Content-Length). Only the reader's own io.EOF ends a file.
	n, err := io.ReadFull(&rc.r, buf)
	switch {
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && rc.r.err == io.EOF:
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	case err != nil:
		return n, err
	}
	return n, nil
}

// store reads r to its end and returns the file's manifest entry (without
// name and type).
func (p *pipeline) store(ctx context.Context, r io.Reader) (size int64, sum string, chunks []string, err error) {
	return p.storeChunks(ctx, &readerChunks{r: eofReader{r: r}})
}

// storeChunks stores every chunk src hands out and returns the file's
// manifest entry (without name and type). A failure of any worker stops the
// reader and the others.
//
// Three stages overlap: the reader fills buffers from src, a hasher hashes
// the whole file in order, and the workers hash, compress, encrypt and
// upload chunks in any order. Reading no longer waits for the file's hash
// (a stage as costly as reading over TLS on a busy host).
func (p *pipeline) storeChunks(ctx context.Context, src chunkSource) (size int64, sum string, chunks []string, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	f := &fileChunks{p: p, jobs: make(chan job), hashq: make(chan job, p.workers+1), h: sha256.New()}
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx, cancel)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := range f.hashq {
			f.h.Write(j.data)
			f.done(j)
		}
	}()
	readErr := f.read(ctx, src)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return 0, "", nil, cause
	}
	if readErr != nil {
		return 0, "", nil, readErr
	}
	if f.partial {
		// Not every byte went through the hash: there is no whole-file
		// SHA-256 to record (see repository.File).
		return f.size, "", f.results, nil
	}
	return f.size, hex.EncodeToString(f.h.Sum(nil)), f.results, nil
}

// fileChunks is one file going through the pipeline: the reader cuts it
// into jobs, the workers store them and note each chunk's entry by index,
// the hasher hashes them in order.
type fileChunks struct {
	p     *pipeline
	jobs  chan job
	hashq chan job
	h     hash.Hash
	size  int64
	// partial: some chunks were known without reading (knownChunks).
	partial bool

	mu      sync.Mutex
	results []string
}

// work stores chunks until the reader closes jobs. A failure cancels ctx
// with its cause; the worker keeps draining so the reader never blocks.
func (f *fileChunks) work(ctx context.Context, cancel context.CancelCauseFunc) {
	p := f.p
	for j := range f.jobs {
		id, err := p.storeChunk(ctx, j.data)
		f.done(j)
		if err != nil {
			cancel(err)
			continue
		}
		f.mu.Lock()
		f.results[j.index] = id
		f.mu.Unlock()
		p.progress(int64(len(j.data)))
	}
}

// read hands src's chunks to the workers and the hasher, and closes their
// queues at the end of the file, on a read error or when ctx is cancelled.
func (f *fileChunks) read(ctx context.Context, src chunkSource) error {
	p := f.p
	defer close(f.jobs)
	defer close(f.hashq)
	known, _ := src.(knownChunks)
	for i := 0; ; i++ {
		if known != nil {
			if entry, so, n, ok := known.Known(); ok {
				if err := f.reuse(ctx, entry, so, n); err != nil {
					return err
				}
				continue
			}
		}
		buf, err := p.mem.buffer(ctx)
		if err != nil {
			return err
		}
		n, err := src.Next(ctx, buf[:p.chunkSize])
		if n > 0 && err == nil {
			f.size += int64(n)
			p.bytesRead.Add(int64(n))
			f.mu.Lock()
			f.results = append(f.results, "")
			f.mu.Unlock()
			j := job{index: i, data: buf[:n], refs: new(atomic.Int32)}
			j.refs.Store(2)
			// The hasher's queue holds a few chunks: the hasher keeps
			// pace with the reader, and a worker that fails stops both.
			select {
			case f.hashq <- j:
			case <-ctx.Done():
				p.mem.putBuffer(buf)
				return context.Cause(ctx)
			}
			select {
			case f.jobs <- j:
			case <-ctx.Done():
				f.done(j)
				return context.Cause(ctx)
			}
		} else {
			p.mem.putBuffer(buf)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read after %d bytes: %w", f.size, err)
		}
	}
}

// reuse appends a chunk known without reading it to the file.
func (f *fileChunks) reuse(ctx context.Context, entry string, so repository.StoredObject, n int64) error {
	p := f.p
	if entry == repository.ZeroChunk {
		p.chunksZeros.Add(1)
	} else {
		id, err := repository.ParseChunkID(entry)
		if err != nil {
			return fmt.Errorf("reuse chunk %q: %w", entry, err)
		}
		if so, err = p.repo.EnsureRetained(ctx, id, so); err != nil {
			return fmt.Errorf("extend retention of chunk %s: %w", id, err)
		}
		p.mu.Lock()
		p.objects[entry] = so
		p.mu.Unlock()
		p.chunksReused.Add(1)
	}
	f.partial = true
	f.size += n
	p.bytesSkipped.Add(n)
	f.mu.Lock()
	f.results = append(f.results, entry)
	f.mu.Unlock()
	p.progress(n)
	return nil
}

// eofReader remembers the error its reader returned, so a clean end of
// file can be told from a transfer cut short.
type eofReader struct {
	r   io.Reader
	err error
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// storeChunk returns the chunk's manifest entry, uploading it unless it is
// all zeros or already stored.
func (p *pipeline) storeChunk(ctx context.Context, data []byte) (string, error) {
	if repository.IsZero(data) {
		p.chunksZeros.Add(1)
		return repository.ZeroChunk, nil
	}
	id := repository.ChunkID(sha256.Sum256(data))
	so, known := p.index.Lookup(id)
	if known {
		p.chunksKnown.Add(1)
		renewed, err := p.repo.EnsureRetained(ctx, id, so)
		if err != nil {
			return "", fmt.Errorf("extend retention of chunk %s: %w", id, err)
		}
		if renewed != so {
			so = renewed
			p.index.Add(id, so)
		}
	} else {
		w, err := p.mem.writer(ctx)
		if err != nil {
			return "", err
		}
		so, err = w.Put(ctx, id, data)
		p.mem.putWriter(w)
		if err != nil {
			return "", fmt.Errorf("store chunk %s: %w", id, err)
		}
		p.index.Add(id, so)
		p.chunksNew.Add(1)
		p.bytesUploaded.Add(so.StoredSize)
	}
	key := id.String()
	p.mu.Lock()
	p.objects[key] = so
	p.mu.Unlock()
	return key, nil
}
