package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// NewFunc returns a fresh, empty backend for one test. The suite cancels ctx
// as soon as NewFunc returns, which proves the backend does not keep using
// the constructor's context.
type NewFunc func(ctx context.Context, t *testing.T) storage.Backend

// Options tunes the suite for slow backends.
type Options struct {
	// ManyObjects is the object count of the listing test; it must exceed
	// 1000 to cross an S3 page boundary. Default 1100.
	ManyObjects int
}

// RunTests runs the conformance suite against the backend made by newBackend.
func RunTests(t *testing.T, newBackend NewFunc, opts Options) {
	if opts.ManyObjects == 0 {
		opts.ManyObjects = 1100
	}
	open := func(t *testing.T) storage.Backend {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		b := newBackend(ctx, t)
		cancel()
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"RangedGet", testRangedGet},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"ListPrefix", testListPrefix},
		{"ListMany", func(t *testing.T, b storage.Backend) { testListMany(t, b, opts.ManyObjects) }},
		{"ListCallbackError", testListCallbackError},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentConcurrent", testPutIfAbsentConcurrent},
		{"CancelledPut", testCancelledPut},
		{"ShortReader", testShortReader},
		{"Names", testNames},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// Random returns n deterministic pseudo-random bytes.
func Random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		buf[i] = byte(r.Uint32())
	}
	return buf
}

func put(t *testing.T, b storage.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

func get(t *testing.T, b storage.Backend, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), name, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, offset, length, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): read: %v", name, offset, length, err)
	}
	return data
}

func mustNotExist(t *testing.T, b storage.Backend, name string) {
	t.Helper()
	if _, err := b.Stat(t.Context(), name); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", name, err)
	}
	var found []string
	err := b.List(t.Context(), "", func(fi storage.ObjectInfo) error {
		found = append(found, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, n := range found {
		if n == name {
			t.Fatalf("List shows %q, which must not exist", name)
		}
	}
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	for i, size := range []int{0, 1, 5 << 20, 64 << 20} {
		name := fmt.Sprintf("data/rt/%d", size)
		data := Random(uint64(i+1), size)
		put(t, b, name, data)
		got := get(t, b, name, 0, -1)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes differ from the %d written", name, len(got), len(data))
		}
		fi, err := b.Stat(t.Context(), name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", name, err)
		}
		if fi.Size != int64(size) || fi.Name != name {
			t.Fatalf("Stat(%q) = %+v, want size %d", name, fi, size)
		}
	}
	// Unknown size (-1) is accepted.
	data := Random(9, 12345)
	if err := b.Put(t.Context(), "data/rt/unknown", bytes.NewReader(data), -1); err != nil {
		t.Fatalf("Put with size -1: %v", err)
	}
	if got := get(t, b, "data/rt/unknown", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("Put with size -1: content differs")
	}
}

func testRangedGet(t *testing.T, b storage.Backend) {
	data := Random(2, 100_000)
	put(t, b, "obj", data)
	tests := []struct {
		offset, length int64
		want           []byte
	}{
		{0, -1, data},
		{0, 10, data[:10]},
		{10, 10, data[10:20]},
		{99_990, -1, data[99_990:]},
		{99_990, 100, data[99_990:]}, // past the end: fewer bytes
		{50_000, 0, nil},
		{100_000, -1, nil},
	}
	for _, tc := range tests {
		got := get(t, b, "obj", tc.offset, tc.length)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("Get(obj, %d, %d) = %d bytes, want %d", tc.offset, tc.length, len(got), len(tc.want))
		}
	}
}

func testOverwrite(t *testing.T, b storage.Backend) {
	put(t, b, "config", []byte("one"))
	put(t, b, "config", []byte("second"))
	if got := get(t, b, "config", 0, -1); string(got) != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
}

func testNotFound(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	if _, err := b.Stat(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
	}
	rc, err := b.Get(ctx, "missing", 0, -1)
	if err == nil {
		// Some transports only learn of absence on the first read.
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if rc, err := b.Get(ctx, "missing/deeper", 5, 5); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ranged Get(missing/deeper) = %v, want ErrNotFound", err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ranged Get(missing/deeper) = %v, want ErrNotFound", err)
	}
	// A name below an existing object is simply missing.
	put(t, b, "file", []byte("x"))
	if _, err := b.Stat(ctx, "file/below"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(file/below) = %v, want ErrNotFound", err)
	}
	n := 0
	if err := b.List(ctx, "nothing-here/", func(storage.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List(nothing-here/) = %d objects, %v; want 0, nil", n, err)
	}
	if err := b.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	put(t, b, "locks/a", []byte("lock"))
	if err := b.Delete(t.Context(), "locks/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotExist(t, b, "locks/a")
	if err := b.Delete(t.Context(), "locks/a"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func listNames(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	var mu sync.Mutex
	err := b.List(t.Context(), prefix, func(fi storage.ObjectInfo) error {
		mu.Lock()
		names = append(names, fi.Name)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

func testListPrefix(t *testing.T, b storage.Backend) {
	for _, n := range []string{"data/00/aa", "data/00/ab", "data/01/aa", "manifests/x.json", "config"} {
		put(t, b, n, []byte(n))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"config", "data/00/aa", "data/00/ab", "data/01/aa", "manifests/x.json"}},
		{"data/", []string{"data/00/aa", "data/00/ab", "data/01/aa"}},
		{"data/00/", []string{"data/00/aa", "data/00/ab"}},
		{"data/00/a", []string{"data/00/aa", "data/00/ab"}},
		{"data/0", []string{"data/00/aa", "data/00/ab", "data/01/aa"}},
		{"manifests/", []string{"manifests/x.json"}},
		{"conf", []string{"config"}},
	}
	for _, tc := range tests {
		if got := listNames(t, b, tc.prefix); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	err := b.List(t.Context(), "data/00/aa", func(fi storage.ObjectInfo) error {
		if fi.Size != int64(len("data/00/aa")) {
			t.Errorf("List size of %s = %d", fi.Name, fi.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListMany(t *testing.T, b storage.Backend, n int) {
	want := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		want[i] = fmt.Sprintf("many/%05d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.Put(t.Context(), name, bytes.NewReader([]byte(name)), int64(len(name))); err != nil {
				errs <- err
			}
		}(want[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	got := listNames(t, b, "many/")
	if len(got) != n {
		t.Fatalf("List(many/) = %d objects, want %d", len(got), n)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("List(many/)[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}

func testListCallbackError(t *testing.T, b storage.Backend) {
	put(t, b, "x/1", []byte("1"))
	put(t, b, "x/2", []byte("2"))
	stop := errors.New("stop here")
	calls := 0
	err := b.List(t.Context(), "x/", func(storage.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing callback = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testPutIfAbsent(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	if err := b.PutIfAbsent(ctx, "locks/x", bytes.NewReader([]byte("first")), 5); err != nil {
		t.Fatalf("PutIfAbsent on a free name: %v", err)
	}
	err := b.PutIfAbsent(ctx, "locks/x", bytes.NewReader([]byte("second")), 6)
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("PutIfAbsent on a taken name = %v, want ErrExists", err)
	}
	if got := get(t, b, "locks/x", 0, -1); string(got) != "first" {
		t.Fatalf("content after refused PutIfAbsent = %q, want %q", got, "first")
	}
	big := Random(3, 6<<20) // past a typical multipart threshold
	if err := b.PutIfAbsent(ctx, "data/big", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatalf("PutIfAbsent big: %v", err)
	}
	if err := b.PutIfAbsent(ctx, "data/big", bytes.NewReader(big), int64(len(big))); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent big = %v, want ErrExists", err)
	}
}

func testPutIfAbsentConcurrent(t *testing.T, b storage.Backend) {
	const n = 16
	var wg sync.WaitGroup
	results := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := fmt.Sprintf("writer-%02d", i)
			results[i] = b.PutIfAbsent(t.Context(), "locks/exclusive", bytes.NewReader([]byte(body)), int64(len(body)))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("writer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	if got := get(t, b, "locks/exclusive", 0, -1); string(got) != fmt.Sprintf("writer-%02d", winner) {
		t.Fatalf("content %q is not the winner's (%d)", got, winner)
	}
}

// cancelReader yields data and cancels the context once half is read, then
// keeps serving bytes: the backend must notice the cancellation on its own.
type cancelReader struct {
	r      io.Reader
	after  int
	read   int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := c.r.Read(p)
	c.read += n
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

func testCancelledPut(t *testing.T, b storage.Backend) {
	for _, tc := range []struct {
		name string
		size int
		put  func(storage.Backend, context.Context, string, io.Reader, int64) error
	}{
		{"small", 1 << 20, storage.Backend.Put},
		{"large", 24 << 20, storage.Backend.Put},
		{"create-only", 24 << 20, storage.Backend.PutIfAbsent},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		data := Random(4, tc.size)
		name := "data/cancelled-" + tc.name
		r := &cancelReader{r: bytes.NewReader(data), after: tc.size / 2, cancel: cancel}
		err := tc.put(b, ctx, name, r, int64(len(data)))
		cancel()
		if err == nil {
			t.Fatalf("%s: Put with a context cancelled mid-upload succeeded", tc.name)
		}
		mustNotExist(t, b, name)
	}
}

func testShortReader(t *testing.T, b storage.Backend) {
	data := Random(5, 1000)
	err := b.Put(t.Context(), "short", bytes.NewReader(data[:500]), 1000)
	if err == nil {
		t.Fatal("Put with a reader shorter than size succeeded")
	}
	mustNotExist(t, b, "short")
	failing := io.MultiReader(bytes.NewReader(data[:500]), iotestErrReader{})
	if err := b.Put(t.Context(), "failing", failing, 1000); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	mustNotExist(t, b, "failing")
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk read error") }

func testNames(t *testing.T, b storage.Backend) {
	good := []string{
		"manifests/vm with spaces@2026.json",
		"odd/ümlaut-ß-日本",
		"odd/plus+percent%20hash#question?amp&",
		"odd/quote'\"star*",
		"odd/.hidden",
	}
	for _, name := range good {
		put(t, b, name, []byte(name))
		if got := get(t, b, name, 0, -1); string(got) != name {
			t.Errorf("round trip of %q gave %q", name, got)
		}
	}
	if got := listNames(t, b, "odd/"); len(got) != len(good)-1 {
		t.Errorf("List(odd/) = %q, want %d names", got, len(good)-1)
	}
	bad := []string{"", "/abs", "a//b", "a/", "../up", "a/../b", "./a", "a/.", "back\\slash", "nul\x00", "tab\t", string(make([]byte, 1100))}
	for _, name := range bad {
		err := b.Put(t.Context(), name, bytes.NewReader(nil), 0)
		if !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := b.Stat(t.Context(), name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}
