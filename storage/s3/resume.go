package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"

	"github.com/minio/minio-go/v7"
)

// minio-go retries a request until its answer's headers arrive; a body that
// breaks off afterwards (a connection reset, a server restart, a proxy
// timing out) is the reader's problem. These readers continue where the
// answer broke off, a bounded number of times.

// brokenOff says whether err ended an answer's body early in a way a new
// request may cure: the connection was reset or closed while it was read.
// Not the end, not a cancellation, not an S3 error answer and not a failure
// to connect (minio-go retried those already).
func brokenOff(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil || minio.ToErrorResponse(err).StatusCode != 0 {
		return false
	}
	var oe *net.OpError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &oe) && oe.Op == "read")
}

// resumingReader is the body of a GET that, when it breaks off, asks again
// for the rest with a ranged GET of the same object version (If-Match its
// ETag), up to resumes times.
type resumingReader struct {
	ctx       context.Context
	b         *Backend
	name, key string
	etag      string
	rc        io.ReadCloser
	pos       int64 // offset of the next byte in the object
	end       int64 // offset after the last byte wanted; -1: the object's end
	resumes   int   // left
	broken    error // the error the current body broke off with
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.broken != nil {
			if err := r.resume(); err != nil {
				return 0, err
			}
		}
		if r.end >= 0 && r.pos >= r.end {
			return 0, io.EOF
		}
		n, err := r.rc.Read(p)
		r.pos += int64(n)
		if brokenOff(r.ctx, err) && r.resumes > 0 {
			r.broken = err
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			err = fmt.Errorf("read %s at %d: %w", r.name, r.pos, err)
		}
		return n, err
	}
}

// resume replaces the broken body with the rest of the object.
func (r *resumingReader) resume() error {
	r.resumes--
	_ = r.rc.Close()
	r.rc = io.NopCloser(errReader{r.broken})
	var opts minio.GetObjectOptions
	if r.etag != "" {
		if err := opts.SetMatchETag(r.etag); err != nil {
			return fmt.Errorf("read %s: %w", r.name, err)
		}
	}
	end := int64(0) // SetRange(pos, 0): to the end
	if r.end >= 0 {
		end = r.end - 1
	}
	if err := opts.SetRange(r.pos, end); err != nil {
		return fmt.Errorf("read %s: %w", r.name, err)
	}
	rc, _, _, err := r.b.core.GetObject(r.ctx, r.b.bucket, r.key, opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		switch {
		case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			// It broke off exactly at the end.
			r.rc, r.broken = io.NopCloser(eofReader{}), nil
			return nil
		case resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed:
			return fmt.Errorf("read %s: the object changed while it was read (after %q): %w", r.name, r.broken, err)
		}
		return fmt.Errorf("read %s at %d, after %q: %w", r.name, r.pos, r.broken, translateError("get", r.name, err))
	}
	r.rc, r.broken = rc, nil
	return nil
}

func (r *resumingReader) Close() error { return r.rc.Close() }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// attemptsKey marks a context whose HTTP requests attemptCounter watches.
type attemptsKey struct{}

// countAttempts returns a context under which attemptCounter counts the
// requests that may have been carried out although their answer was lost:
// the server got the whole request, then the connection failed before an
// answer came. A request cut off while its body was still being sent (a
// server may answer 412 early and close) does not count: the server did
// not take it.
func countAttempts(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, attemptsKey{}, n), n
}

// attemptCounter is the client's transport, watching the requests of
// contexts made by countAttempts.
type attemptCounter struct{ next http.RoundTripper }

func (a attemptCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	n, ok := req.Context().Value(attemptsKey{}).(*atomic.Int32)
	if !ok {
		return a.next.RoundTrip(req)
	}
	sent := &sentBody{ReadCloser: req.Body}
	if req.Body == nil || req.ContentLength == 0 {
		sent.ReadCloser = nil
	} else {
		req = req.Clone(req.Context())
		req.Body = sent
	}
	resp, err := a.next.RoundTrip(req)
	if err != nil && (sent.ReadCloser == nil || sent.n.Load() >= req.ContentLength) {
		n.Add(1)
	}
	return resp, err
}

// sentBody counts the bytes the transport read from a request body.
type sentBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (s *sentBody) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	s.n.Add(int64(n))
	return n, err
}
