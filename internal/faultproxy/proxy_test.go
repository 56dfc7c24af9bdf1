package faultproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/faultproxy"
)

// backend answers GET with body, PUT with an empty 200 after reading the
// request body, and counts the requests it answered.
func backend(t *testing.T, body []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		served.Add(1)
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

func do(t *testing.T, url, method string, body []byte) ([]byte, int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh connection per request: a reset connection is never reused.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return got, resp.StatusCode, err
}

func TestFaults(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	srv, served := backend(t, content)
	var restarts atomic.Int64
	p, err := faultproxy.New(strings.TrimPrefix(srv.URL, "http://"), faultproxy.Options{Seed: 1, Restart: func(context.Context) error {
		restarts.Add(1)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	object, bucket := p.URL+"/bucket/key", p.URL+"/bucket?list-type=2"
	tests := []struct {
		name     string
		rule     faultproxy.Rule
		method   string
		url      string
		status   int // 0: a transport error
		code     string
		whole    bool // the body arrives whole
		forwards bool // the backend answers the request
	}{
		{"500", faultproxy.Rule{Fault: faultproxy.InternalError}, http.MethodPut, object, 500, "InternalError", false, false},
		{"503", faultproxy.Rule{Fault: faultproxy.SlowDown, Kind: faultproxy.List}, http.MethodGet, bucket, 503, "SlowDown", false, false},
		{"latency", faultproxy.Rule{Fault: faultproxy.Latency, Delay: time.Millisecond}, http.MethodGet, object, 200, "", true, true},
		{"trickle", faultproxy.Rule{Fault: faultproxy.Trickle, Delay: time.Millisecond}, http.MethodGet, object, 200, "", true, true},
		{"reset request", faultproxy.Rule{Fault: faultproxy.ResetRequest, Kind: faultproxy.Put}, http.MethodPut, object, 0, "", false, false},
		{"reset response", faultproxy.Rule{Fault: faultproxy.ResetResponse, Kind: faultproxy.Get}, http.MethodGet, object, 200, "", false, true},
		{"lost answer", faultproxy.Rule{Fault: faultproxy.ResetResponse, Kind: faultproxy.Put}, http.MethodPut, object, 0, "", false, true},
		{"restart", faultproxy.Rule{Fault: faultproxy.Restart, Kind: faultproxy.Get}, http.MethodGet, object, 0, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Nth = 1
			p.Inject(tc.rule)
			before, restartsBefore := served.Load(), restarts.Load()
			var body []byte
			if tc.method == http.MethodPut {
				body = content
			}
			got, status, err := do(t, tc.url, tc.method, body)
			switch {
			case tc.status == 0 && err == nil:
				t.Fatalf("answer %d, want a broken connection", status)
			case tc.status != 0 && status != tc.status:
				t.Fatalf("status %d (%v), want %d", status, err, tc.status)
			case tc.code != "" && !strings.Contains(string(got), "<Code>"+tc.code+"</Code>"):
				t.Fatalf("body %q, want code %s", got, tc.code)
			case tc.whole != (err == nil && bytes.Equal(got, content)):
				t.Fatalf("body of %d bytes (%v), want whole: %v", len(got), err, tc.whole)
			}
			if fwd := served.Load() > before; fwd != tc.forwards {
				t.Fatalf("backend answered: %v, want %v", fwd, tc.forwards)
			}
			if wantRestarts := tc.rule.Fault == faultproxy.Restart; (restarts.Load() > restartsBefore) != wantRestarts {
				t.Fatalf("restarts %d, want one: %v", restarts.Load()-restartsBefore, wantRestarts)
			}
			// One fault per rule with Nth: the next request passes.
			if _, status, err := do(t, tc.url, tc.method, body); err != nil || status != http.StatusOK {
				t.Fatalf("the next request: %d, %v", status, err)
			}
		})
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

// The same seed draws the same faults for the same sequence of requests.
func TestShareIsSeeded(t *testing.T) {
	srv, _ := backend(t, []byte("x"))
	draw := func(seed uint64) string {
		p, err := faultproxy.New(strings.TrimPrefix(srv.URL, "http://"), faultproxy.Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Inject(faultproxy.Rule{Fault: faultproxy.InternalError, Kind: faultproxy.Get, Share: 0.5})
		var b strings.Builder
		for range 40 {
			_, status, err := do(t, p.URL+"/b/k", http.MethodGet, nil)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(&b, status/100)
		}
		return b.String()
	}
	a, b, c := draw(7), draw(7), draw(8)
	if a != b {
		t.Fatalf("seed 7 drew %s, then %s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 7 and 8 drew the same faults %s", a)
	}
	if !strings.Contains(a, "5") || !strings.Contains(a, "2") {
		t.Fatalf("a share of 0.5 drew %s", a)
	}
}

// Nth and Max count per kind and path.
func TestNthMax(t *testing.T) {
	srv, _ := backend(t, []byte("x"))
	p, err := faultproxy.New(strings.TrimPrefix(srv.URL, "http://"), faultproxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Inject(faultproxy.Rule{Fault: faultproxy.SlowDown, Kind: faultproxy.Put, Path: "/data/", Nth: 2, Max: 2})
	var b strings.Builder
	for _, u := range []string{"/b/data/1", "/b/locks/1", "/b/data/2", "/b/data/3", "/b/data/4", "/b/data/5"} {
		_, status, err := do(t, p.URL+u, http.MethodPut, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(&b, status/100)
	}
	if got := b.String(); got != "225522" {
		t.Fatalf("statuses %s, want 225522 (the 2nd and 3rd data PUTs)", got)
	}
	if got := p.Injected()[faultproxy.SlowDown]; got != 2 {
		t.Fatalf("Injected = %d, want 2", got)
	}
}
