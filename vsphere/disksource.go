package vsphere

import (
	"context"
	"fmt"
	"io"
)

// DiskSource is a readable disk (or any large file) of known size, read in
// ranges. The backup pipeline depends only on this, so a second transport
// (an NFC export lease, VDDK NBDSSL) can replace the datastore HTTP service
// when a host refuses to serve a locked base disk.
type DiskSource interface {
	// Size is the length in bytes.
	Size() int64
	// Open returns a reader for [off, off+length). A failure mid-read is
	// returned by the reader; callers retry by opening the range again.
	Open(ctx context.Context, off, length int64) (io.ReadCloser, error)
}

// DatastoreFile is a DiskSource over the datastore HTTP file service.
type DatastoreFile struct {
	c         *Client
	datastore string
	path      string
	size      int64
}

// OpenDatastoreFile returns a DiskSource for [dsName] p after asking its size
// (ErrFileNotFound when missing).
func (c *Client) OpenDatastoreFile(ctx context.Context, dsName, p string) (*DatastoreFile, error) {
	size, err := c.fileSize(ctx, dsName, p)
	if err != nil {
		return nil, err
	}
	return &DatastoreFile{c: c, datastore: dsName, path: p, size: size}, nil
}

// Size is the file size at open time.
func (f *DatastoreFile) Size() int64 { return f.size }

// Path is "[ds] path".
func (f *DatastoreFile) Path() string { return fmt.Sprintf("[%s] %s", f.datastore, f.path) }

// Open reads [off, off+length) with an HTTP Range request.
func (f *DatastoreFile) Open(ctx context.Context, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > f.size {
		return nil, fmt.Errorf("read %s: range %d+%d outside size %d", f.Path(), off, length, f.size)
	}
	rc, _, err := f.c.Download(ctx, f.datastore, f.path, off, length)
	return rc, err
}

var _ DiskSource = (*DatastoreFile)(nil)
