package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Put stores the object, replacing any previous one. Objects up to the part
// size go up as one PUT, larger ones as a multipart upload that is aborted
// on failure; either way no partial object ever becomes visible.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return b.put(ctx, name, r, size, false)
}

// PutIfAbsent is Put with If-None-Match: *, so that of concurrent writers
// exactly one wins and the others get storage.ErrExists.
func (b *Backend) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	return b.put(ctx, name, r, size, true)
}

func (b *Backend) put(ctx context.Context, name string, r io.Reader, size int64, exclusive bool) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	partSize := b.partSize
	if size > partSize*maxParts {
		// Grow parts for huge objects of known size, in whole MiB.
		partSize = ((size+maxParts-1)/maxParts + 1<<20 - 1) &^ (1<<20 - 1)
	}
	first, err := readPart(r, partSize, size)
	if err != nil {
		return fmt.Errorf("put %s: read: %w", name, err)
	}
	if int64(len(first)) < partSize || int64(len(first)) == size {
		return b.putSingle(ctx, name, key, first, exclusive)
	}
	if exclusive {
		// Cheap early answer; the condition on completion still decides.
		if _, err := b.Stat(ctx, name); err == nil {
			return fmt.Errorf("put %s: %w", name, storage.ErrExists)
		}
	}
	return b.putMultipart(ctx, name, key, r, size, partSize, first, exclusive)
}

// readPart reads the next part: up to max bytes, or exactly the remaining
// bytes of a known size. A reader ending before the announced size is an
// error (io.ErrUnexpectedEOF), so a short source never becomes an object.
func readPart(r io.Reader, max, remaining int64) ([]byte, error) {
	n := max
	if remaining >= 0 && remaining < n {
		n = remaining
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return buf, nil
	case remaining < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return buf[:got], nil // unknown size: the end of the data
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	}
	return nil, err
}

func contentMD5(p []byte) string {
	sum := md5.Sum(p)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (b *Backend) putSingle(ctx context.Context, name, key string, data []byte, exclusive bool) error {
	var opts minio.PutObjectOptions
	if exclusive {
		opts.SetMatchETagExcept("*")
	}
	ctx, lost := countAttempts(ctx)
	_, err := b.core.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), contentMD5(data), "", opts)
	retried := lost.Load() > 0
	if err != nil && exclusive && ctx.Err() == nil && minio.ToErrorResponse(err).StatusCode == 0 {
		// A server may answer 412 as soon as it sees the condition and
		// reset the connection while the body is still being sent: the
		// answer is lost with the connection. Ask whether the name is taken.
		if _, serr := b.Stat(ctx, name); serr == nil {
			if retried && b.holds(ctx, key, data) {
				return nil // ours: see below
			}
			return fmt.Errorf("put %s: %w", name, storage.ErrExists)
		}
	}
	if err != nil {
		err = translateError("put", name, err)
		if exclusive && retried && errors.Is(err, storage.ErrExists) && b.holds(ctx, key, data) {
			// Our own put, retried: an earlier attempt's answer was lost
			// (a reset, a restart) after the server stored it, and the
			// retry found the name taken, by the very bytes we meant to
			// store.
			return nil
		}
		return err
	}
	return nil
}

// holds says whether the object key has exactly data, by its ETag (the
// MD5 of a single-part upload's content on S3 without SSE-KMS). A write
// ID or a random nonce in every object the repository creates makes equal
// bytes mean the same writer.
func (b *Backend) holds(ctx context.Context, key string, data []byte) bool {
	oi, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil || int64(len(data)) != oi.Size {
		return false
	}
	sum := md5.Sum(data)
	return strings.Trim(oi.ETag, `"`) == hex.EncodeToString(sum[:])
}

// putMultipart uploads first and the rest of r as parts, up to
// partConcurrency at a time, and completes the upload (conditionally when
// exclusive). Any failure aborts the upload on a fresh context, so that a
// cancelled put leaves neither an object nor stored parts.
func (b *Backend) putMultipart(ctx context.Context, name, key string, r io.Reader, size, partSize int64, first []byte, exclusive bool) (err error) {
	uploadID, err := b.core.NewMultipartUpload(ctx, b.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return translateError("put", name, err)
	}
	defer func() {
		if err != nil {
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer acancel()
			_ = b.core.AbortMultipartUpload(actx, b.bucket, key, uploadID)
		}
	}()
	parts, err := b.uploadParts(ctx, name, key, uploadID, r, size, partSize, first)
	if err != nil {
		return err
	}
	var opts minio.PutObjectOptions
	if exclusive {
		opts.SetMatchETagExcept("*")
	}
	cctx, lost := countAttempts(ctx)
	if _, err := b.core.CompleteMultipartUpload(cctx, b.bucket, key, uploadID, parts, opts); err != nil {
		terr := translateError("put", name, err)
		retried := lost.Load() > 0 && (minio.ToErrorResponse(err).Code == "NoSuchUpload" || errors.Is(terr, storage.ErrExists))
		if (brokenOff(ctx, err) || retried) && b.holdsParts(ctx, key, parts) {
			// The completion's answer broke off after the server completed
			// the upload, or was lost and the retry found the upload gone
			// or the name taken: by our parts.
			return nil
		}
		return terr
	}
	return nil
}

// holdsParts says whether the object key is the multipart upload of parts,
// by its ETag: the MD5 of the parts' MD5s, a dash, the number of parts.
func (b *Backend) holdsParts(ctx context.Context, key string, parts []minio.CompletePart) bool {
	oi, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return false
	}
	h := md5.New()
	for _, p := range parts {
		sum, err := hex.DecodeString(strings.Trim(p.ETag, `"`))
		if err != nil {
			return false
		}
		h.Write(sum)
	}
	return strings.Trim(oi.ETag, `"`) == fmt.Sprintf("%x-%d", h.Sum(nil), len(parts))
}

// uploadParts reads r part by part (first is already read) and uploads the
// parts concurrently, returning them in order for completion. Reading stops
// at the first failure, which cancels the parts in flight.
func (b *Backend) uploadParts(ctx context.Context, name, key, uploadID string, r io.Reader, size, partSize int64, first []byte) ([]minio.CompletePart, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := &partUploads{b: b, name: name, key: key, uploadID: uploadID, cancel: cancel, sem: make(chan struct{}, partConcurrency)}
	remaining := size
	data := first
	for num := 1; ; num++ {
		if num > maxParts {
			u.fail(fmt.Errorf("put %s: more than %d parts of %d bytes", name, maxParts, partSize))
			break
		}
		if remaining >= 0 {
			remaining -= int64(len(data))
		}
		if !u.start(ctx, num, data) || remaining == 0 {
			break
		}
		next, err := readPart(r, partSize, remaining)
		if err != nil {
			u.fail(fmt.Errorf("put %s: read: %w", name, err))
			break
		}
		if len(next) == 0 { // unknown size, ended on a part boundary
			break
		}
		data = next
	}
	return u.wait()
}

// partUploads are the parts of one multipart upload in flight: at most
// partConcurrency at a time, the first failure recorded and cancelling the
// others.
type partUploads struct {
	b                   *Backend
	name, key, uploadID string
	cancel              context.CancelFunc // of the ctx the parts run under
	sem                 chan struct{}
	wg                  sync.WaitGroup

	mu       sync.Mutex
	firstErr error
	parts    []minio.CompletePart
}

// start uploads part num in the background once a slot is free. It returns
// false, starting nothing, when a part has failed or ctx is done: the caller
// stops reading.
func (u *partUploads) start(ctx context.Context, num int, data []byte) bool {
	u.sem <- struct{}{}
	if u.failed() != nil {
		<-u.sem
		return false
	}
	if err := ctx.Err(); err != nil {
		<-u.sem
		u.fail(fmt.Errorf("put %s: %w", u.name, err))
		return false
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem }()
		p, err := u.b.core.PutObjectPart(ctx, u.b.bucket, u.key, u.uploadID, num, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectPartOptions{Md5Base64: contentMD5(data)})
		if err != nil {
			u.fail(translateError(fmt.Sprintf("put part %d of", num), u.name, err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		u.mu.Unlock()
	}()
	return true
}

// fail records the first failure and cancels the parts in flight.
func (u *partUploads) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.firstErr == nil {
		u.firstErr = err
		u.cancel()
	}
}

func (u *partUploads) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.firstErr
}

// wait waits for the started parts and returns them sorted by number, or the
// first failure.
func (u *partUploads) wait() ([]minio.CompletePart, error) {
	u.wg.Wait()
	if err := u.failed(); err != nil {
		return nil, err
	}
	slices.SortFunc(u.parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	return u.parts, nil
}
