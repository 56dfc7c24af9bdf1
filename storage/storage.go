package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap them (check with errors.Is) so callers can
// tell "absent" and "already there" apart from transport failures.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a create-only put found the name already taken.
	ErrExists = errors.New("object already exists")
	// ErrInvalidName: the object name is not acceptable to this package.
	ErrInvalidName = errors.New("invalid object name")
	// ErrRetained: the object is under a retention (S3 Object Lock) and
	// cannot be deleted yet.
	ErrRetained = errors.New("object is retained")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Backend stores named, immutable-by-convention objects. Names are
// slash-separated relative paths (see ValidateName). All methods are safe for
// concurrent use. A Backend does not retain the context passed to any call,
// including the one given to its constructor.
type Backend interface {
	// Put stores the size bytes read from r under name, replacing any object of
	// that name. The put is atomic: a concurrent reader sees either the old
	// object, or the complete new one, never a partial one; a failed or
	// cancelled put leaves no object (and no visible temporary). size may be -1
	// when unknown. Errors: ErrInvalidName, a short read from r, the
	// context's error, or a transport error.
	Put(ctx context.Context, name string, r io.Reader, size int64) error

	// PutIfAbsent is Put that fails with ErrExists when name already exists.
	// Of many concurrent calls for one name, exactly one succeeds. Used for
	// locks and for content-addressed objects that must be written once.
	// A backend that retries answers nil when a retry finds the name taken
	// by exactly the bytes given: the call's own earlier attempt stored
	// them and its answer was lost.
	PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error

	// Get returns a reader for length bytes of the object starting at offset;
	// length < 0 reads to the end. Reading past the end returns fewer bytes.
	// The caller closes the reader. Errors: ErrNotFound, ErrInvalidName, or a
	// transport error (possibly only when reading).
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's size and modification time. Errors:
	// ErrNotFound, ErrInvalidName, or a transport error.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object whose name starts with prefix, in no
	// particular order. An error returned by fn stops the listing and is
	// returned as is. A prefix matching nothing is not an error.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object. Deleting a missing object is not an error.
	// Errors: ErrRetained when a retention forbids it, ErrInvalidName, or a
	// transport error.
	Delete(ctx context.Context, name string) error

	// Location describes where objects live, for messages (never secrets).
	Location() string

	// Close releases resources. The backend must not be used afterwards.
	Close() error
}

// Retainer is implemented by backends that can put a retention on an object
// (S3 Object Lock), so that nobody, prune included, can delete it before the
// given time.
type Retainer interface {
	// SetRetention retains the object until the given time. Errors:
	// ErrNotFound, or a transport error (e.g. the bucket has no Object Lock).
	SetRetention(ctx context.Context, name string, until time.Time) error
	// Retention returns the time until which the object is retained, or the
	// zero time when it is not. Errors: ErrNotFound, or a transport error.
	Retention(ctx context.Context, name string) (time.Time, error)
}

// Cleaner is implemented by backends on which an interrupted write can leave
// debris that List does not show: temporary files of a killed process,
// incomplete S3 multipart uploads (billed storage). Prune calls it while it
// holds the repository's exclusive lock.
type Cleaner interface {
	// CleanStale removes debris of writes started before olderThan and
	// returns how many items it removed. Debris of writes still running
	// (newer) is left alone.
	CleanStale(ctx context.Context, olderThan time.Time) (int, error)
}

// ValidateName reports whether name is acceptable as an object name: a
// non-empty, slash-separated relative path of at most 1024 bytes whose
// elements are not empty, "." or "..", with no backslash, NUL or other control
// character. Every backend applies the same rule so a repository moves
// between backends unchanged.
func ValidateName(name string) error {
	if name == "" || len(name) > 1024 {
		return fmt.Errorf("%w: %q: empty or longer than 1024 bytes", ErrInvalidName, name)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: %q: contains a control character or backslash", ErrInvalidName, name)
		}
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q: empty, \".\" or \"..\" path element", ErrInvalidName, name)
		}
	}
	return nil
}

// ReadAll reads a whole object into memory. Meant for small objects
// (config, manifests, locks), never for disk data.
func ReadAll(ctx context.Context, b Backend, name string) ([]byte, error) {
	rc, err := b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}
