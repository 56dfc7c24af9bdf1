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
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
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

// withRetry runs f until it succeeds, fails permanently or attempts run out,
// waiting out a doubling backoff on the policy's clock between attempts. An
// error marked retryNow is retried at once without using up an attempt
// (the caller has fixed its cause: a new session, the VM's new host) and
// callers return it at most once per cause.
func (c *Client) withRetry(ctx context.Context, f func() error) error {
	p := c.retryPolicy()
	wait := p.Initial
	var err error
	for attempt := 1; ; {
		err = f()
		if _, again := err.(retryNow); again {
			continue
		}
		if err == nil || !transient(err) || attempt >= p.Attempts {
			if pe, ok := err.(permanent); ok {
				return pe.err
			}
			return err
		}
		if err := p.sleep(ctx, wait); err != nil {
			return errors.Join(err, ctx.Err())
		}
		attempt++
		wait = min(2*wait, p.Max)
	}
}

// sleep waits d on the policy's clock (the system clock when nil), or until
// ctx ends.
func (p RetryPolicy) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	clk := p.Clock
	if clk == nil {
		clk = clock.Real()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-clk.After(d):
		return nil
	}
}

// retryNow marks an error whose cause the caller has fixed: withRetry tries
// again at once, without counting an attempt.
type retryNow struct{ err error }

func (r retryNow) Error() string { return r.err.Error() }
func (r retryNow) Unwrap() error { return r.err }

// Files is the datastore HTTP file service (/folder) along one route: a
// VM's runtime host, a chosen host, or vCenter.
//
// Through vCenter, a /folder request is served by whichever host vCenter
// picks among those that mount the datastore, and the files a running VM
// holds open (its .vmx, .nvram, log and disk extents, the base disk under a
// snapshot) are readable only on the host that owns the lock: the others
// answer 500 "Unable to access file ... since it is locked". So a VM's files
// travel through its runtime host, as `govc datastore.download -host` does:
// govmomi's Datastore.HostContext and ServiceTicket get a one-off service
// ticket from vCenter (AcquireGenericServiceTicket) and the request goes
// straight to the host's management address on port 443 (its DNS name from
// the ticket when GOVMOMI_USE_SERVICE_TICKET_HOSTNAME=true is in the URL or
// the environment). A VM moved by vMotion answers 500 on its old host:
// after a 5xx the runtime host is read again and, when it changed, the
// request is repeated there at once.
//
// Connected to a bare ESXi host, every request goes to that host. A request
// through vCenter that is refused for an ended session (401) logs in again
// and is repeated once. Files is safe for concurrent use.
type Files struct {
	c  *Client
	vm *object.VirtualMachine // nil: a fixed route

	mu       sync.Mutex
	host     *object.HostSystem // nil: through vCenter
	resolved bool
}

// VMFiles returns the file service for vm's files, routed to its runtime
// host (read at the first request, again after a 5xx).
func (c *Client) VMFiles(vm *object.VirtualMachine) *Files { return &Files{c: c, vm: vm} }

// HostFiles returns the file service routed to host; a nil host means
// through vCenter (a restore whose host vCenter will choose).
func (c *Client) HostFiles(host *object.HostSystem) *Files {
	return &Files{c: c, host: host, resolved: true}
}

// route returns the host requests go to now, nil for vCenter.
func (f *Files) route(ctx context.Context) (*object.HostSystem, error) {
	if !f.c.IsVC() {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.resolved {
		h, err := f.c.runtimeHost(ctx, f.vm)
		if err != nil {
			return nil, err
		}
		f.host, f.resolved = h, true
	}
	return f.host, nil
}

// reroute reads the VM's runtime host again after failed answered 5xx and
// reports whether the VM runs elsewhere now (a vMotion).
func (f *Files) reroute(ctx context.Context, failed *object.HostSystem) bool {
	if f.vm == nil || !f.c.IsVC() {
		return false
	}
	h, err := f.c.runtimeHost(ctx, f.vm)
	if err != nil {
		return false
	}
	f.mu.Lock()
	f.host, f.resolved = h, true
	f.mu.Unlock()
	return hostValue(h) != hostValue(failed)
}

func hostValue(h *object.HostSystem) string {
	if h == nil {
		return ""
	}
	return h.Reference().Value
}

// runtimeHost returns the host vm runs (or is registered) on, nil when
// vCenter names none.
func (c *Client) runtimeHost(ctx context.Context, vm *object.VirtualMachine) (*object.HostSystem, error) {
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.host"}, &m); err != nil {
		return nil, fmt.Errorf("runtime host of VM %s: %w", vm.Reference().Value, err)
	}
	if m.Runtime.Host == nil {
		return nil, nil
	}
	return object.NewHostSystem(c.Vim25(), *m.Runtime.Host), nil
}

// transfer is one datastore file request.
type transfer struct {
	op     string // for errors: "download", "stat", "upload"
	method string
	ds, p  string
	hdr    http.Header
	body   io.Reader
	size   int64
	// rewind, when set, resets body before each attempt after the first;
	// a body without it can be sent once only.
	rewind func() error
}

func (t *transfer) String() string { return fmt.Sprintf("[%s] %s", t.ds, t.p) }

// roundTrip sends t along f's route until it gets a 2xx answer, which it
// returns with its body open. Transient failures are retried per the
// client's policy; an ended session and a vMotion are fixed and retried at
// once (see Files).
func (f *Files) roundTrip(ctx context.Context, t transfer) (*http.Response, error) {
	var (
		res               *http.Response
		attempts          int
		renewed, rerouted bool
	)
	err := f.c.withRetry(ctx, func() error {
		attempts++
		if err := t.prepare(attempts); err != nil {
			return err
		}
		host, err := f.route(ctx)
		if err != nil {
			return err
		}
		gen := f.c.keeper.generation()
		if host == nil && t.body != nil && t.rewind == nil {
			// A 401 could not be retried with this body: make sure
			// of the session first.
			if err := f.c.ensureSession(ctx); err != nil {
				return permanent{fmt.Errorf("%s %s: %w", t.op, t.String(), err)}
			}
			gen = f.c.keeper.generation()
		}
		r, err := f.send(ctx, host, t)
		if err == nil && r.StatusCode >= 200 && r.StatusCode < 300 {
			res = r
			return nil
		}
		if err != nil {
			return t.once(fmt.Errorf("%s %s: %w", t.op, t.String(), err))
		}
		serr := statusError(r, t)
		switch {
		case r.StatusCode == http.StatusUnauthorized && host == nil && !renewed:
			renewed = true
			if rerr := f.c.keeper.renew(ctx, gen); rerr != nil {
				return permanent{fmt.Errorf("%w (the vCenter session had ended; logging in again failed: %v)", serr, rerr)}
			}
			return t.once(retryNow{serr})
		case r.StatusCode >= 500 && f.reroute(ctx, host) && !rerouted:
			rerouted = true
			return t.once(retryNow{serr})
		}
		return t.once(serr)
	})
	return res, err
}

// prepare rewinds the body before a repeated attempt.
func (t *transfer) prepare(attempt int) error {
	if attempt == 1 || t.rewind == nil {
		return nil
	}
	if err := t.rewind(); err != nil {
		return permanent{fmt.Errorf("%s %s: rewind: %w", t.op, t.String(), err)}
	}
	return nil
}

// once marks err permanent when t's body cannot be sent again.
func (t *transfer) once(err error) error {
	if t.body != nil && t.rewind == nil {
		if rn, ok := err.(retryNow); ok {
			err = rn.err
		}
		return permanent{err}
	}
	return err
}

// statusError drains and closes a failed answer and describes it.
func statusError(r *http.Response, t transfer) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4096))
	_ = r.Body.Close()
	return &httpStatusError{Op: t.op, Path: t.String(), Status: r.StatusCode, Text: r.Status}
}

// send makes one request for t to host (nil: vCenter).
func (f *Files) send(ctx context.Context, host *object.HostSystem, t transfer) (*http.Response, error) {
	ds, err := f.c.FindDatastore(ctx, t.ds)
	if err != nil {
		return nil, err
	}
	tctx := ctx
	if host != nil {
		tctx = ds.HostContext(ctx, host)
	}
	u, ticket, err := ds.ServiceTicket(tctx, t.p, t.method)
	if err != nil {
		return nil, permanent{fmt.Errorf("service ticket for %s on %s: %w", t.String(), f.c.hostLabel(ctx, host), err)}
	}
	return f.c.do(ctx, t.method, u, ticket, t.hdr, t.body, t.size)
}

// hostLabel names host for messages.
func (c *Client) hostLabel(ctx context.Context, host *object.HostSystem) string {
	if host == nil {
		return c.host
	}
	if name, err := host.ObjectName(ctx); err == nil {
		return "host " + name
	}
	return "host " + host.Reference().Value
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
	start := c.now()
	res, err := c.Vim25().Client.Client.Do(req)
	return c.logTransfer(ctx, method, u, start, res, err), err
}

// Download opens [dsName] p for reading through vCenter; see Files.Download.
func (c *Client) Download(ctx context.Context, dsName, p string, offset, length int64) (io.ReadCloser, int64, error) {
	return c.HostFiles(nil).Download(ctx, dsName, p, offset, length)
}

// Download opens [dsName] p for reading. With offset > 0 or length >= 0 it
// sends an HTTP Range request for [offset, offset+length) (length < 0: to
// the end). It returns the body, the total file size, and an error wrapping
// ErrFileNotFound when the file does not exist. Establishing the request is
// retried on transient errors; the caller closes the body.
func (f *Files) Download(ctx context.Context, dsName, p string, offset, length int64) (io.ReadCloser, int64, error) {
	if length == 0 {
		size, err := f.size(ctx, dsName, p)
		return io.NopCloser(strings.NewReader("")), size, err
	}
	hdr := http.Header{}
	if offset > 0 || length > 0 {
		if length > 0 {
			hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
		} else {
			hdr.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
	}
	t := transfer{op: "download", method: http.MethodGet, ds: dsName, p: p, hdr: hdr}
	res, err := f.roundTrip(ctx, t)
	if err != nil {
		return nil, 0, err
	}
	switch res.StatusCode {
	case http.StatusOK:
		if offset > 0 {
			// The server ignored the range: never hand back the wrong bytes.
			_ = res.Body.Close()
			return nil, 0, fmt.Errorf("download %s: server ignored the Range request", t.String())
		}
		if length > 0 && res.ContentLength > length {
			return limitCloser{io.LimitReader(res.Body, length), res.Body}, res.ContentLength, nil
		}
		return res.Body, res.ContentLength, nil
	case http.StatusPartialContent:
		return res.Body, totalFromContentRange(res.Header.Get("Content-Range")), nil
	default:
		return nil, 0, statusError(res, t)
	}
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

// size asks the file service for the size with a HEAD request.
func (f *Files) size(ctx context.Context, dsName, p string) (int64, error) {
	res, err := f.roundTrip(ctx, transfer{op: "stat", method: http.MethodHead, ds: dsName, p: p})
	if err != nil {
		return 0, err
	}
	_ = res.Body.Close()
	return res.ContentLength, nil
}

// Upload streams size bytes from r to [dsName] p through vCenter; see
// Files.Upload.
func (c *Client) Upload(ctx context.Context, dsName, p string, r io.Reader, size int64) error {
	return c.HostFiles(nil).Upload(ctx, dsName, p, r, size)
}

// Upload streams size bytes from r to [dsName] p, creating missing parent
// folders and replacing an existing file. r is read once, never buffered
// whole; the request is retried on transient errors only when r is an
// io.Seeker (it is rewound to where it started).
func (f *Files) Upload(ctx context.Context, dsName, p string, r io.Reader, size int64) error {
	t := transfer{op: "upload", method: http.MethodPut, ds: dsName, p: p, body: io.NopCloser(r), size: size}
	if seeker, ok := r.(io.Seeker); ok {
		if start, err := seeker.Seek(0, io.SeekCurrent); err == nil {
			t.rewind = func() error {
				_, err := seeker.Seek(start, io.SeekStart)
				return err
			}
		}
	}
	res, err := f.roundTrip(ctx, t)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	_ = res.Body.Close()
	return nil
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
		info, err := c.waitTask(ctx, task)
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
		_, err = c.waitTask(ctx, task)
	}
	if err != nil {
		if fault.Is(err, &types.FileNotFound{}) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
