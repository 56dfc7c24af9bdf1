package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
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
	_, err := b.core.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), contentMD5(data), "", opts)
	if err != nil && exclusive && ctx.Err() == nil && minio.ToErrorResponse(err).StatusCode == 0 {
		// A server may answer 412 as soon as it sees the condition and
		// reset the connection while the body is still being sent: the
		// answer is lost with the connection. Ask whether the name is taken.
		if _, serr := b.Stat(ctx, name); serr == nil {
			return fmt.Errorf("put %s: %w", name, storage.ErrExists)
		}
	}
	if err != nil {
		return translateError("put", name, err)
	}
	return nil
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if err != nil {
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer acancel()
			_ = b.core.AbortMultipartUpload(actx, b.bucket, key, uploadID)
		}
	}()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		parts    []minio.CompletePart
		sem      = make(chan struct{}, partConcurrency)
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	remaining := size
	data := first
	for num := 1; ; num++ {
		if num > maxParts {
			fail(fmt.Errorf("put %s: more than %d parts of %d bytes", name, maxParts, partSize))
			break
		}
		if remaining >= 0 {
			remaining -= int64(len(data))
		}
		sem <- struct{}{}
		if e := failed(); e != nil {
			<-sem
			break
		}
		if e := ctx.Err(); e != nil {
			<-sem
			fail(fmt.Errorf("put %s: %w", name, e))
			break
		}
		wg.Add(1)
		go func(num int, data []byte) {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := b.core.PutObjectPart(ctx, b.bucket, key, uploadID, num, bytes.NewReader(data), int64(len(data)),
				minio.PutObjectPartOptions{Md5Base64: contentMD5(data)})
			if err != nil {
				fail(translateError(fmt.Sprintf("put part %d of", num), name, err))
				return
			}
			mu.Lock()
			parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
			mu.Unlock()
		}(num, data)
		if remaining == 0 {
			break
		}
		next, rerr := readPart(r, partSize, remaining)
		if rerr != nil {
			fail(fmt.Errorf("put %s: read: %w", name, rerr))
			break
		}
		if len(next) == 0 { // unknown size, ended on a part boundary
			break
		}
		data = next
	}
	wg.Wait()
	if e := failed(); e != nil {
		return e
	}
	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	var opts minio.PutObjectOptions
	if exclusive {
		opts.SetMatchETagExcept("*")
	}
	if _, err := b.core.CompleteMultipartUpload(ctx, b.bucket, key, uploadID, parts, opts); err != nil {
		return translateError("put", name, err)
	}
	return nil
}
