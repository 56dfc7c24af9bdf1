package vsphere_test

import (
	"errors"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

func TestResolvePlacement(t *testing.T) {
	env, v := newVM(t, "place01")
	ctx := t.Context()
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	original := vsphere.OriginalPlacement{Name: "place01", Datastore: v.Datastore, Folder: info.FolderPath, Pool: info.PoolPath, Host: info.HostName}
	vanished := original
	vanished.Folder, vanished.Pool = "/DC0/vm/gone", "/DC0/host/gone/Resources"

	tests := []struct {
		name string
		req  vsphere.PlacementRequest
		// want is "folder pool host" of the placement, then what exists.
		wantFolder, wantPool, wantHost string
		wantWarnings                   int
		wantTaken                      int
		wantHome, wantOriginal         bool
	}{
		{"the original placement, under a new name", vsphere.PlacementRequest{Name: "place01-copy", Original: original},
			info.FolderPath, info.PoolPath, info.HostName, 0, 0, false, true},
		{"the original name and home folder are taken", vsphere.PlacementRequest{Name: "place01", Original: original},
			info.FolderPath, info.PoolPath, info.HostName, 0, 1, true, false},
		// A VM name that looks like a managed object reference is a name:
		// no VM is named so, although a VM has that reference.
		{"a name like a moref", vsphere.PlacementRequest{Name: v.Ref.Value, Original: original},
			info.FolderPath, info.PoolPath, info.HostName, 0, 0, false, true},
		{"a vanished folder falls back to the default; a requested pool pins no host", vsphere.PlacementRequest{Name: "place01-b", Pool: vspheretest.ResourcePool, Original: vanished},
			vspheretest.VMFolder, vspheretest.ResourcePool, "", 1, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := env.Client.ResolvePlacement(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			host := ""
			if pl.Host != nil {
				host = pl.Host.Name()
			}
			if pl.Folder.InventoryPath != tc.wantFolder || pl.Pool.InventoryPath != tc.wantPool || host != tc.wantHost || pl.Datastore != v.Datastore {
				t.Errorf("placement folder %s, pool %s, host %q, datastore %s; want %s, %s, %q, %s",
					pl.Folder.InventoryPath, pl.Pool.InventoryPath, host, pl.Datastore, tc.wantFolder, tc.wantPool, tc.wantHost, v.Datastore)
			}
			if len(pl.Warnings) != tc.wantWarnings || len(pl.NameTaken) != tc.wantTaken || pl.HomeExists != tc.wantHome || pl.OriginalExists != tc.wantOriginal {
				t.Errorf("warnings %q, name taken by %v, home exists %v, original exists %v", pl.Warnings, pl.NameTaken, pl.HomeExists, pl.OriginalExists)
			}
			if tc.wantTaken == 1 && pl.NameTaken[0].MoRef != v.Ref.Value {
				t.Errorf("name taken by %v, want %s", pl.NameTaken, v.Ref.Value)
			}
			if want := "[" + v.Datastore + "] " + tc.req.Name + "/"; pl.HomeFolder != want {
				t.Errorf("home folder %s, want %s", pl.HomeFolder, want)
			}
		})
	}
}

// Every missing item is reported in one error, each saying whether it was
// requested or the original placement's.
func TestResolvePlacementMissing(t *testing.T) {
	env := simtest.Start(t)
	ctx := t.Context()
	tests := []struct {
		name string
		req  vsphere.PlacementRequest
		want []vsphere.MissingItem // Default compared as set or not
	}{
		{"everything requested is missing", vsphere.PlacementRequest{Name: "n1", Datastore: "nope-ds", Folder: "/DC0/vm/nope", Pool: "nope", Host: "nope-host"},
			[]vsphere.MissingItem{
				{Item: vsphere.PlacementDatastore, Name: "nope-ds", Requested: true},
				{Item: vsphere.PlacementFolder, Name: "/DC0/vm/nope", Requested: true},
				{Item: vsphere.PlacementPool, Name: "nope", Requested: true},
				{Item: vsphere.PlacementHost, Name: "nope-host", Requested: true},
			}},
		// The simulator's datacenter has two pools (a cluster and a
		// standalone host), so no default stands in for a vanished one.
		{"vanished originals", vsphere.PlacementRequest{Name: "n1", Original: vsphere.OriginalPlacement{Datastore: "SAN_02", Pool: "/DC0/host/gone/Resources"}},
			[]vsphere.MissingItem{
				{Item: vsphere.PlacementDatastore, Name: "SAN_02"},
				{Item: vsphere.PlacementPool, Name: "/DC0/host/gone/Resources", Default: errors.New("set")},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Client.ResolvePlacement(ctx, tc.req)
			var pe *vsphere.PlacementError
			if !errors.As(err, &pe) || !errors.Is(err, vsphere.ErrNotFound) {
				t.Fatalf("ResolvePlacement = %v, want a *PlacementError", err)
			}
			if len(pe.Missing) != len(tc.want) {
				t.Fatalf("missing %v, want %v", pe.Missing, tc.want)
			}
			for i, got := range pe.Missing {
				w := tc.want[i]
				if got.Item != w.Item || got.Name != w.Name || got.Requested != w.Requested || (got.Default != nil) != (w.Default != nil) {
					t.Errorf("missing[%d] = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}
