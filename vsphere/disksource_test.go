package vsphere_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// flakySource is a DiskSource over data whose streams fail as scripted: the
// n-th Open's stream fails with fails[n].err after fails[n].after bytes.
type flakySource struct {
	data  []byte
	fails []failure
	opens []int64 // offsets opened
	// openErr, when set, fails every Open.
	openErr error
}

type failure struct {
	after int
	err   error
}

func (s *flakySource) Size() int64 { return int64(len(s.data)) }

func (s *flakySource) Open(_ context.Context, off, length int64) (io.ReadCloser, error) {
	if s.openErr != nil {
		return nil, s.openErr
	}
	n := len(s.opens)
	s.opens = append(s.opens, off)
	r := io.Reader(bytes.NewReader(s.data[off : off+length]))
	if n < len(s.fails) {
		f := s.fails[n]
		r = io.MultiReader(io.LimitReader(r, int64(f.after)), &errReader{f.err})
	}
	return io.NopCloser(r), nil
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func readAll(ctx context.Context, r *vsphere.ChunkReader, chunk int) ([]byte, []int, error) {
	var out []byte
	var sizes []int
	buf := make([]byte, chunk)
	for {
		n, err := r.Next(ctx, buf)
		if err == io.EOF {
			return out, sizes, nil
		}
		if err != nil {
			return out, sizes, err
		}
		out = append(out, buf[:n]...)
		sizes = append(sizes, n)
	}
}

func TestChunkReader(t *testing.T) {
	data := make([]byte, 10*4+3)
	for i := range data {
		data[i] = byte(i)
	}
	reset := fmt.Errorf("read tcp: %w", syscall.ECONNRESET)
	tests := []struct {
		name      string
		fails     []failure
		wantOpens []int64
		wantErr   bool
	}{
		{"one stream", nil, []int64{0}, false},
		{"reset mid-chunk resumes at the chunk", []failure{{after: 10, err: reset}}, []int64{0, 8}, false},
		{"reset at a chunk boundary", []failure{{after: 8, err: reset}}, []int64{0, 8}, false},
		{"body cut short", []failure{{after: 30, err: io.EOF}}, []int64{0, 28}, false},
		{"unexpected EOF", []failure{{after: 1, err: io.ErrUnexpectedEOF}}, []int64{0, 0}, false},
		{"three resets", []failure{{5, reset}, {9, reset}, {17, reset}}, []int64{0, 4, 12, 28}, false},
		{"attempts bounded per chunk", []failure{{2, reset}, {1, reset}, {1, reset}}, []int64{0, 0, 0}, true},
		{"attempts start over after a chunk", []failure{{2, reset}, {5, reset}, {5, reset}, {5, reset}}, []int64{0, 0, 4, 8, 12}, false},
		{"not transient", []failure{{2, errors.New("tls: bad record MAC")}}, []int64{0}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &flakySource{data: data, fails: tc.fails}
			r := vsphere.NewChunkReader(src, 4, vsphere.RetryPolicy{Attempts: 3})
			defer r.Close()
			got, sizes, err := readAll(t.Context(), r, 4)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if fmt.Sprint(src.opens) != fmt.Sprint(tc.wantOpens) {
				t.Errorf("opened at %v, want %v", src.opens, tc.wantOpens)
			}
			if tc.wantErr {
				return
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read %d bytes, not the source", len(got))
			}
			if len(sizes) != 11 || sizes[10] != 3 {
				t.Errorf("chunk sizes %v, want ten of 4 and a last of 3", sizes)
			}
			if r.Resumes() != len(tc.wantOpens)-1 {
				t.Errorf("resumes = %d, want %d", r.Resumes(), len(tc.wantOpens)-1)
			}
		})
	}
}

// Opening is retried by the source itself (DatastoreFile retries its
// request); the chunk reader does not retry it again, and says where.
func TestChunkReaderOpenError(t *testing.T) {
	src := &flakySource{data: make([]byte, 16), openErr: fmt.Errorf("download: %w", syscall.ECONNREFUSED)}
	r := vsphere.NewChunkReader(src, 4, vsphere.RetryPolicy{Attempts: 3})
	_, err := r.Next(t.Context(), make([]byte, 4))
	if !errors.Is(err, syscall.ECONNREFUSED) || len(src.opens) != 0 {
		t.Fatalf("Next = %v after %d opens", err, len(src.opens))
	}
}

// The backoff before reopening doubles from Initial up to Max, on the
// policy's clock; a cancelled context ends the wait.
func TestChunkReaderBackoff(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	src := &flakySource{data: make([]byte, 8), fails: []failure{{1, reset}, {1, reset}, {1, reset}}}
	r := vsphere.NewChunkReader(src, 8, vsphere.RetryPolicy{Attempts: 4, Initial: time.Second, Max: 1500 * time.Millisecond, Clock: clk})
	done := make(chan error, 1)
	go func() {
		_, err := r.Next(t.Context(), make([]byte, 8))
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i, wait := range []time.Duration{time.Second, 1500 * time.Millisecond, 1500 * time.Millisecond} {
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatalf("backoff %d: not waiting on the clock: %v", i, err)
		}
		clk.Advance(wait - time.Millisecond)
		if clk.Waiters() != 1 {
			t.Fatalf("backoff %d: reopened before %v", i, wait)
		}
		clk.Advance(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("Next after three resets: %v", err)
	}

	src = &flakySource{data: make([]byte, 8), fails: []failure{{1, reset}}}
	r = vsphere.NewChunkReader(src, 8, vsphere.RetryPolicy{Attempts: 4, Initial: time.Hour, Clock: clk})
	cctx, ccancel := context.WithCancel(t.Context())
	go func() {
		_, err := r.Next(cctx, make([]byte, 8))
		done <- err
	}()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ccancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next cancelled during the backoff: %v", err)
	}
}

// Over the datastore file service: connections reset three times in the
// middle of a running VM's disk, read through its host; the reader resumes
// each time at the chunk it was reading and returns the disk byte for byte.
func TestChunkReaderResumesResetTransfers(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cut01", DiskSize: 16 << 20, Seed: 3, PowerOn: true})
	env.Client.SetRetry(vsphere.RetryPolicy{Attempts: 4})
	cuts := []int64{3<<20 + 12345, 3<<20 + 99999, 11 << 20}
	env.CutAt(v.Datastore, v.FlatPath, cuts...)
	src, err := env.Client.VMFiles(v.VM).Open(ctx, v.Datastore, v.FlatPath)
	if err != nil {
		t.Fatal(err)
	}
	r := env.Client.NewChunkReader(src, 1<<20)
	defer r.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Next(ctx, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:n])
	}
	if [32]byte(h.Sum(nil)) != v.DiskSHA256 {
		t.Error("disk read with resumes differs from the disk")
	}
	if s := env.Transfers(); s.Cuts != 3 || r.Resumes() != 3 || s.DirectLocked != 0 {
		t.Errorf("%d resumes, stats %+v; want 3 cuts and 3 resumes", r.Resumes(), s)
	}
}
