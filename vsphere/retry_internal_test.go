package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"

	"github.com/vmware/govmomi/vim25/types"
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
