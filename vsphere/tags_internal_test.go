package vsphere

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"

	"github.com/vmware/govmomi/simulator"

	// Registers the vAPI endpoints (sessions, tagging).
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// The vAPI session is opened once for concurrent callers and really ended
// by Logout (the simulator then refuses its ID), so a nightly run leaves no
// session behind on the vCenter until it idles out.
func TestRESTSessionOnceAndLoggedOut(t *testing.T) {
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(model.Remove)
	model.Service.TLS = new(tls.Config)
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	t.Cleanup(server.Close)

	c, err := Connect(t.Context(), ConnectOptions{URL: server.URL.String(), Insecure: true, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, err := c.VMsWithTag(t.Context(), "no-such-category", "x")
			if !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	rc := c.rc
	if rc == nil {
		t.Fatal("no vAPI session after VMsWithTag")
	}
	if s, err := rc.Session(t.Context()); err != nil || s == nil {
		t.Fatalf("vAPI session before Logout: %v, %v", s, err)
	}
	if err := c.Logout(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}
	if c.rc != nil {
		t.Error("Logout kept the vAPI client")
	}
	if s, err := rc.Session(t.Context()); err != nil || s != nil {
		t.Fatalf("vAPI session after Logout: %v, %v (want none)", s, err)
	}
}
