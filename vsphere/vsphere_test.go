package vsphere_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// newVM starts an env with one vTPM VM of 16 MiB.
func newVM(t *testing.T, name string) (*vspheretest.Env, *vspheretest.VTPMVM) {
	t.Helper()
	env := simtest.Start(t)
	v, err := env.CreateVTPMVM(t.Context(), vspheretest.VMOptions{Name: name, DiskSize: 16 << 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return env, v
}

func TestConnect(t *testing.T) {
	env := simtest.Start(t)
	u := *env.URL
	u.User = nil
	tests := []struct {
		name    string
		opts    vsphere.ConnectOptions
		wantErr error
	}{
		{"ok", vsphere.ConnectOptions{URL: u.String(), Username: "user", Password: "pass", Insecure: true}, nil},
		{"url with credentials", vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true}, nil},
		{"host:port only", vsphere.ConnectOptions{URL: u.Host, Username: "user", Password: "pass", Insecure: true}, nil},
		{"bad password", vsphere.ConnectOptions{URL: u.String(), Username: "user", Password: "wrong-secret", Insecure: true}, vsphere.ErrLogin},
		{"no password", vsphere.ConnectOptions{URL: u.String(), Username: "user", Insecure: true}, vsphere.ErrNoPassword},
		{"no URL", vsphere.ConnectOptions{}, vsphere.ErrBadURL},
		{"bad URL", vsphere.ConnectOptions{URL: "https://[::1"}, vsphere.ErrBadURL},
		{"untrusted certificate", vsphere.ConnectOptions{URL: u.String(), Username: "user", Password: "pass"}, vsphere.ErrCertificate},
		{"unreachable", vsphere.ConnectOptions{URL: "https://127.0.0.1:1/sdk", Insecure: true}, vsphere.ErrUnreachable},
		{"unknown datacenter", vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true, Datacenter: "nope"}, vsphere.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := vsphere.Connect(t.Context(), tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "wrong-secret") {
					t.Errorf("error shows the password: %v", err)
				}
				if tt.name == "bad password" && errors.Is(err, vsphere.ErrNoPassword) {
					t.Errorf("a wrong password is reported as none: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.InstanceUUID() == "" || c.Host() != u.Host || c.Datacenter() == nil {
				t.Errorf("uuid=%q host=%q dc=%v", c.InstanceUUID(), c.Host(), c.Datacenter())
			}
			if err := c.Logout(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv("GOVC_URL", "vc.example.com")
	t.Setenv("GOVC_USERNAME", "admin")
	t.Setenv("GOVC_PASSWORD", "secret")
	t.Setenv("GOVC_INSECURE", "1")
	t.Setenv("GOVC_TLS_CA_CERTS", "/etc/ca.pem")
	got := vsphere.OptionsFromEnv(vsphere.ConnectOptions{Username: "explicit"})
	want := vsphere.ConnectOptions{URL: "vc.example.com", Username: "explicit", Password: "secret", Insecure: true, CACertsFile: "/etc/ca.pem"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFindVM(t *testing.T) {
	env, v := newVM(t, "web01")
	ctx := t.Context()
	c := env.Client
	tests := []struct {
		name, ref string
		want      types.ManagedObjectReference
		wantErr   error
	}{
		{"name", "web01", v.Ref, nil},
		{"path", "/DC0/vm/web01", v.Ref, nil},
		{"moref", v.Ref.Value, v.Ref, nil},
		{"typed moref", "VirtualMachine:" + v.Ref.Value, v.Ref, nil},
		{"missing name", "nope", types.ManagedObjectReference{}, vsphere.ErrNotFound},
		{"missing path", "/DC0/vm/nope", types.ManagedObjectReference{}, vsphere.ErrNotFound},
		{"missing moref", "vm-999999", types.ManagedObjectReference{}, vsphere.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := c.FindVM(ctx, tt.ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (vm.Reference() != tt.want || vm.InventoryPath != "/DC0/vm/web01") {
				t.Errorf("got %v %q", vm.Reference(), vm.InventoryPath)
			}
		})
	}

	// Two VMs with one name in different folders: ambiguous.
	dc := c.Datacenter()
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := folders.VmFolder.CreateFolder(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "web01-x", Folder: "/DC0/vm/prod", DiskSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	other, err := c.FindVM(ctx, "web01-x")
	if err != nil {
		t.Fatal(err)
	}
	if task, err := other.Rename(ctx, "web01"); err != nil {
		t.Fatal(err)
	} else if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.FindVM(ctx, "web01")
	var amb *vsphere.AmbiguousError
	if !errors.As(err, &amb) || !errors.Is(err, vsphere.ErrAmbiguous) || len(amb.Candidates) != 2 {
		t.Fatalf("err = %v, want ambiguous with 2 candidates", err)
	}
	if vm, err := c.FindVM(ctx, "/DC0/vm/prod/web01"); err != nil || vm.Reference() != other.Reference() {
		t.Errorf("path lookup: %v %v", vm, err)
	}

	all, err := c.ListVMs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var vtpm int
	for _, e := range all {
		if e.VTPM && e.KeyID != nil {
			vtpm++
		}
	}
	if vtpm != 2 || len(all) < 3 {
		t.Errorf("ListVMs: %d VMs, %d vTPM; want the simulator's VMs plus 2 vTPM", len(all), vtpm)
	}
	prod, err := c.ListVMs(ctx, "/DC0/vm/prod")
	if err != nil || len(prod) != 1 || prod[0].Ref != other.Reference() {
		t.Errorf("ListVMs(prod) = %v, %v", prod, err)
	}
	if _, err := c.ListVMs(ctx, "/DC0/vm/none"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("ListVMs(missing) err = %v", err)
	}
}

func TestVMInfo(t *testing.T) {
	env, v := newVM(t, "db01")
	ctx := t.Context()
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ field, got, want string }{
		{"name", info.Name, "db01"},
		{"inventory path", info.InventoryPath, "/DC0/vm/db01"},
		{"folder", info.FolderPath, "/DC0/vm"},
		{"pool", info.PoolPath, vspheretest.ResourcePool},
		{"home", info.HomeFolder(), "[LocalDS_0] db01/"},
		{"vmx", info.VMXPath, "[LocalDS_0] db01/db01.vmx"},
		{"firmware", info.Firmware, "efi"},
		{"version", info.HWVersion, "vmx-19"},
		{"disk", info.Disks[0].FileName, "[LocalDS_0] db01/db01.vmdk"},
		{"vcenter uuid", info.VCenterUUID, env.Client.InstanceUUID()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if info.HostName == "" || info.UUID == "" || info.InstanceUUID == "" || !info.VTPM || info.KeyID == nil || info.Raw == nil {
		t.Errorf("incomplete info: %+v", info)
	}
	layout, err := info.Layout()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[vsphere.FileType]int64{}
	for _, f := range layout {
		sizes[f.Type] = f.Size
		if f.Datastore != v.Datastore || f.Dir != v.Dir || f.Disk != (f.Type == vsphere.FileDiskDescriptor || f.Type == vsphere.FileDiskExtent) {
			t.Errorf("layout file %s (%s, disk %v)", f, f.Type, f.Disk)
		}
	}
	if sizes[vsphere.FileNvram] != int64(len(v.Nvram)) || sizes[vsphere.FileDiskExtent] != v.DiskSize || sizes[vsphere.FileConfig] != int64(len(v.VMX)) {
		t.Errorf("layoutEx sizes: %v", sizes)
	}
}

func TestDatastoreFiles(t *testing.T) {
	env, v := newVM(t, "files01")
	ctx := t.Context()
	c := env.Client
	ds := v.Datastore

	// Ranged reads of the disk through the DiskSource.
	src, err := c.OpenDatastoreFile(ctx, ds, v.FlatPath)
	if err != nil {
		t.Fatal(err)
	}
	if src.Size() != v.DiskSize {
		t.Fatalf("size %d, want %d", src.Size(), v.DiskSize)
	}
	whole, err := io.ReadAll(vspheretest.NewDiskContent(1, v.DiskSize))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int64 }{{0, 10}, {4<<20 - 3, 7}, {v.DiskSize - 5, 5}, {0, v.DiskSize}} {
		rc, err := src.Open(ctx, r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, whole[r.off:r.off+r.n]) {
			t.Errorf("range %d+%d: %d bytes, err %v", r.off, r.n, len(got), err)
		}
	}
	if _, err := src.Open(ctx, v.DiskSize-1, 2); err == nil {
		t.Error("range past the end accepted")
	}

	// Missing files.
	if _, _, err := c.Download(ctx, ds, "files01/missing.bin", 0, -1); !errors.Is(err, vsphere.ErrFileNotFound) {
		t.Errorf("download missing: %v", err)
	}
	if _, err := c.OpenDatastoreFile(ctx, ds, "files01/missing.bin"); !errors.Is(err, vsphere.ErrFileNotFound) {
		t.Errorf("open missing: %v", err)
	}
	if _, err := c.Stat(ctx, ds, "files01/missing.bin"); !errors.Is(err, vsphere.ErrFileNotFound) {
		t.Errorf("stat missing: %v", err)
	}
	if _, err := c.ListFolder(ctx, ds, "nowhere"); !errors.Is(err, vsphere.ErrFileNotFound) {
		t.Errorf("list missing folder: %v", err)
	}

	// Upload (non-seekable reader), stat, list, delete.
	data := bytes.Repeat([]byte("vtpm"), 1000)
	if err := c.MakeDirectory(ctx, ds, "restore1"); err != nil {
		t.Fatal(err)
	}
	if err := c.MakeDirectory(ctx, ds, "restore1"); !errors.Is(err, vsphere.ErrFileExists) {
		t.Errorf("mkdir twice: %v", err)
	}
	if err := c.Upload(ctx, ds, "restore1/a.nvram", io.MultiReader(bytes.NewReader(data)), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fi, err := c.Stat(ctx, ds, "restore1/a.nvram")
	if err != nil || fi.Size != int64(len(data)) || fi.IsDir || fi.Path != "[LocalDS_0] restore1/a.nvram" {
		t.Errorf("stat = %+v, %v", fi, err)
	}
	dir, err := c.Stat(ctx, ds, "restore1")
	if err != nil || !dir.IsDir {
		t.Errorf("stat dir = %+v, %v", dir, err)
	}
	list, err := c.ListFolder(ctx, ds, v.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "files01-flat.vmdk,files01.nvram,files01.vmdk,files01.vmx,vmware.log" {
		t.Errorf("list = %s", got)
	}
	if err := c.DeleteFile(ctx, ds, "restore1/a.nvram"); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Exists(ctx, ds, "restore1/a.nvram"); ok || err != nil {
		t.Errorf("exists after delete = %v, %v", ok, err)
	}
	if err := c.DeleteFile(ctx, ds, "restore1/a.nvram"); err != nil {
		t.Errorf("delete missing: %v", err)
	}
	if err := c.DeleteFolder(ctx, ds, "restore1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, ds, "restore1"); ok {
		t.Error("folder still exists")
	}
	space, err := c.DatastoreSpace(ctx, ds)
	if err != nil || space.Capacity <= 0 || space.FreeSpace <= 0 {
		t.Errorf("space = %+v, %v", space, err)
	}
}

func TestSnapshots(t *testing.T) {
	env, v := newVM(t, "snap01")
	ctx := t.Context()
	c := env.Client
	if _, err := c.CreateSnapshot(ctx, v.VM, "user-snap", "", false); err != nil {
		t.Fatal(err)
	}
	ref, err := c.CreateSnapshot(ctx, v.VM, "vtpm-backup-1", "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := c.FindSnapshots(ctx, v.VM, "vtpm-backup-")
	if err != nil || len(snaps) != 1 || snaps[0].Ref != ref || snaps[0].Depth != 1 {
		t.Fatalf("FindSnapshots = %+v, %v", snaps, err)
	}
	removed, err := c.SweepSnapshots(ctx, v.VM, "vtpm-backup-", nil)
	if err != nil || len(removed) != 1 || removed[0] != "vtpm-backup-1" {
		t.Fatalf("sweep = %v, %v", removed, err)
	}
	left, err := c.FindSnapshots(ctx, v.VM, "")
	if err != nil || len(left) != 1 || left[0].Name != "user-snap" {
		t.Errorf("left = %+v, %v", left, err)
	}
	if err := c.RemoveSnapshot(ctx, v.VM, ref); err != nil {
		t.Errorf("removing a removed snapshot: %v", err)
	}
	if _, err := c.SweepSnapshots(ctx, v.VM, "", nil); err == nil {
		t.Error("empty prefix accepted")
	}
}

func TestRegisterPowerOn(t *testing.T) {
	env, v := newVM(t, "reg01")
	ctx := t.Context()
	c := env.Client
	folder, err := c.FindFolder(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := c.FindResourcePool(ctx, vspheretest.ResourcePool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindResourcePool(ctx, "/DC0/host/none/Resources"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("missing pool: %v", err)
	}
	if _, err := c.FindHost(ctx, "no-such-host"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("missing host: %v", err)
	}
	if _, err := c.FindDatastore(ctx, "no-such-ds"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("missing datastore: %v", err)
	}
	vmx := v.DatastorePath(v.VMXPath)
	if _, err := c.RegisterVM(ctx, folder, vmx, "", pool, nil); !errors.Is(err, vsphere.ErrFileExists) {
		t.Errorf("register a registered vmx: %v", err)
	}
	if err := c.Unregister(ctx, v.VM); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, v.Datastore, v.NvramPath); !ok {
		t.Fatal("unregister removed files")
	}
	if _, err := c.FindVMByPath(ctx, vmx); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("FindVMByPath of an unregistered vmx: %v", err)
	}
	vm, err := c.RegisterVM(ctx, folder, vmx, "reg01", pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if byPath, err := c.FindVMByPath(ctx, vmx); err != nil || byPath.Reference() != vm.Reference() {
		t.Errorf("FindVMByPath(%s) = %v, %v; want %s", vmx, byPath, err, vm.Reference().Value)
	}
	if err := c.PowerOn(ctx, vm, vsphere.UUIDKeep); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindVM(ctx, "reg01"); !errors.Is(err, vsphere.ErrNotFound) {
		t.Errorf("after destroy: %v", err)
	}
}

func TestLogoutWithCancelledContext(t *testing.T) {
	env := simtest.Start(t)
	c, err := vsphere.Connect(t.Context(), vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Logout(ctx); err == nil {
		t.Error("logout with a cancelled context succeeded")
	}
	if err := c.Logout(context.WithoutCancel(ctx)); err != nil {
		t.Error(err)
	}
	_ = url.URL{}
}
