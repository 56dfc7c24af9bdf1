package storagetest

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Op names a Backend method for fault rules and counters.
type Op string

// Operations that Faulty can fail and count.
const (
	OpPut         Op = "put"
	OpPutIfAbsent Op = "put_if_absent"
	OpGet         Op = "get"
	OpStat        Op = "stat"
	OpList        Op = "list"
	OpDelete      Op = "delete"
)

// Fault decides whether an operation on an object fails. It returns nil to
// let the call through. Rules are consulted in order; the first non-nil error
// wins.
type Fault func(op Op, name string) error

// Faulty wraps a backend, injects errors chosen by its rules and counts
// operations and bytes put, so tests can prove both failure handling and
// how much was uploaded.
type Faulty struct {
	storage.Backend

	mu       sync.Mutex
	rules    []Fault
	counts   map[Op]int
	putBytes map[string]int64 // by object name
}

// NewFaulty wraps b.
func NewFaulty(b storage.Backend) *Faulty {
	return &Faulty{Backend: b, counts: map[Op]int{}, putBytes: map[string]int64{}}
}

// AddFault appends a rule.
func (f *Faulty) AddFault(rule Fault) {
	f.mu.Lock()
	f.rules = append(f.rules, rule)
	f.mu.Unlock()
}

// ClearFaults removes all rules.
func (f *Faulty) ClearFaults() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
}

// FailAfter returns a rule that lets n matching calls of op on names with the
// given prefix through and fails every later one with err.
func FailAfter(op Op, prefix string, n int, err error) Fault {
	var mu sync.Mutex
	seen := 0
	return func(o Op, name string) error {
		if o != op || !strings.HasPrefix(name, prefix) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen > n {
			return err
		}
		return nil
	}
}

// Count returns how many times op was called (failed calls included).
func (f *Faulty) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// PutBytes returns the bytes successfully put under names starting with
// prefix (a top-level folder such as "data/" or "" for all).
func (f *Faulty) PutBytes(prefix string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for name, b := range f.putBytes {
		if strings.HasPrefix(name, prefix) {
			n += b
		}
	}
	return n
}

// ResetCounters zeroes the operation and byte counters.
func (f *Faulty) ResetCounters() {
	f.mu.Lock()
	f.counts = map[Op]int{}
	f.putBytes = map[string]int64{}
	f.mu.Unlock()
}

func (f *Faulty) check(op Op, name string) error {
	f.mu.Lock()
	f.counts[op]++
	rules := f.rules
	f.mu.Unlock()
	for _, r := range rules {
		if err := r(op, name); err != nil {
			return err
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (f *Faulty) recordPut(name string, n int64) {
	f.mu.Lock()
	f.putBytes[name] += n
	f.mu.Unlock()
}

// Put implements storage.Backend.
func (f *Faulty) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := f.check(OpPut, name); err != nil {
		return err
	}
	cr := &countingReader{r: r}
	if err := f.Backend.Put(ctx, name, cr, size); err != nil {
		return err
	}
	f.recordPut(name, cr.n)
	return nil
}

// PutIfAbsent implements storage.Backend.
func (f *Faulty) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := f.check(OpPutIfAbsent, name); err != nil {
		return err
	}
	cr := &countingReader{r: r}
	if err := f.Backend.PutIfAbsent(ctx, name, cr, size); err != nil {
		return err
	}
	f.recordPut(name, cr.n)
	return nil
}

// Get implements storage.Backend.
func (f *Faulty) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := f.check(OpGet, name); err != nil {
		return nil, err
	}
	return f.Backend.Get(ctx, name, offset, length)
}

// Stat implements storage.Backend.
func (f *Faulty) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := f.check(OpStat, name); err != nil {
		return storage.ObjectInfo{}, err
	}
	return f.Backend.Stat(ctx, name)
}

// List implements storage.Backend.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := f.check(OpList, prefix); err != nil {
		return err
	}
	return f.Backend.List(ctx, prefix, fn)
}

// Delete implements storage.Backend.
func (f *Faulty) Delete(ctx context.Context, name string) error {
	if err := f.check(OpDelete, name); err != nil {
		return err
	}
	return f.Backend.Delete(ctx, name)
}
