package vsphere_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// With several datacenters, a placement happens in the datacenter its
// absolute paths name, else the client's, else the original's; with none
// of them it names the missing datacenter.
func TestResolvePlacementDatacenter(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{Datacenters: 2})
	ctx := t.Context()
	dc0, err := vsphere.Connect(ctx, vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true, Datacenter: "DC0", KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dc0.Logout(ctx) }()
	orig1 := vsphere.OriginalPlacement{Name: "x", Datastore: "LocalDS_0", Folder: "/DC1/vm", Pool: "/DC1/host/DC1_C0/Resources"}
	tests := []struct {
		name   string
		c      *vsphere.Client
		req    vsphere.PlacementRequest
		wantDC string // "": a PlacementError naming the datacenter
	}{
		{"an absolute --pool, no --datacenter", env.Client, vsphere.PlacementRequest{Pool: "/DC1/host/DC1_C0/Resources", Original: vsphere.OriginalPlacement{Datastore: "LocalDS_0"}}, "DC1"},
		{"an absolute --folder beats --datacenter", dc0, vsphere.PlacementRequest{Folder: "/DC1/vm", Pool: "DC1_C0/Resources", Original: vsphere.OriginalPlacement{Datastore: "LocalDS_0"}}, "DC1"},
		{"--datacenter beats the original", dc0, vsphere.PlacementRequest{Original: vsphere.OriginalPlacement{Datastore: "LocalDS_0", Pool: "/DC0/host/DC0_C0/Resources"}}, "DC0"},
		{"the original's datacenter", env.Client, vsphere.PlacementRequest{Original: orig1}, "DC1"},
		{"nothing says which", env.Client, vsphere.PlacementRequest{Original: vsphere.OriginalPlacement{Datastore: "LocalDS_0"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Name = "placed01"
			pl, err := tc.c.ResolvePlacement(ctx, tc.req)
			if tc.wantDC == "" {
				var pe *vsphere.PlacementError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), "no datacenter") {
					t.Fatalf("ResolvePlacement = %v, %v; want a PlacementError naming the datacenter", pl, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := pl.Client.Datacenter().Name(); got != tc.wantDC || !strings.HasPrefix(pl.Pool.InventoryPath, "/"+tc.wantDC+"/") {
				t.Errorf("placed in %s, pool %s; want %s", got, pl.Pool.InventoryPath, tc.wantDC)
			}
		})
	}
}
