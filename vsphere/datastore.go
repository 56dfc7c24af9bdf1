package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// RetryPolicy bounds retries of datastore HTTP requests on transient errors.
type RetryPolicy struct {
	Attempts int           // total attempts, >= 1
	Initial  time.Duration // first backoff, doubled each retry
	Max      time.Duration // backoff cap
	// Clock waits out the backoff; nil means the system clock (tests
	// drive a fake one instead of sleeping).
	Clock clock.Clock
}

// DefaultRetry is used by the datastore file functions: four attempts over
// about seven seconds, enough to ride out a hostd restart hiccup without
// stalling a nightly run on a dead host.
var DefaultRetry = RetryPolicy{Attempts: 4, Initial: 500 * time.Millisecond, Max: 4 * time.Second}

// SetRetry replaces the retry policy of this client's datastore transfers
// (tests use a zero backoff).
func (c *Client) SetRetry(p RetryPolicy) {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	c.mu.Lock()
	c.retry = &p
	c.mu.Unlock()
}

func (c *Client) retryPolicy() RetryPolicy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retry != nil {
		return *c.retry
	}
	return DefaultRetry
}

// httpStatusError is a non-success HTTP answer of the datastore file service.
type httpStatusError struct {
	Op     string
	Path   string
	Status int
	Text   string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %s", e.Op, e.Path, e.Text)
}

func (e *httpStatusError) Is(target error) bool {
	switch target {
	case ErrFileNotFound:
		return e.Status == http.StatusNotFound
	case ErrFileRefused:
		return e.Status == http.StatusForbidden || e.Status == http.StatusConflict || e.Status == http.StatusLocked || e.Status >= 500
	}
	return false
}

// transient reports whether err is worth retrying: a 5xx, a reset or refused
// connection, a timeout, or an unexpected EOF. Context cancellation never is.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe permanent
	if errors.As(err, &pe) {
		return false
	}
	var se *httpStatusError
	if errors.As(err, &se) {
		return se.Status >= 500
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// withRetry runs f until it succeeds, fails permanently or attempts run out.
func (c *Client) withRetry(ctx context.Context, f func() error) error {
	p := c.retryPolicy()
	clk := p.Clock
	if clk == nil {
		clk = clock.Real()
	}
	wait := p.Initial
	var err error
	for attempt := 1; ; attempt++ {
		err = f()
		if err == nil || !transient(err) || attempt >= p.Attempts {
			return err
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-clk.After(wait):
			}
		}
		wait *= 2
		if wait > p.Max {
			wait = p.Max
		}
	}
}

// fileURL returns the file service URL and optional host ticket for a file.
func (c *Client) fileURL(ctx context.Context, dsName, p, method string) (*object.Datastore, *url.URL, *http.Cookie, error) {
	ds, err := c.FindDatastore(ctx, dsName)
	if err != nil {
		return nil, nil, nil, err
	}
	u, ticket, err := ds.ServiceTicket(ctx, p, method)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s [%s] %s: service ticket: %w", method, dsName, p, err)
	}
	return ds, u, ticket, nil
}

func (c *Client) do(ctx context.Context, method string, u *url.URL, ticket *http.Cookie, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if ticket != nil {
		req.AddCookie(ticket)
		req.Close = true // ESX tickets are per connection
	}
	return c.Vim25().Client.Client.Do(req)
}

// Download opens [dsName] p for reading. With offset > 0 or length >= 0 it
// sends an HTTP Range request for [offset, offset+length) (length < 0: to
// the end). It returns the body, the total file size, and an error wrapping
// ErrFileNotFound when the file does not exist. Establishing the request is
// retried on transient errors; the caller closes the body.
func (c *Client) Download(ctx context.Context, dsName, p string, offset, length int64) (io.ReadCloser, int64, error) {
	if length == 0 {
		size, err := c.fileSize(ctx, dsName, p)
		return io.NopCloser(strings.NewReader("")), size, err
	}
	var (
		body io.ReadCloser
		size int64
	)
	err := c.withRetry(ctx, func() error {
		_, u, ticket, err := c.fileURL(ctx, dsName, p, http.MethodGet)
		if err != nil {
			return err
		}
		hdr := http.Header{}
		ranged := offset > 0 || length > 0
		if ranged {
			if length > 0 {
				hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
			} else {
				hdr.Set("Range", fmt.Sprintf("bytes=%d-", offset))
			}
		}
		res, err := c.do(ctx, http.MethodGet, u, ticket, hdr, nil, 0)
		if err != nil {
			return fmt.Errorf("download [%s] %s: %w", dsName, p, err)
		}
		switch res.StatusCode {
		case http.StatusOK:
			if offset > 0 {
				// The server ignored the range: never hand back the wrong bytes.
				_ = res.Body.Close()
				return fmt.Errorf("download [%s] %s: server ignored the Range request", dsName, p)
			}
			body, size = res.Body, res.ContentLength
			if length > 0 && size > length {
				body = limitCloser{io.LimitReader(res.Body, length), res.Body}
			}
			return nil
		case http.StatusPartialContent:
			size = totalFromContentRange(res.Header.Get("Content-Range"))
			body = res.Body
			return nil
		default:
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
			_ = res.Body.Close()
			return &httpStatusError{Op: "download", Path: fmt.Sprintf("[%s] %s", dsName, p), Status: res.StatusCode, Text: res.Status}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	return body, size, nil
}

type limitCloser struct {
	io.Reader
	io.Closer
}

func totalFromContentRange(v string) int64 {
	// "bytes 0-99/1234"
	i := strings.LastIndexByte(v, '/')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// fileSize asks the file service for the size with a HEAD request.
func (c *Client) fileSize(ctx context.Context, dsName, p string) (int64, error) {
	var size int64
	err := c.withRetry(ctx, func() error {
		_, u, ticket, err := c.fileURL(ctx, dsName, p, http.MethodHead)
		if err != nil {
			return err
		}
		res, err := c.do(ctx, http.MethodHead, u, ticket, nil, nil, 0)
		if err != nil {
			return fmt.Errorf("stat [%s] %s: %w", dsName, p, err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return &httpStatusError{Op: "stat", Path: fmt.Sprintf("[%s] %s", dsName, p), Status: res.StatusCode, Text: res.Status}
		}
		size = res.ContentLength
		return nil
	})
	return size, err
}

// Upload streams size bytes from r to [dsName] p, creating missing parent
// folders and replacing an existing file. r is read once, never buffered
// whole; the request is retried on transient errors only when r is an
// io.Seeker (it is rewound to where it started).
func (c *Client) Upload(ctx context.Context, dsName, p string, r io.Reader, size int64) error {
	seeker, canRewind := r.(io.Seeker)
	var start int64
	if canRewind {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			canRewind = false
		}
	}
	attempt := 0
	err := c.withRetry(ctx, func() error {
		attempt++
		if attempt > 1 {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return permanent{fmt.Errorf("upload [%s] %s: rewind: %w", dsName, p, err)}
			}
		}
		err := c.put(ctx, dsName, p, r, size)
		if err != nil && !canRewind {
			// The body is consumed: a retry would send garbage.
			return permanent{err}
		}
		return err
	})
	var pe permanent
	if errors.As(err, &pe) {
		return pe.err
	}
	return err
}

func (c *Client) put(ctx context.Context, dsName, p string, r io.Reader, size int64) error {
	_, u, ticket, err := c.fileURL(ctx, dsName, p, http.MethodPut)
	if err != nil {
		return err
	}
	res, err := c.do(ctx, http.MethodPut, u, ticket, nil, io.NopCloser(r), size)
	if err != nil {
		return fmt.Errorf("upload [%s] %s: %w", dsName, p, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	_ = res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	}
	return &httpStatusError{Op: "upload", Path: fmt.Sprintf("[%s] %s", dsName, p), Status: res.StatusCode, Text: res.Status}
}

// permanent marks an error that must not be retried.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// FileInfo describes a datastore file or folder.
type FileInfo struct {
	Name     string // base name
	Path     string // "[ds] dir/name"
	Size     int64
	IsDir    bool
	Modified time.Time
}

// Stat returns information about [dsName] p (a file or a folder), or an
// error wrapping ErrFileNotFound.
func (c *Client) Stat(ctx context.Context, dsName, p string) (FileInfo, error) {
	p = strings.TrimSuffix(p, "/")
	dir, base := path.Split(p)
	files, err := c.search(ctx, dsName, strings.TrimSuffix(dir, "/"), base)
	if err != nil {
		return FileInfo{}, err
	}
	for _, f := range files {
		if f.Name == base {
			return f, nil
		}
	}
	return FileInfo{}, fmt.Errorf("stat [%s] %s: %w", dsName, p, ErrFileNotFound)
}

// Exists reports whether [dsName] p exists.
func (c *Client) Exists(ctx context.Context, dsName, p string) (bool, error) {
	_, err := c.Stat(ctx, dsName, p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrFileNotFound):
		return false, nil
	default:
		return false, err
	}
}

// ListFolder lists the entries of [dsName] dir (not recursive), sorted by
// name. A missing folder yields ErrFileNotFound.
func (c *Client) ListFolder(ctx context.Context, dsName, dir string) ([]FileInfo, error) {
	return c.search(ctx, dsName, strings.TrimSuffix(dir, "/"), "*")
}

func (c *Client) search(ctx context.Context, dsName, dir, pattern string) ([]FileInfo, error) {
	ds, err := c.FindDatastore(ctx, dsName)
	if err != nil {
		return nil, err
	}
	b, err := ds.Browser(ctx)
	if err != nil {
		return nil, fmt.Errorf("browse datastore %s: %w", dsName, err)
	}
	dsPath := fmt.Sprintf("[%s] %s", dsName, dir)
	spec := types.HostDatastoreBrowserSearchSpec{
		Details: &types.FileQueryFlags{FileType: true, FileSize: true, Modification: true},
		// The simulator (and ESXi for some file types) return nothing
		// without an explicit pattern.
		MatchPattern: []string{pattern},
	}
	var res types.HostDatastoreBrowserSearchResults
	err = c.withRetry(ctx, func() error {
		task, err := b.SearchDatastore(ctx, dsPath, &spec)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return err
		}
		res = info.Result.(types.HostDatastoreBrowserSearchResults)
		return nil
	})
	if err != nil {
		if fault.Is(err, &types.FileNotFound{}) {
			return nil, fmt.Errorf("list %s: %w", dsPath, ErrFileNotFound)
		}
		return nil, fmt.Errorf("list %s: %w", dsPath, err)
	}
	out := make([]FileInfo, 0, len(res.File))
	for _, f := range res.File {
		fi := f.GetFileInfo()
		info := FileInfo{Name: fi.Path, Path: path.Join(dsPath, fi.Path), Size: fi.FileSize}
		if dir == "" {
			info.Path = fmt.Sprintf("[%s] %s", dsName, fi.Path)
		}
		if fi.Modification != nil {
			info.Modified = *fi.Modification
		}
		if _, ok := f.(*types.FolderFileInfo); ok {
			info.IsDir = true
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MakeDirectory creates [dsName] dir with its parents. An existing folder
// yields an error wrapping ErrFileExists, so restore can refuse to reuse a
// home folder. (The check is explicit: with createParentDirectories the
// simulator, unlike ESXi, accepts an existing folder silently.)
func (c *Client) MakeDirectory(ctx context.Context, dsName, dir string) error {
	name := fmt.Sprintf("[%s] %s", dsName, strings.TrimSuffix(dir, "/"))
	switch ok, err := c.Exists(ctx, dsName, strings.TrimSuffix(dir, "/")); {
	case err != nil:
		return fmt.Errorf("make directory %s: %w", name, err)
	case ok:
		return fmt.Errorf("make directory %s: %w", name, ErrFileExists)
	}
	fm := object.NewFileManager(c.Vim25())
	if err := fm.MakeDirectory(ctx, name, c.dc, true); err != nil {
		if fault.Is(err, &types.FileAlreadyExists{}) {
			return fmt.Errorf("make directory %s: %w", name, ErrFileExists)
		}
		return fmt.Errorf("make directory %s: %w", name, err)
	}
	return nil
}

// DeleteFile deletes the file [dsName] p. A missing file is not an error.
func (c *Client) DeleteFile(ctx context.Context, dsName, p string) error {
	return c.deleteDatastoreFile(ctx, fmt.Sprintf("[%s] %s", dsName, p))
}

// DeleteFolder deletes [dsName] dir and everything in it. A missing folder
// is not an error.
func (c *Client) DeleteFolder(ctx context.Context, dsName, dir string) error {
	return c.deleteDatastoreFile(ctx, fmt.Sprintf("[%s] %s", dsName, strings.TrimSuffix(dir, "/")))
}

func (c *Client) deleteDatastoreFile(ctx context.Context, name string) error {
	fm := object.NewFileManager(c.Vim25())
	task, err := fm.DeleteDatastoreFile(ctx, name, c.dc)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		if fault.Is(err, &types.FileNotFound{}) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
