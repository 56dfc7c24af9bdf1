package vsphere_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// RegisterVM_Task may leave the host unset only for a standalone host or a
// DRS cluster: ResolvePlacement picks one in a cluster without DRS.
func TestResolvePlacementHost(t *testing.T) {
	env, v := newVM(t, "drs01")
	ctx := t.Context()
	c := env.Client
	info, err := c.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	original := vsphere.OriginalPlacement{Name: "drs01", Datastore: v.Datastore, Folder: info.FolderPath, Pool: info.PoolPath, Host: info.HostName}
	orig, err := c.FindHost(ctx, info.HostName)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := c.Finder().ClusterComputeResource(ctx, "DC0_C0")
	if err != nil {
		t.Fatal(err)
	}
	others := otherHosts(t, env, "DC0_C0", info.HostName)

	// DC0_C0 without DRS; C1: H0 in maintenance, H1 disconnected, H2
	// usable; C2: every host in maintenance; C3 with DRS; DS_OTHERS is
	// mounted on the DC0_C0 hosts but the original one.
	if err := env.SetDRS(ctx, cluster, false); err != nil {
		t.Fatal(err)
	}
	addCluster(t, env, "C1", 3, false)
	maintenance(t, host(t, env, "C1_H0"))
	wait(t)(host(t, env, "C1_H1").Disconnect(ctx))
	addCluster(t, env, "C2", 2, false)
	maintenance(t, host(t, env, "C2_H0"))
	maintenance(t, host(t, env, "C2_H1"))
	addCluster(t, env, "C3", 1, true)
	if err := env.AddDatastore(ctx, "DS_OTHERS", others...); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		req        vsphere.PlacementRequest
		wantHost   string
		wantWarn   string
		wantNoHost bool
	}{
		{name: "no DRS, the original host", req: vsphere.PlacementRequest{Original: original}, wantHost: info.HostName},
		{name: "no DRS, another cluster: its first usable host", req: vsphere.PlacementRequest{Pool: "/DC0/host/C1/Resources", Original: original},
			wantHost: "C1_H2", wantWarn: "registering on host C1_H2"},
		{name: "--host wins", req: vsphere.PlacementRequest{Pool: "/DC0/host/C1/Resources", Host: "C1_H1", Original: original}, wantHost: "C1_H1"},
		{name: "no DRS, no usable host", req: vsphere.PlacementRequest{Pool: "/DC0/host/C2/Resources", Original: original}, wantNoHost: true},
		{name: "DRS: vCenter chooses", req: vsphere.PlacementRequest{Pool: "/DC0/host/C3/Resources", Original: original}},
		{name: "no DRS, a datastore the original host lacks", req: vsphere.PlacementRequest{Datastore: "DS_OTHERS", Original: original},
			wantHost: others[0], wantWarn: "without datastore DS_OTHERS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Name = "drs01-copy"
			checkHost(t, c, tc.req, tc.wantHost, tc.wantWarn, tc.wantNoHost)
		})
	}

	// The original host in maintenance mode: another host without DRS,
	// vCenter's choice with it.
	maintenance(t, orig)
	req := vsphere.PlacementRequest{Name: "drs01-copy", Original: original}
	checkHost(t, c, req, others[0], "cannot take the VM", false)
	if err := env.SetDRS(ctx, cluster, true); err != nil {
		t.Fatal(err)
	}
	checkHost(t, c, req, "", "", false)
}

func checkHost(t *testing.T, c *vsphere.Client, req vsphere.PlacementRequest, wantHost, wantWarn string, wantNoHostt bool) {
	t.Helper()
	pl, err := c.ResolvePlacement(t.Context(), req)
	if wantNoHostt {
		var pe *vsphere.PlacementError
		if !errors.As(err, &pe) || !errors.Is(err, vsphere.ErrNotFound) || !strings.Contains(err.Error(), "no host (cluster C2 has DRS off") {
			t.Fatalf("ResolvePlacement = %v, %v; want a PlacementError saying no host can take the VM", pl, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	if pl.Host != nil {
		got = pl.Host.Name()
	}
	if got != wantHost {
		t.Errorf("host %q, want %q", got, wantHost)
	}
	warnings := strings.Join(pl.Warnings, "\n")
	if (wantWarn == "") != (warnings == "") || !strings.Contains(warnings, wantWarn) {
		t.Errorf("warnings %q, want one with %q", warnings, wantWarn)
	}
}

func addCluster(t *testing.T, env *vspheretest.Env, name string, hosts int, drs bool) {
	t.Helper()
	if _, err := env.AddCluster(t.Context(), name, hosts, drs); err != nil {
		t.Fatal(err)
	}
}

func host(t *testing.T, env *vspheretest.Env, name string) *object.HostSystem {
	t.Helper()
	h, err := env.Client.FindHost(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// wait returns a function that waits for a task started with its
// arguments and fails the test on error.
func wait(t *testing.T) func(*object.Task, error) {
	return func(task *object.Task, err error) {
		t.Helper()
		if err == nil {
			err = task.Wait(t.Context())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func maintenance(t *testing.T, h *object.HostSystem) {
	t.Helper()
	wait(t)(h.EnterMaintenanceMode(t.Context(), 0, false, nil))
}

// otherHosts lists the hosts of cluster but except, sorted by name.
func otherHosts(t *testing.T, env *vspheretest.Env, cluster, except string) []string {
	t.Helper()
	hs, err := env.Client.Finder().HostSystemList(t.Context(), "/DC0/host/"+cluster+"/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		if h.Name() != except {
			out = append(out, h.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("cluster %s has no host but %s", cluster, except)
	}
	return out
}
