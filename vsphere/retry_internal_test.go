package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"503", &httpStatusError{Status: http.StatusServiceUnavailable}, true},
		{"500 wrapped", fmt.Errorf("x: %w", &httpStatusError{Status: 500}), true},
		{"404", &httpStatusError{Status: http.StatusNotFound}, false},
		{"403", &httpStatusError{Status: http.StatusForbidden}, false},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"cancelled", context.Canceled, false},
		{"permanent 500", permanent{&httpStatusError{Status: 500}}, false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.want {
				t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(&httpStatusError{Status: 404}, ErrFileNotFound) || errors.Is(&httpStatusError{Status: 500}, ErrFileNotFound) {
		t.Error("404 must be ErrFileNotFound, 500 not")
	}
}

func TestWithRetry(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{"success", []error{nil}, 1, false},
		{"transient then success", []error{&httpStatusError{Status: 502}, nil}, 2, false},
		{"404 not retried", []error{&httpStatusError{Status: 404}}, 1, true},
		{"bounded", []error{io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, nil}, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{}
			c.SetRetry(RetryPolicy{Attempts: 3})
			calls := 0
			err := c.withRetry(t.Context(), func() error {
				calls++
				return tt.errs[calls-1]
			})
			if calls != tt.wantCalls || (err != nil) != tt.wantErr {
				t.Errorf("calls=%d err=%v, want calls=%d err=%v", calls, err, tt.wantCalls, tt.wantErr)
			}
		})
	}
}

func TestPickChoice(t *testing.T) {
	q := types.VirtualMachineQuestionInfo{
		Id:      "q1",
		Text:    "This virtual machine might have been moved or copied.",
		Message: []types.VirtualMachineMessage{{Id: "msg.uuid.altered"}},
		Choice: types.ChoiceOption{ChoiceInfo: []types.BaseElementDescription{
			&types.ElementDescription{Key: "0", Description: types.Description{Label: "Cancel"}},
			&types.ElementDescription{Key: "1", Description: types.Description{Label: "I _Moved It"}},
			&types.ElementDescription{Key: "2", Description: types.Description{Label: "I _Copied It"}},
		}},
	}
	if got := pickChoice(q, "moved"); got != "1" {
		t.Errorf("moved → %q", got)
	}
	if got := pickChoice(q, "copied"); got != "2" {
		t.Errorf("copied → %q", got)
	}
	other := types.VirtualMachineQuestionInfo{Text: "Disk full, retry?", Choice: q.Choice}
	if got := pickChoice(other, "moved"); got != "" {
		t.Errorf("unrelated question answered with %q", got)
	}
}

func TestOptionsFrom(t *testing.T) {
	env := map[string]string{"GOVC_URL": "vc", "GOVC_INSECURE": "false", "GOVC_DATACENTER": "DC9"}
	got := optionsFrom(ConnectOptions{Insecure: true}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if !got.Insecure || got.URL != "vc" || got.Datacenter != "DC9" {
		t.Errorf("got %+v", got)
	}
}

func TestHTTPStatusSentinels(t *testing.T) {
	tests := []struct {
		status           int
		notFound, refuse bool
	}{
		{http.StatusNotFound, true, false},
		{http.StatusForbidden, false, true},
		{http.StatusConflict, false, true},
		{http.StatusLocked, false, true},
		{http.StatusInternalServerError, false, true},
		{http.StatusServiceUnavailable, false, true},
		{http.StatusBadRequest, false, false},
		{http.StatusUnauthorized, false, false},
	}
	for _, tc := range tests {
		err := fmt.Errorf("download: %w", &httpStatusError{Op: "download", Path: "[ds] vm/vm-flat.vmdk", Status: tc.status})
		if got := errors.Is(err, ErrFileNotFound); got != tc.notFound {
			t.Errorf("HTTP %d: ErrFileNotFound = %v", tc.status, got)
		}
		if got := errors.Is(err, ErrFileRefused); got != tc.refuse {
			t.Errorf("HTTP %d: ErrFileRefused = %v", tc.status, got)
		}
	}
}

// The backoff between attempts doubles from Initial up to Max, on the
// policy's clock.
func TestWithRetryBackoff(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC))
	c := &Client{}
	c.SetRetry(RetryPolicy{Attempts: 4, Initial: time.Second, Max: 1500 * time.Millisecond, Clock: clk})
	var calls atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- c.withRetry(t.Context(), func() error {
			if calls.Add(1) < 4 {
				return io.ErrUnexpectedEOF
			}
			return nil
		})
	}()
	// A bound on waiting for the retry loop, so a loop that ignores the
	// clock fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i, wait := range []time.Duration{time.Second, 1500 * time.Millisecond, 1500 * time.Millisecond} {
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatalf("backoff %d: the retry loop is not waiting on the clock: %v", i, err)
		}
		clk.Advance(wait - time.Millisecond)
		if clk.Waiters() != 1 || calls.Load() != int32(i+1) {
			t.Fatalf("backoff %d: retried before %v (%d calls)", i, wait, calls.Load())
		}
		clk.Advance(time.Millisecond)
	}
	if err := <-done; err != nil || calls.Load() != 4 {
		t.Fatalf("withRetry = %v after %d calls, want success after 4", err, calls.Load())
	}
}
