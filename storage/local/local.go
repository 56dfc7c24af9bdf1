// Package local stores repository objects as files in a directory.
//
// Puts write a temporary file beside the target, fsync it, rename it into
// place and fsync the directory, so a crash or a cancelled put never leaves a
// partial object under its final name. Temporary files carry a ".tmp-" prefix
// that List never reports.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

const tmpPrefix = ".tmp-"

// Backend is a storage.Backend on a local directory.
type Backend struct {
	root string
	// full, when set, is a disk filling up (see FillUpAfter).
	full *fullDisk
}

// fullDisk fails writes of objects under prefix once limit bytes of them
// were written, as a file system out of space does: mid-write.
type fullDisk struct {
	mu      sync.Mutex
	prefix  string
	limit   int64
	written int64
}

// FillUpAfter makes the disk run out of space (syscall.ENOSPC) once n more
// bytes of objects whose names start with prefix were written: the write
// that crosses the limit stores what fits and fails, as a full file system
// does in the middle of a file. A seam for tests of what a full disk leaves.
func (b *Backend) FillUpAfter(prefix string, n int64) {
	b.full = &fullDisk{prefix: prefix, limit: n}
}

// writer is w, filling up as FillUpAfter said for object name.
func (b *Backend) writer(name string, w io.Writer) io.Writer {
	if b.full == nil || !strings.HasPrefix(name, b.full.prefix) {
		return w
	}
	return fullWriter{b.full, w}
}

type fullWriter struct {
	d *fullDisk
	w io.Writer
}

func (f fullWriter) Write(p []byte) (int, error) {
	f.d.mu.Lock()
	room := f.d.limit - f.d.written
	n := int64(len(p))
	if n > room {
		n = max(room, 0)
	}
	f.d.written += n
	f.d.mu.Unlock()
	k, err := f.w.Write(p[:n])
	if err == nil && k < len(p) {
		err = &fs.PathError{Op: "write", Path: "(repository)", Err: syscall.ENOSPC}
	}
	return k, err
}

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Cleaner = (*Backend)(nil)
)

// New returns a backend rooted at dir, creating the directory when missing.
func New(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("local repository: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local repository %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("local repository %s: %w", abs, err)
	}
	return &Backend{root: abs}, nil
}

// Location returns the directory path.
func (b *Backend) Location() string { return b.root }

// Close does nothing: a directory holds no resources.
func (b *Backend) Close() error { return nil }

func (b *Backend) path(name string) (string, error) {
	if err := storage.ValidateName(name); err != nil {
		return "", err
	}
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, tmpPrefix) {
			return "", fmt.Errorf("%w: %q: %q prefix is reserved", storage.ErrInvalidName, name, tmpPrefix)
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return b.put(ctx, name, r, size, false)
}

// PutIfAbsent implements storage.Backend. Exclusivity comes from link(2),
// which fails when the target exists, after the content is complete on disk.
func (b *Backend) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	return b.put(ctx, name, r, size, true)
}

func (b *Backend) put(ctx context.Context, name string, r io.Reader, size int64, exclusive bool) (err error) {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(b.writer(name, f), ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %s: read %d bytes, expected %d: %w", name, n, size, io.ErrUnexpectedEOF)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if exclusive {
		if err := os.Link(tmp, p); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("put %s: %w", name, storage.ErrExists)
			}
			return fmt.Errorf("put %s: %w", name, err)
		}
		_ = os.Remove(tmp)
	} else if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: fsync directory: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when the context ends, so a cancelled put of a
// large object returns promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, translate(name, err)
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, storage.ErrNotFound)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("get %s: %w", name, err)
		}
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	p, err := b.path(name)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.ObjectInfo{}, translate(name, err)
	}
	if fi.IsDir() {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements storage.Backend. It walks only the directory that can hold
// matches, so listing "data/ab/" does not read the whole repository.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		return fn(storage.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	return err
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func translate(name string, err error) error {
	// ENOTDIR: a path element is a file ("config/x"), so the object cannot exist.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w", name, storage.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// CleanStale implements storage.Cleaner: it removes temporary files that a
// killed process left behind, if they were last written before olderThan.
func (b *Backend) CleanStale(ctx context.Context, olderThan time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(olderThan) {
			return nil // gone meanwhile, or a put still running
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale temporary %s: %w", p, err)
		}
		n++
		return nil
	})
	return n, err
}
