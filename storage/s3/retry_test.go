package s3_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// faultProxy forwards to the test server and answers the next PUTs with
// injected statuses instead.
type faultProxy struct {
	mu     sync.Mutex
	faults []int // statuses for the next PUT requests
	puts   int
}

func (p *faultProxy) inject(statuses ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.puts = statuses, 0
}

func (p *faultProxy) putCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.puts
}

func startFaultProxy(t *testing.T) (*faultProxy, string) {
	t.Helper()
	target, err := url.Parse(needServer(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header, so SigV4 still verifies
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			p.mu.Lock()
			p.puts++
			status := 0
			if len(p.faults) > 0 {
				status, p.faults = p.faults[0], p.faults[1:]
			}
			p.mu.Unlock()
			if status != 0 {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				code := map[int]string{503: "SlowDown", 500: "InternalError", 400: "BadRequest"}[status]
				_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>injected</Message></Error>`))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// minio-go retries 5xx with backoff and gives up on 4xx at once; our bodies
// are in-memory buffers, so uploads are retried too.
func TestRetries(t *testing.T) {
	proxy, endpoint := startFaultProxy(t)
	cfg := config(newBucket(t, false))
	cfg.Endpoint = endpoint
	cfg.MaxRetries = 3
	b := open(t.Context(), t, cfg)
	tests := []struct {
		name     string
		faults   []int
		wantErr  bool
		wantPuts int
	}{
		{"transient 503", []int{503}, false, 2},
		{"two 500s", []int{500, 500}, false, 3},
		{"persistent 503", []int{503, 503, 503, 503}, true, 3},
		{"400 is final", []int{400}, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.inject(tc.faults...)
			err := b.Put(t.Context(), "data/retry", strings.NewReader("payload"), 7)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Put = %v, want error: %v", err, tc.wantErr)
			}
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, s3.ErrAccessDenied) {
				t.Errorf("Put = %v: injected fault mistranslated", err)
			}
			if got := proxy.putCount(); got != tc.wantPuts {
				t.Errorf("server saw %d PUTs, want %d", got, tc.wantPuts)
			}
		})
	}
}
