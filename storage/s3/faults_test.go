package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/faultproxy"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// Every fault the proxy injects, once, into each kind of request the
// repository makes: the operation succeeds through the client's retries
// and returns what the server holds.
func TestFaultsRetried(t *testing.T) {
	srv, proxy := faultproxy.StartS3T(t, 1)
	if err := srv.CreateBucket(t.Context(), "faults", false); err != nil {
		t.Fatal(err)
	}
	cfg := s3.Config{
		Endpoint: proxy.Endpoint, Bucket: "faults", Prefix: "repo", Region: srv.Region, PlainHTTP: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: s3.MinPartSize,
	}
	b := open(t.Context(), t, cfg)
	rng := rand.New(rand.NewPCG(2, 3))
	object := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	small, mid, large := object(1<<10), object(300<<10), object(2*s3.MinPartSize+1000)
	for name, data := range map[string][]byte{"data/small": small, "data/mid": mid} {
		if err := b.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}

	seq := 0
	ops := []struct {
		name string
		kind faultproxy.Kind
		nth  int // the request of kind that gets the fault; 0: the first
		run  func(ctx context.Context) error
	}{
		{"put", faultproxy.Put, 0, func(ctx context.Context) error {
			return b.Put(ctx, "data/put", bytes.NewReader(mid), int64(len(mid)))
		}},
		{"put if absent", faultproxy.Put, 0, func(ctx context.Context) error {
			seq++
			return b.PutIfAbsent(ctx, fmt.Sprintf("locks/l%d", seq), bytes.NewReader(small), int64(len(small)))
		}},
		{"put multipart", faultproxy.Put, 0, func(ctx context.Context) error {
			seq++
			return b.PutIfAbsent(ctx, fmt.Sprintf("data/large%d", seq), bytes.NewReader(large), int64(len(large)))
		}},
		{"complete multipart", faultproxy.Post, 2, func(ctx context.Context) error {
			seq++
			name := fmt.Sprintf("data/large%d", seq)
			if err := b.PutIfAbsent(ctx, name, bytes.NewReader(large), int64(len(large))); err != nil {
				return err
			}
			got, err := storage.ReadAll(ctx, b, name)
			if err == nil && !bytes.Equal(got, large) {
				err = fmt.Errorf("read back %d bytes that differ", len(got))
			}
			return err
		}},
		{"get", faultproxy.Get, 0, func(ctx context.Context) error {
			got, err := storage.ReadAll(ctx, b, "data/mid")
			if err == nil && !bytes.Equal(got, mid) {
				err = fmt.Errorf("read %d bytes that differ from the %d stored", len(got), len(mid))
			}
			return err
		}},
		{"list", faultproxy.List, 0, func(ctx context.Context) error {
			var names []string
			err := b.List(ctx, "data/", func(oi storage.ObjectInfo) error {
				names = append(names, oi.Name)
				return nil
			})
			if err == nil && (!slices.Contains(names, "data/small") || !slices.Contains(names, "data/mid")) {
				err = fmt.Errorf("listed %v", names)
			}
			return err
		}},
		{"stat", faultproxy.Head, 0, func(ctx context.Context) error {
			oi, err := b.Stat(ctx, "data/small")
			if err == nil && oi.Size != int64(len(small)) {
				err = fmt.Errorf("size %d", oi.Size)
			}
			return err
		}},
		{"delete", faultproxy.Delete, 0, func(ctx context.Context) error {
			seq++
			name := fmt.Sprintf("data/del%d", seq)
			if err := b.Put(ctx, name, bytes.NewReader(small), int64(len(small))); err != nil {
				return err
			}
			if err := b.Delete(ctx, name); err != nil {
				return err
			}
			if _, err := b.Stat(ctx, name); err == nil {
				return fmt.Errorf("%s still there", name)
			}
			return nil
		}},
	}
	faults := []faultproxy.Rule{
		{Fault: faultproxy.InternalError},
		{Fault: faultproxy.SlowDown},
		{Fault: faultproxy.Latency, Delay: 50 * time.Millisecond},
		{Fault: faultproxy.Trickle, Delay: time.Millisecond},
		{Fault: faultproxy.ResetRequest},
		{Fault: faultproxy.ResetResponse},
		{Fault: faultproxy.Restart},
	}
	for _, f := range faults {
		for _, op := range ops {
			t.Run(string(f.Fault)+"/"+op.name, func(t *testing.T) {
				rule := f
				rule.Kind, rule.Nth = op.kind, max(op.nth, 1)
				proxy.Inject(rule)
				defer proxy.Inject()
				before := proxy.Injected()[f.Fault]
				if err := op.run(t.Context()); err != nil {
					t.Fatalf("%s with one %s fault: %v", op.name, f.Fault, err)
				}
				if got := proxy.Injected()[f.Fault] - before; got != 1 {
					t.Fatalf("%d faults injected, want 1", got)
				}
			})
		}
	}
	t.Log(proxy)
}
