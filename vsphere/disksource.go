package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// DiskSource is a readable disk (or any large file) of known size, read in
// ranges. The backup pipeline depends only on this, so a second transport
// (an NFC export lease, VDDK NBDSSL) can replace the datastore HTTP service
// when a host refuses to serve a locked base disk, and changed block
// tracking can read just the changed ranges.
type DiskSource interface {
	// Size is the length in bytes.
	Size() int64
	// Open returns a reader for [off, off+length). A failure mid-read is
	// returned by the reader; callers retry by opening the range again
	// (ChunkReader does).
	Open(ctx context.Context, off, length int64) (io.ReadCloser, error)
}

// DatastoreFile is a DiskSource over the datastore HTTP file service, along
// the route of the Files it was opened with.
type DatastoreFile struct {
	files     *Files
	datastore string
	path      string
	size      int64
}

// OpenDatastoreFile returns a DiskSource for [dsName] p through vCenter; see
// Files.Open.
func (c *Client) OpenDatastoreFile(ctx context.Context, dsName, p string) (*DatastoreFile, error) {
	return c.HostFiles(nil).Open(ctx, dsName, p)
}

// Open returns a DiskSource for [dsName] p after asking its size
// (ErrFileNotFound when missing).
func (f *Files) Open(ctx context.Context, dsName, p string) (*DatastoreFile, error) {
	size, err := f.size(ctx, dsName, p)
	if err != nil {
		return nil, err
	}
	return &DatastoreFile{files: f, datastore: dsName, path: p, size: size}, nil
}

// Size is the file size at open time.
func (f *DatastoreFile) Size() int64 { return f.size }

// Path is "[ds] path".
func (f *DatastoreFile) Path() string { return fmt.Sprintf("[%s] %s", f.datastore, f.path) }

// String is Path, for messages.
func (f *DatastoreFile) String() string { return f.Path() }

// Open reads [off, off+length) with an HTTP Range request.
func (f *DatastoreFile) Open(ctx context.Context, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > f.size {
		return nil, fmt.Errorf("read %s: range %d+%d outside size %d", f.Path(), off, length, f.size)
	}
	rc, _, err := f.files.Download(ctx, f.datastore, f.path, off, length)
	return rc, err
}

var _ DiskSource = (*DatastoreFile)(nil)

// ChunkReader reads a DiskSource from start to end in aligned chunks (the
// repository's chunk size), streaming the rest of the file over one ranged
// request. When the transfer fails in the middle of a chunk (a connection
// reset, a body cut short, a 5xx when reopening) it opens the source again
// at the start of that chunk, the first one not yet read whole, after a
// backoff on the retry policy's clock: a dropped connection hours into a
// 1 TiB disk costs one chunk, not the backup. The attempts at one chunk are
// bounded by the policy and start over with each chunk read whole. Not safe
// for concurrent use.
type ChunkReader struct {
	src   DiskSource
	chunk int64
	retry RetryPolicy

	off     int64         // start of the next chunk
	body    io.ReadCloser // open stream positioned at off, or nil
	resumes int
}

// NewChunkReader reads src in chunks of chunkSize bytes, retrying per p
// (p.Attempts reads of a chunk at most).
func NewChunkReader(src DiskSource, chunkSize int64, p RetryPolicy) *ChunkReader {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	return &ChunkReader{src: src, chunk: chunkSize, retry: p}
}

// NewChunkReader reads src in chunks with this client's retry policy.
func (c *Client) NewChunkReader(src DiskSource, chunkSize int64) *ChunkReader {
	return NewChunkReader(src, chunkSize, c.retryPolicy())
}

// Next reads the next chunk into buf, which must hold a chunk, and returns
// its length: the chunk size, less for the last chunk. After the last chunk
// it returns 0 and io.EOF. Errors name the offset of the chunk.
func (r *ChunkReader) Next(ctx context.Context, buf []byte) (int, error) {
	want := min(r.chunk, r.src.Size()-r.off)
	if want <= 0 {
		r.closeBody()
		return 0, io.EOF
	}
	if int64(len(buf)) < want {
		return 0, fmt.Errorf("read chunk at offset %d: buffer of %d bytes for a %d-byte chunk", r.off, len(buf), want)
	}
	buf = buf[:want]
	wait := r.retry.Initial
	for attempt := 1; ; attempt++ {
		err := r.fill(ctx, buf)
		if err == nil {
			r.off += want
			return int(want), nil
		}
		r.closeBody()
		if !transient(err) || attempt >= r.retry.Attempts {
			var pe permanent
			if errors.As(err, &pe) {
				err = pe.err
			}
			return 0, fmt.Errorf("read chunk at offset %d (after %d attempts): %w", r.off, attempt, err)
		}
		if err := r.retry.sleep(ctx, wait); err != nil {
			return 0, fmt.Errorf("read chunk at offset %d: %w", r.off, err)
		}
		wait = min(2*wait, r.retry.Max)
		r.resumes++
	}
}

// fill reads buf whole from the open stream, opening one from r.off to the
// end of the source when there is none.
func (r *ChunkReader) fill(ctx context.Context, buf []byte) error {
	if r.body == nil {
		body, err := r.src.Open(ctx, r.off, r.src.Size()-r.off)
		if err != nil {
			// Opening retries transient failures itself.
			return permanent{err}
		}
		r.body = body
	}
	n, err := io.ReadFull(r.body, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// The stream ended early although the source is longer: a
		// transfer cut short, worth resuming.
		return fmt.Errorf("stream ended after %d of %d bytes: %w", n, len(buf), io.ErrUnexpectedEOF)
	}
	return err
}

// Resumes is how many times the reader reopened the source after a failure.
func (r *ChunkReader) Resumes() int { return r.resumes }

// Close releases the open stream, if any.
func (r *ChunkReader) Close() error {
	r.closeBody()
	return nil
}

func (r *ChunkReader) closeBody() {
	if r.body != nil {
		_ = r.body.Close()
		r.body = nil
	}
}
