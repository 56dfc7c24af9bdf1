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
}

// pipeline cuts files into fixed, aligned chunks and stores the new ones
// with a fixed pool of workers. Memory is bounded by the buffer pool:
// workers+2 chunk buffers, whatever the file size.
type pipeline struct {
	repo      *repository.Repository
	index     *repository.Index
	chunkSize int64
	writers   []*repository.ChunkWriter
	bufs      chan []byte
	progress  func(n int64)

	mu      sync.Mutex
	objects map[string]repository.StoredObject

	bytesRead, bytesUploaded            atomic.Int64
	chunksNew, chunksKnown, chunksZeros atomic.Int64
}

func newPipeline(repo *repository.Repository, index *repository.Index, workers int, progress func(int64)) *pipeline {
	if workers < 1 {
		workers = 1
	}
	cs := repo.Config().ChunkSize
	p := &pipeline{
		repo:      repo,
		index:     index,
		chunkSize: cs,
		bufs:      make(chan []byte, workers+2),
		progress:  progress,
		objects:   map[string]repository.StoredObject{},
	}
	for range workers {
		p.writers = append(p.writers, repo.NewChunkWriter())
	}
	for range workers + 2 {
		p.bufs <- make([]byte, cs)
	}
	return p
}

func (p *pipeline) close() {
	for _, w := range p.writers {
		w.Close()
	}
}

func (p *pipeline) stats() Stats {
	return Stats{
		BytesRead:     p.bytesRead.Load(),
		BytesUploaded: p.bytesUploaded.Load(),
		ChunksNew:     p.chunksNew.Load(),
		ChunksKnown:   p.chunksKnown.Load(),
		ChunksZero:    p.chunksZeros.Load(),
	}
}

type job struct {
	index int
	data  []byte
}

// chunkSource hands out a file's chunks in order: Next fills buf with the
// next one (shorter only at the end of the file) and says io.EOF, with no
// data, after the last. vsphere.ChunkReader is one: it resumes a cut
// transfer at the chunk it was reading.
type chunkSource interface {
	Next(ctx context.Context, buf []byte) (int, error)
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
func (p *pipeline) storeChunks(ctx context.Context, src chunkSource) (size int64, sum string, chunks []string, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	f := &fileChunks{p: p, jobs: make(chan job), h: sha256.New()}
	var wg sync.WaitGroup
	for _, w := range p.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx, cancel, w)
		}()
	}
	readErr := f.read(ctx, src)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return 0, "", nil, cause
	}
	if readErr != nil {
		return 0, "", nil, readErr
	}
	return f.size, hex.EncodeToString(f.h.Sum(nil)), f.results, nil
}

// fileChunks is one file going through the pipeline: the reader cuts it
// into jobs, the workers store them and note each chunk's entry by index.
type fileChunks struct {
	p    *pipeline
	jobs chan job
	h    hash.Hash
	size int64

	mu      sync.Mutex
	results []string
}

// work stores chunks until the reader closes jobs. A failure cancels ctx
// with its cause; the worker keeps draining so the reader never blocks.
func (f *fileChunks) work(ctx context.Context, cancel context.CancelCauseFunc, w *repository.ChunkWriter) {
	p := f.p
	for j := range f.jobs {
		id, err := p.storeChunk(ctx, w, j.data)
		p.bufs <- j.data[:cap(j.data)]
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

// read hands src's chunks to the workers as jobs, hashing the whole file on
// the way, and closes jobs at the end of the file, on a read error or when
// ctx is cancelled.
func (f *fileChunks) read(ctx context.Context, src chunkSource) error {
	p := f.p
	defer close(f.jobs)
	for i := 0; ; i++ {
		var buf []byte
		select {
		case buf = <-p.bufs:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		n, err := src.Next(ctx, buf[:p.chunkSize])
		if n > 0 && err == nil {
			f.h.Write(buf[:n])
			f.size += int64(n)
			p.bytesRead.Add(int64(n))
			f.mu.Lock()
			f.results = append(f.results, "")
			f.mu.Unlock()
			select {
			case f.jobs <- job{index: i, data: buf[:n]}:
			case <-ctx.Done():
				p.bufs <- buf
				return context.Cause(ctx)
			}
		} else {
			p.bufs <- buf
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read after %d bytes: %w", f.size, err)
		}
	}
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
func (p *pipeline) storeChunk(ctx context.Context, w *repository.ChunkWriter, data []byte) (string, error) {
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
		var err error
		so, err = w.Put(ctx, id, data)
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
