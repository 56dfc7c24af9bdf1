package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// DefaultWorkers is the number of chunk decoders per restore: enough to
// keep a datastore upload busy on two cores (age and zstd decode at well
// over 1 GB/s per core).
const DefaultWorkers = 4

// streamer rebuilds files from their chunks. Workers download, verify and
// decode chunks in parallel; one writer hands them on in file order. At most
// inFlight chunks are decoded ahead of the writer, so memory is bounded by
// about (inFlight + 3*workers) chunk sizes whatever the file size.
type streamer struct {
	m         *repository.Manifest
	chunkSize int64
	readers   []*repository.ChunkReader
	inFlight  int
	// zero is one chunk of zeros, shared read-only by every file: zero
	// chunks are written without reading the repository.
	zero []byte
	bufs chan []byte // spare chunk buffers
}

func newStreamer(repo *repository.Repository, m *repository.Manifest, workers int) *streamer {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	s := &streamer{
		m:         m,
		chunkSize: m.ChunkSize,
		inFlight:  2 * workers,
		zero:      make([]byte, m.ChunkSize),
		bufs:      make(chan []byte, 2*workers),
	}
	for range workers {
		s.readers = append(s.readers, repo.NewChunkReader())
	}
	return s
}

func (s *streamer) close() {
	for _, r := range s.readers {
		r.Close()
	}
}

func (s *streamer) getBuf() []byte {
	select {
	case b := <-s.bufs:
		return b
	default:
		return make([]byte, 0, s.chunkSize)
	}
}

func (s *streamer) putBuf(b []byte) {
	if b == nil {
		return
	}
	select {
	case s.bufs <- b[:0]:
	default:
	}
}

// slot is one chunk on its way from a worker to the writer.
type slot struct {
	index int
	zero  bool
	buf   []byte
	done  chan error // buffered: workers never wait for the writer
}

// chunkLen is the plaintext length of chunk i of f.
func (s *streamer) chunkLen(f repository.File, i int) int64 {
	if n := f.Size - int64(i)*s.chunkSize; n < s.chunkSize {
		return n
	}
	return s.chunkSize
}

// writeFile writes the plaintext of f to w in order. Every chunk is checked
// against the manifest (stored object size and SHA-256, then plaintext
// SHA-256 = chunk ID) and the whole-file SHA-256 is checked before the last
// chunk is written, so a consumer that knows the size (an HTTP upload) never
// receives a complete but wrong file. progress is called with the bytes
// written. Errors name the file and the chunk.
func (s *streamer) writeFile(ctx context.Context, f repository.File, w io.Writer, progress func(int64)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	sem := make(chan struct{}, s.inFlight)
	order := make(chan *slot, s.inFlight)
	jobs := make(chan *slot)
	var wg sync.WaitGroup
	for _, cr := range s.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sl := range jobs {
				sl.done <- s.readChunk(ctx, cr, f, sl)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		for i, c := range f.Chunks {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			sl := &slot{index: i, done: make(chan error, 1)}
			if c == repository.ZeroChunk {
				sl.zero = true
				sl.done <- nil
			} else {
				sl.buf = s.getBuf()
				select {
				case jobs <- sl:
				case <-ctx.Done():
					return
				}
			}
			select {
			case order <- sl:
			case <-ctx.Done():
				return
			}
		}
	}()

	err := s.writeOrdered(ctx, f, w, order, sem, progress)
	cancel(err)
	wg.Wait()
	return err
}

func (s *streamer) writeOrdered(ctx context.Context, f repository.File, w io.Writer, order <-chan *slot, sem <-chan struct{}, progress func(int64)) error {
	label := fileLabel(f)
	h := sha256.New()
	last := len(f.Chunks) - 1
	checkSum := func() error {
		// A disk extent read in part through CBT has no whole-file hash:
		// each chunk's ID, checked as it is read, vouches for it.
		if got := hex.EncodeToString(h.Sum(nil)); f.SHA256 != "" && got != f.SHA256 {
			return fmt.Errorf("%s: %w: its SHA-256 is %s, the manifest recorded %s", label, ErrFileCorrupt, got, f.SHA256)
		}
		return nil
	}
	if last < 0 {
		return checkSum()
	}
	for sl := range order {
		var err error
		select {
		case err = <-sl.done:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		if err != nil {
			return err
		}
		data := sl.buf
		if sl.zero {
			data = s.zero[:s.chunkLen(f, sl.index)]
		}
		h.Write(data)
		if sl.index == last {
			if err := checkSum(); err != nil {
				return err
			}
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("%s: write: %w", label, err)
		}
		s.putBuf(sl.buf)
		<-sem
		if progress != nil {
			progress(int64(len(data)))
		}
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

// readChunk fills sl.buf with the verified plaintext of chunk sl.index.
func (s *streamer) readChunk(ctx context.Context, cr *repository.ChunkReader, f repository.File, sl *slot) error {
	id := f.Chunks[sl.index]
	errf := func(err error) error {
		return fmt.Errorf("%s: chunk %d of %d: %w", fileLabel(f), sl.index, len(f.Chunks), err)
	}
	cid, err := repository.ParseChunkID(id)
	if err != nil {
		return errf(err)
	}
	so, ok := s.m.Objects[id]
	if !ok {
		return errf(fmt.Errorf("%w: chunk %s has no stored object entry", repository.ErrCorruptManifest, id))
	}
	plain, err := cr.Read(ctx, cid, &so, sl.buf)
	if err != nil {
		return errf(err)
	}
	if want := s.chunkLen(f, sl.index); int64(len(plain)) != want {
		return errf(fmt.Errorf("%w: chunk %s is %d bytes, want %d", repository.ErrChunkCorrupt, id, len(plain), want))
	}
	sl.buf = plain
	return nil
}

// fileLabel names a backed-up file as "[ds] dir/name", as users know it.
func fileLabel(f repository.File) string {
	if f.Dir == "" {
		return fmt.Sprintf("[%s] %s", f.Datastore, f.Name)
	}
	return fmt.Sprintf("[%s] %s/%s", f.Datastore, f.Dir, f.Name)
}
