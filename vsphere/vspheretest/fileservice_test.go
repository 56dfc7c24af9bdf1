package vspheretest_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// A running VM's files are served only by its host, as ESXi serves them:
// through vCenter they are refused with ESXi's 500 "locked"; through the
// VM's host with a service ticket they are served; after a vMotion the old
// host refuses them too.
func TestLockedFilesOnlyFromTheRuntimeHost(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "lock01", DiskSize: 4 << 20, PowerOn: true})
	c := env.Client
	c.SetRetry(vsphere.RetryPolicy{Attempts: 1})

	for _, p := range []string{v.NvramPath, v.VMXPath, v.FlatPath} {
		_, _, err := c.Download(ctx, v.Datastore, p, 0, -1)
		if !errors.Is(err, vsphere.ErrFileRefused) || !strings.Contains(err.Error(), "500") {
			t.Errorf("direct download of %s: %v, want a 500 refusal", p, err)
		}
	}
	if s := env.Transfers(); s.DirectLocked != 3 || s.Refused != 3 || s.Routed != 0 {
		t.Errorf("after direct downloads: %+v", s)
	}

	files := c.VMFiles(v.VM)
	rc, _, err := files.Download(ctx, v.Datastore, v.NvramPath, 0, -1)
	if err != nil {
		t.Fatalf("download through the VM's host: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, v.Nvram) {
		t.Fatalf("nvram through the host: %d bytes, %v", len(got), err)
	}
	old, err := env.VMHost(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if s := env.Transfers(); s.Routed != 1 || s.RoutedTo[old] != 1 {
		t.Errorf("after a routed download: %+v", s)
	}

	others, err := env.ClusterHosts(ctx, v)
	if err != nil || len(others) == 0 {
		t.Fatalf("no other host in the cluster: %v %v", others, err)
	}
	oldHost, err := c.FindHost(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Migrate(ctx, v, others[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.HostFiles(oldHost).Download(ctx, v.Datastore, v.NvramPath, 0, -1); !errors.Is(err, vsphere.ErrFileRefused) {
		t.Errorf("download from the host the VM left: %v, want a 500 refusal", err)
	}
	// The same Files follows the VM: a 5xx makes it read the runtime
	// host again.
	rc, _, err = files.Download(ctx, v.Datastore, v.NvramPath, 0, -1)
	if err != nil {
		t.Fatalf("download after the vMotion: %v", err)
	}
	rc.Close()
	if s := env.Transfers(); s.RoutedTo[others[0]] != 1 {
		t.Errorf("after the vMotion: %+v", s)
	}
}

// A host endpoint serves only requests with a ticket vCenter issued for
// that host, URL and method, each once; another host refuses a running VM's
// files with ESXi's 500 even with a valid ticket.
func TestHostNeedsItsTicket(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	v := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tick01", DiskSize: 1 << 20, PowerOn: true})
	ds, err := env.Client.FindDatastore(ctx, v.Datastore)
	if err != nil {
		t.Fatal(err)
	}
	name, err := env.VMHost(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	others, err := env.ClusterHosts(ctx, v)
	if err != nil || len(others) == 0 {
		t.Fatalf("other hosts: %v, %v", others, err)
	}
	host := func(name string) *object.HostSystem {
		h, err := env.Client.FindHost(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	own, other := host(name), host(others[0])
	type ticket struct {
		u *url.URL
		c *http.Cookie
	}
	issue := func(h *object.HostSystem, p, method string) ticket {
		u, c, err := ds.ServiceTicket(ds.HostContext(ctx, h), p, method)
		if err != nil || c == nil {
			t.Fatalf("service ticket: %v, %v", c, err)
		}
		return ticket{u, c}
	}
	send := func(method string, u *url.URL, c *http.Cookie) int {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			req.AddCookie(c)
		}
		res, err := env.Client.Vim25().Client.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	before := env.Transfers()
	reused := issue(own, v.NvramPath, http.MethodGet)
	tests := []struct {
		name   string
		method string
		u      *url.URL
		c      *http.Cookie
		want   int
	}{
		{"no ticket", http.MethodGet, issue(own, v.NvramPath, http.MethodGet).u, nil, http.StatusUnauthorized},
		{"another host's ticket", http.MethodGet, issue(other, v.NvramPath, http.MethodGet).u, issue(own, v.NvramPath, http.MethodGet).c, http.StatusUnauthorized},
		{"another method's ticket", http.MethodGet, issue(own, v.NvramPath, http.MethodGet).u, issue(own, v.NvramPath, http.MethodHead).c, http.StatusUnauthorized},
		{"another file's ticket", http.MethodGet, issue(own, v.NvramPath, http.MethodGet).u, issue(own, v.VMXPath, http.MethodGet).c, http.StatusUnauthorized},
		{"valid", http.MethodGet, reused.u, reused.c, http.StatusOK},
		{"used twice", http.MethodGet, reused.u, reused.c, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		if got := send(tc.method, tc.u, tc.c); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	tk := issue(other, v.NvramPath, http.MethodGet)
	if got := send(http.MethodGet, tk.u, tk.c); got != http.StatusInternalServerError {
		t.Errorf("a locked file from a host the VM does not run on: HTTP %d, want 500", got)
	}
	if s := env.Transfers(); s.Routed-before.Routed != 2 || s.Unauthorized-before.Unauthorized != 5 || s.Direct != before.Direct {
		t.Errorf("stats %+v, before %+v", s, before)
	}
}
