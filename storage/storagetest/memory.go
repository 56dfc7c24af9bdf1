package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Memory is an in-memory storage.Backend. It follows the same contract as
// the real backends (it passes RunTests), so tests using it exercise real
// semantics, not a loose fake.
type Memory struct {
	mu      sync.Mutex
	objects map[string]memObject
	now     func() time.Time
}

type memObject struct {
	data    []byte
	modTime time.Time
}

var _ storage.Backend = (*Memory)(nil)

// NewMemory returns an empty in-memory backend.
func NewMemory() *Memory {
	return &Memory{objects: map[string]memObject{}, now: time.Now}
}

// Location implements storage.Backend.
func (m *Memory) Location() string { return "memory" }

// Close implements storage.Backend.
func (m *Memory) Close() error { return nil }

// Put implements storage.Backend.
func (m *Memory) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return m.put(ctx, name, r, size, false)
}

// PutIfAbsent implements storage.Backend.
func (m *Memory) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	return m.put(ctx, name, r, size, true)
}

func (m *Memory) put(ctx context.Context, name string, r io.Reader, size int64, exclusive bool) error {
	if err := storage.ValidateName(name); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("put %s: read %d bytes, expected %d: %w", name, len(data), size, io.ErrUnexpectedEOF)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; ok && exclusive {
		return fmt.Errorf("put %s: %w", name, storage.ErrExists)
	}
	m.objects[name] = memObject{data: data, modTime: m.now()}
	return nil
}

// Get implements storage.Backend.
func (m *Memory) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.ValidateName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o, ok := m.objects[name]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", name, storage.ErrNotFound)
	}
	data := o.data
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	data = data[offset:]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat implements storage.Backend.
func (m *Memory) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := storage.ValidateName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	m.mu.Lock()
	o, ok := m.objects[name]
	m.mu.Unlock()
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

// List implements storage.Backend. It calls fn without holding the lock, so
// fn may use the backend.
func (m *Memory) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	m.mu.Lock()
	var infos []storage.ObjectInfo
	for name, o := range m.objects {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, storage.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	m.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (m *Memory) Delete(ctx context.Context, name string) error {
	if err := storage.ValidateName(name); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, name)
	m.mu.Unlock()
	return nil
}

// Corrupt flips one bit of the named object at offset, for tests of
// corruption detection. It returns ErrNotFound for a missing object.
func (m *Memory) Corrupt(name string, offset int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[name]
	if !ok {
		return fmt.Errorf("corrupt %s: %w", name, storage.ErrNotFound)
	}
	data := bytes.Clone(o.data)
	data[offset%len(data)] ^= 0x01
	m.objects[name] = memObject{data: data, modTime: o.modTime}
	return nil
}

// Count returns the number of stored objects.
func (m *Memory) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects)
}
