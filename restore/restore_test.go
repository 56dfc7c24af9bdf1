package restore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/vmware/govmomi/simulator"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// testDiskSize keeps the fixture small: 16 chunks of 1 MiB, with the
// fixture's random, zero and repeated regions.
const testDiskSize = 16 << 20

type fixture struct {
	env  *vspheretest.Env
	be   *storagetest.Faulty
	repo *repository.Repository
	id   *age.X25519Identity
	vm   *vspheretest.VTPMVM
	m    *repository.Manifest
}

// newFixture starts a simulated vCenter, creates the vTPM VM name in it and
// backs it up into a fresh in-memory repository with 1 MiB chunks.
func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	return newFixtureOn(t, name, storagetest.NewFaulty(storagetest.NewMemory()))
}

// newFixtureOn is newFixture with the repository on be.
func newFixtureOn(t *testing.T, name string, be *storagetest.Faulty) *fixture {
	t.Helper()
	return newFixtureWith(t, name, be, nil)
}

// newFixtureWith is newFixtureOn with a hook that changes the VM before its
// backup (e.g. a user snapshot's delta disk).
func newFixtureWith(t *testing.T, name string, be *storagetest.Faulty, prepare func(*vspheretest.Env, *vspheretest.VTPMVM)) *fixture {
	t.Helper()
	env := simtest.Start(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(t.Context(), be, repository.InitOptions{Recipients: []string{id.Recipient().String()}, ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: name, Seed: 7, DiskSize: testDiskSize})
	if prepare != nil {
		prepare(env, vm)
	}
	res := backup.New(env.Client, repo, backup.Options{ToolVersion: "test"}, nil).BackupVM(t.Context(), vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	repo.SetIdentities([]age.Identity{id})
	m, err := repo.ReadManifest(t.Context(), res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, be: be, repo: repo, id: id, vm: vm, m: m}
}

// restoreTo runs Preflight and Run against env.
func (f *fixture) restoreTo(t *testing.T, ctx context.Context, env *vspheretest.Env, opts restore.Options) (*restore.Result, error) {
	t.Helper()
	plan, err := restore.Preflight(ctx, env.Client, f.repo, f.m, opts)
	if err != nil {
		return nil, err
	}
	return restore.Run(ctx, env.Client, f.repo, plan)
}

// toDir runs PlanDir and RunDir, as `restore --to-dir` does.
func toDir(ctx context.Context, repo *repository.Repository, m *repository.Manifest, dir string, opts restore.DirOptions) (*restore.Result, error) {
	plan, err := restore.PlanDir(ctx, repo, m, dir, opts)
	if err != nil {
		return nil, err
	}
	return restore.RunDir(ctx, repo, plan)
}

// state lists the VMs and every datastore file (name, size, mtime), to prove
// that a refused or failed restore changed nothing.
func state(t *testing.T, env *vspheretest.Env) string {
	t.Helper()
	ctx := t.Context()
	vms, err := env.Client.ListVMs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, vm := range vms {
		fmt.Fprintf(&b, "vm %s %s\n", vm.Name, vm.Ref.Value)
	}
	var walk func(dir string)
	walk = func(dir string) {
		files, err := env.Client.ListFolder(ctx, vspheretest.Datastore, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range files {
			fmt.Fprintf(&b, "file %s %d %s\n", fi.Path, fi.Size, fi.Modified)
			if fi.IsDir {
				walk(strings.TrimPrefix(dir+"/"+fi.Name, "/"))
			}
		}
	}
	walk("")
	return b.String()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkRestoredVM asserts that the registered VM is the backed-up vTPM VM:
// its key, vTPM, firmware and, byte for byte, its .nvram and disk.
func (f *fixture) checkRestoredVM(t *testing.T, env *vspheretest.Env, res *restore.Result, name string) {
	t.Helper()
	ctx := t.Context()
	if res.MoRef == "" || res.Name != name {
		t.Fatalf("result %+v", res)
	}
	vm, err := env.Client.FindVM(ctx, res.MoRef)
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != name {
		t.Errorf("restored VM is named %q, want %q", info.Name, name)
	}
	if info.KeyID == nil || info.KeyID.KeyId != f.vm.KeyID || info.KeyID.ProviderId == nil || info.KeyID.ProviderId.Id != f.vm.ProviderID {
		t.Errorf("config.keyId = %+v, want %s of %s", info.KeyID, f.vm.KeyID, f.vm.ProviderID)
	}
	if !info.VTPM || info.Firmware != "efi" {
		t.Errorf("vTPM %v, firmware %q; want a vTPM and efi", info.VTPM, info.Firmware)
	}
	if want := fmt.Sprintf("[%s] %s/%s.vmx", vspheretest.Datastore, name, f.vm.Name); info.VMXPath != want {
		t.Errorf("vmx %s, want %s", info.VMXPath, want)
	}
	nvram, err := env.ReadFile(ctx, vspheretest.Datastore, name+"/"+f.vm.Name+".nvram")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nvram, f.vm.Nvram) {
		t.Errorf("restored .nvram (%d bytes, sha256 %s) differs from the original (%d bytes)", len(nvram), sha(nvram), len(f.vm.Nvram))
	}
	disk, err := env.ReadFile(ctx, vspheretest.Datastore, name+"/"+f.vm.Name+"-flat.vmdk")
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(disk) != f.vm.DiskSHA256 {
		t.Errorf("restored disk differs from the original")
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, "win11-vtpm")
	ctx := t.Context()
	if err := f.env.DeleteVM(ctx, f.vm); err != nil {
		t.Fatal(err)
	}
	m, err := repository.Select(ctx, f.repo, "win11-vtpm@latest")
	if err != nil || m.BackupID != f.m.BackupID {
		t.Fatalf("Select = %v, %v", m, err)
	}
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Workers: 3})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, f.vm.Name)
	if res.Bytes != f.m.TotalSize() || len(res.Files) != len(f.m.Files) {
		t.Errorf("result: %d bytes in %d files, want %d in %d", res.Bytes, len(res.Files), f.m.TotalSize(), len(f.m.Files))
	}
}

// A VM with a snapshot of its user's (a delta disk on top of the base, the
// .vmx naming the delta) comes back with the whole chain, byte for byte,
// and registered on the delta.
func TestRoundTripWithUserSnapshotDelta(t *testing.T) {
	delta := bytes.Repeat([]byte("written after the user's snapshot "), 1<<15)
	var d *vspheretest.DeltaDisk
	f := newFixtureWith(t, "snap01", storagetest.NewFaulty(storagetest.NewMemory()), func(env *vspheretest.Env, vm *vspheretest.VTPMVM) {
		var err error
		if d, err = env.AddDeltaDisk(t.Context(), vm, delta); err != nil {
			t.Fatal(err)
		}
	})
	ctx := t.Context()
	if n, e := len(f.m.FileByType(repository.FileDiskDescriptor)), len(f.m.FileByType(repository.FileDiskExtent)); n != 2 || e != 2 {
		t.Fatalf("backup holds %d descriptors and %d extents, want the two links of the chain", n, e)
	}
	if err := f.env.DeleteVM(ctx, f.vm); err != nil {
		t.Fatal(err)
	}
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, f.vm.Name)
	got, err := f.env.ReadFile(ctx, vspheretest.Datastore, f.vm.Name+"/"+path.Base(d.ExtentPath))
	if err != nil || !bytes.Equal(got, delta) {
		t.Fatalf("restored delta extent: %d bytes, %v; want the %d bytes written", len(got), err, len(delta))
	}
	vm, err := f.env.Client.FindVM(ctx, f.vm.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.env.Client.VMInfo(ctx, vm)
	if err != nil || len(info.Disks) != 1 || path.Base(info.Disks[0].FileName) != path.Base(d.DescriptorPath) {
		t.Fatalf("restored VM's disk: %+v, %v; want it on the delta %s", info.Disks, err, d.DescriptorPath)
	}
}

func TestRestoreBesideOriginal(t *testing.T) {
	f := newFixture(t, "app01")
	ctx := t.Context()
	origFiles, err := f.env.Client.ListFolder(ctx, f.vm.Datastore, f.vm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC))
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "app01-restored", PowerOn: true, UUID: vsphere.UUIDNew, Clock: clk})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, "app01-restored")
	if !res.PoweredOn || res.PowerOnErr != nil {
		t.Errorf("not powered on (%v)", res.PowerOnErr)
	}
	if !res.Started.Equal(clk.Now()) || !res.Finished.Equal(clk.Now()) {
		t.Errorf("result times %v, %v; want the plan's clock %v", res.Started, res.Finished, clk.Now())
	}
	// The original is untouched: still registered, same files, same bytes.
	info, err := f.env.Client.VMInfo(ctx, f.vm.VM)
	if err != nil || info.Name != "app01" || info.VMXPath != f.vm.DatastorePath(f.vm.VMXPath) {
		t.Fatalf("original VM: %+v, %v", info, err)
	}
	after, err := f.env.Client.ListFolder(ctx, f.vm.Datastore, f.vm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(origFiles) {
		t.Errorf("original folder changed:\nbefore %v\nafter  %v", origFiles, after)
	}
	nvram, err := f.env.ReadFile(ctx, f.vm.Datastore, f.vm.NvramPath)
	if err != nil || !bytes.Equal(nvram, f.vm.Nvram) {
		t.Errorf("original nvram changed (%v)", err)
	}
}

func TestNotRestorableLayout(t *testing.T) {
	f := newFixture(t, "split01")
	m := *f.m
	m.Files = slices.Clone(f.m.Files)
	for i := range m.Files {
		if m.Files[i].Type == repository.FileDiskExtent {
			m.Files[i].Datastore, m.Files[i].Dir = "SAN_02", "split01-disks"
		}
	}
	before := state(t, f.env)
	_, err := restore.Preflight(t.Context(), f.env.Client, f.repo, &m, restore.Options{Name: "split01-copy"})
	if !errors.Is(err, restore.ErrNotRestorable) || !strings.Contains(err.Error(), "[SAN_02] split01-disks/split01-flat.vmdk") || !strings.Contains(err.Error(), "--to-dir") {
		t.Fatalf("Preflight of a VM with a disk outside its home = %v, want ErrNotRestorable naming the disk", err)
	}
	if after := state(t, f.env); after != before {
		t.Fatal("a refused restore changed the target")
	}
	if _, err := toDir(t.Context(), f.repo, &m, t.TempDir(), restore.DirOptions{}); err != nil {
		t.Fatalf("ToDir of the same backup: %v", err)
	}
}

func TestPowerOnFailureKeepsVM(t *testing.T) {
	f := newFixture(t, "app02")
	ctx := t.Context()
	f.env.InjectFault(vspheretest.Fault{Method: "PowerOnVM_Task"})
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "app02-copy", PowerOn: true})
	if err != nil || res == nil || res.PoweredOn || !errors.Is(res.PowerOnErr, restore.ErrPowerOn) {
		t.Fatalf("restore with a failing power-on = %+v, %v; want a result with PowerOnErr wrapping ErrPowerOn, no error", res, err)
	}
	f.env.ClearFaults()
	f.checkRestoredVM(t, f.env, res, "app02-copy")
}

func TestOtherVCenter(t *testing.T) {
	f := newFixture(t, "dc01")
	other := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
	ctx := t.Context()

	before := state(t, other)
	_, err := f.restoreTo(t, ctx, other, restore.Options{})
	if !errors.Is(err, keys.ErrKeyNotAvailable) {
		t.Fatalf("restore to a vCenter without the provider = %v, want ErrKeyNotAvailable", err)
	}
	t.Logf("refusal: %v", err)
	for _, want := range []string{f.vm.KeyID, f.vm.ProviderID, "standard", keys.ReasonProviderNotRegistered, "register the same KMS cluster"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if after := state(t, other); after != before {
		t.Fatalf("a refused restore changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The provider alone is not enough: its KMS must hold the key.
	if err := other.RegisterKeyProvider(ctx, f.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	before = state(t, other)
	_, err = f.restoreTo(t, ctx, other, restore.Options{})
	if !errors.Is(err, keys.ErrKeyNotAvailable) || !strings.Contains(err.Error(), "KeyStateMissingInKMS") {
		t.Fatalf("restore with the provider but not the key = %v", err)
	}
	if after := state(t, other); after != before {
		t.Fatalf("a refused restore changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	if err := other.AddKey(f.vm.KeyID, f.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	res, err := f.restoreTo(t, ctx, other, restore.Options{})
	if err != nil {
		t.Fatalf("restore once the key is there: %v", err)
	}
	f.checkRestoredVM(t, other, res, f.vm.Name)
}

func TestRefusedBeforeWriting(t *testing.T) {
	f := newFixture(t, "web01")
	ctx := t.Context()
	if err := f.env.Client.MakeDirectory(ctx, vspheretest.Datastore, "orphan"); err != nil {
		t.Fatal(err)
	}
	otherID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     restore.Options
		identity age.Identity
		want     error
		mention  string
	}{
		{"VM name exists", restore.Options{}, nil, restore.ErrCollision, "--name"},
		{"home folder exists", restore.Options{Name: "orphan"}, nil, restore.ErrCollision, "[LocalDS_0] orphan/"},
		{"unknown datastore", restore.Options{Name: "n1", Datastore: "nope"}, nil, restore.ErrBadTarget, "nope"},
		{"unknown folder", restore.Options{Name: "n1", Folder: "/DC0/vm/nope"}, nil, restore.ErrBadTarget, "--folder"},
		{"unknown pool", restore.Options{Name: "n1", Pool: "nope"}, nil, restore.ErrBadTarget, "--pool"},
		{"unknown host", restore.Options{Name: "n1", Host: "nope"}, nil, restore.ErrBadTarget, "--host"},
		{"bad name", restore.Options{Name: "a/b"}, nil, restore.ErrBadTarget, "a/b"},
		{"bad uuid", restore.Options{Name: "n1", UUID: "maybe"}, nil, restore.ErrBadTarget, "maybe"},
		{"wrong identity", restore.Options{Name: "n1"}, otherID, repository.ErrWrongIdentity, "identity"},
		{"no space", restore.Options{Name: "n1"}, nil, restore.ErrNoSpace, "--datastore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.identity != nil {
				f.repo.SetIdentities([]age.Identity{tc.identity})
				defer f.repo.SetIdentities([]age.Identity{f.id})
			}
			if tc.want == restore.ErrNoSpace {
				// Room for the files but not for the margin.
				setFreeSpace(t, f.env, f.m.TotalSize()+restore.SpaceMargin(f.m.TotalSize())-1)
			}
			before := state(t, f.env)
			_, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, tc.opts)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Preflight = %v, want %v mentioning %q", err, tc.want, tc.mention)
			}
			if after := state(t, f.env); after != before {
				t.Fatalf("a refused restore changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// Every missing placement item is named at once, each with its flag, so a
// user fixes them in one go; and a new name that looks like a managed
// object reference is a name (it used to be looked up as a reference and
// refused as a collision with that VM).
func TestPlacementRefusalsAndNames(t *testing.T) {
	f := newFixture(t, "place02")
	ctx := t.Context()
	before := state(t, f.env)
	_, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "n1", Datastore: "nope-ds", Folder: "/DC0/vm/nope", Pool: "nope-pool", Host: "nope-host"})
	if !errors.Is(err, restore.ErrBadTarget) {
		t.Fatalf("Preflight = %v, want ErrBadTarget", err)
	}
	for _, want := range []string{`"nope-ds"`, "--datastore", `"/DC0/vm/nope"`, "--folder", `"nope-pool"`, "--pool", `"nope-host"`, "--host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if after := state(t, f.env); after != before {
		t.Fatal("a refused restore changed the target")
	}
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: f.vm.Ref.Value})
	if err != nil || plan.Name != f.vm.Ref.Value {
		t.Fatalf("Preflight with the name %s = %v", f.vm.Ref.Value, err)
	}
}

// setFreeSpace sets the free space the simulator reports for the
// fixture's datastore.
func setFreeSpace(t *testing.T, env *vspheretest.Env, free int64) {
	t.Helper()
	for _, e := range env.Model.Map().All("Datastore") {
		ds, ok := e.(*simulator.Datastore)
		if !ok || ds.Name != vspheretest.Datastore {
			continue
		}
		env.Model.Map().WithLock(&simulator.Context{Map: env.Model.Map()}, ds, func() {
			ds.Summary.FreeSpace = free
			ds.Info.GetDatastoreInfo().FreeSpace = free
		})
		return
	}
	t.Fatalf("no datastore %s in the simulator", vspheretest.Datastore)
}

func TestFailureRemovesPartialRestore(t *testing.T) {
	f := newFixture(t, "db01")
	ctx := t.Context()
	flat := f.m.FileByType(repository.FileDiskExtent)[0]
	// A chunk in the middle of the disk, so some files and part of the
	// disk are uploaded before the failure.
	var victim string
	for i, c := range flat.Chunks {
		if i >= len(flat.Chunks)/2 && c != repository.ZeroChunk {
			victim = c
			break
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) (*repository.Manifest, context.Context, restore.Events)
		want    error
		mention []string
	}{
		{"corrupt chunk", func(t *testing.T) (*repository.Manifest, context.Context, restore.Events) {
			cid, _ := repository.ParseChunkID(victim)
			name := repository.ChunkObjectName(cid)
			data, err := storage.ReadAll(ctx, f.be, name)
			if err != nil {
				t.Fatal(err)
			}
			orig := bytes.Clone(data)
			data[len(data)/2] ^= 0x01
			if err := f.be.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = f.be.Put(context.Background(), name, bytes.NewReader(orig), int64(len(orig))) })
			return f.m, ctx, nil
		}, repository.ErrObjectCorrupt, []string{flat.Name, victim}},
		{"whole-file checksum", func(t *testing.T) (*repository.Manifest, context.Context, restore.Events) {
			m := *f.m
			m.Files = slices.Clone(f.m.Files)
			for i := range m.Files {
				if m.Files[i].Type == repository.FileDiskExtent {
					m.Files[i].SHA256 = strings.Repeat("ab", 32)
				}
			}
			return &m, ctx, nil
		}, restore.ErrFileCorrupt, []string{flat.Name, "SHA-256"}},
		{"storage error", func(t *testing.T) (*repository.Manifest, context.Context, restore.Events) {
			// The victim's fetch starts only once the writer has consumed
			// all but the in-flight chunks before it, so the failure comes
			// with part of the disk uploaded, whatever the scheduling.
			cid, _ := repository.ParseChunkID(victim)
			victimName := repository.ChunkObjectName(cid)
			f.be.AddFault(func(op storagetest.Op, name string) error {
				if op == storagetest.OpGet && name == victimName {
					return errInjected
				}
				return nil
			})
			t.Cleanup(f.be.ClearFaults)
			return f.m, ctx, nil
		}, errInjected, []string{"chunk"}},
		{"cancelled", func(t *testing.T) (*repository.Manifest, context.Context, restore.Events) {
			ctx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			return f.m, ctx, &cancelAfter{bytes: 4 << 20, cancel: cancel}
		}, context.Canceled, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, ctx, ev := tc.setup(t)
			if ev == nil {
				ev = &cancelAfter{bytes: 1 << 62, cancel: func() {}}
			}
			before := state(t, f.env)
			plan, err := restore.Preflight(ctx, f.env.Client, f.repo, m, restore.Options{Name: "db01-copy", Events: ev})
			if err != nil {
				t.Fatal(err)
			}
			res, err := restore.Run(ctx, f.env.Client, f.repo, plan)
			if !errors.Is(err, tc.want) || res != nil {
				t.Fatalf("Run = %+v, %v; want %v", res, err, tc.want)
			}
			t.Logf("error: %v", err)
			if ev.(*cancelAfter).written() < 1<<20 {
				t.Fatal("the failure came before any upload: the test proves nothing")
			}
			for _, w := range tc.mention {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if after := state(t, f.env); after != before {
				t.Fatalf("the failed restore left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

var errInjected = errors.New("injected: 503 slow down")

// cancelAfter cancels the restore once it wrote some bytes, i.e. with the
// home folder created and files partly uploaded.
type cancelAfter struct {
	restore.NopEvents
	mu     sync.Mutex
	bytes  int64
	total  int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Progress(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += n
	if c.total >= c.bytes {
		c.cancel()
	}
}

func (c *cancelAfter) written() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func TestToDir(t *testing.T) {
	f := newFixture(t, "fs01")
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "out")
	res, err := toDir(ctx, f.repo, f.m, dir, restore.DirOptions{Patterns: []string{"*.nvram"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Bytes != int64(len(f.vm.Nvram)) {
		t.Fatalf("result %+v", res)
	}
	got, err := os.ReadFile(filepath.Join(dir, "fs01.nvram"))
	if err != nil || !bytes.Equal(got, f.vm.Nvram) {
		t.Fatalf("restored nvram differs from the original (%v)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the nvram", len(entries))
	}

	tests := []struct {
		name     string
		dir      string
		patterns []string
		want     error
	}{
		{"never overwrites", dir, nil, restore.ErrCollision},
		{"bad pattern", t.TempDir(), []string{"["}, restore.ErrBadTarget},
		{"no match", t.TempDir(), []string{"*.iso"}, restore.ErrBadTarget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(tc.dir)
			if _, err := toDir(ctx, f.repo, f.m, tc.dir, restore.DirOptions{Patterns: tc.patterns}); !errors.Is(err, tc.want) {
				t.Fatalf("ToDir = %v, want %v", err, tc.want)
			}
			if after, _ := os.ReadDir(tc.dir); len(after) != len(before) {
				t.Errorf("the refused ToDir wrote files")
			}
		})
	}

	t.Run("all files, then a corrupt chunk", func(t *testing.T) {
		all := t.TempDir()
		res, err := toDir(ctx, f.repo, f.m, all, restore.DirOptions{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(filepath.Join(all, f.vm.Name+"-flat.vmdk"))
		if err != nil || sha256.Sum256(disk) != f.vm.DiskSHA256 || len(res.Files) != len(f.m.Files) {
			t.Fatalf("disk differs (%v) or files %d", err, len(res.Files))
		}
		flat := f.m.FileByType(repository.FileDiskExtent)[0]
		cid, _ := repository.ParseChunkID(flat.Chunks[0])
		name := repository.ChunkObjectName(cid)
		data, _ := storage.ReadAll(ctx, f.be, name)
		data[10] ^= 0x80
		_ = f.be.Put(ctx, name, bytes.NewReader(data), int64(len(data)))
		empty := t.TempDir()
		if _, err := toDir(ctx, f.repo, f.m, empty, restore.DirOptions{}); !errors.Is(err, repository.ErrObjectCorrupt) || !strings.Contains(err.Error(), flat.Name) {
			t.Fatalf("ToDir with a corrupt chunk = %v", err)
		}
		if left, _ := os.ReadDir(empty); len(left) != 0 {
			t.Errorf("a failed ToDir left %d files", len(left))
		}
	})
}

// PlanDir checks and writes nothing; RunDir writes what it planned, timed
// by the plan's clock, and still refuses a target that appeared since.
func TestPlanDirThenRunDir(t *testing.T) {
	f := newFixture(t, "fs02")
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "out")
	clk := clock.NewFake(time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC))
	plan, err := restore.PlanDir(ctx, f.repo, f.m, dir, restore.DirOptions{Patterns: []string{"*.nvram", "*.vmx"}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 2 || plan.TotalSize != int64(len(f.vm.Nvram)+len(f.vm.VMX)) || plan.Dir != dir {
		t.Fatalf("plan %+v", plan)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("PlanDir created %s (%v)", dir, err)
	}

	t.Run("a target that appeared since the plan", func(t *testing.T) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		late := plan.Files[len(plan.Files)-1].Target
		if err := os.WriteFile(late, []byte("someone else's"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(late)
		if _, err := restore.RunDir(ctx, f.repo, plan); !errors.Is(err, restore.ErrCollision) {
			t.Fatalf("RunDir = %v, want ErrCollision", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("the refused RunDir wrote files: %v", entries)
		}
	})

	res, err := restore.RunDir(ctx, f.repo, plan)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, f.vm.Name+".nvram"))
	if err != nil || !bytes.Equal(got, f.vm.Nvram) || res.Bytes != plan.TotalSize {
		t.Fatalf("restored nvram differs (%v) or %d bytes, want %d", err, res.Bytes, plan.TotalSize)
	}
	if !res.Started.Equal(clk.Now()) || !res.Finished.Equal(clk.Now()) {
		t.Errorf("result times %v, %v; want the plan's clock %v", res.Started, res.Finished, clk.Now())
	}
}

// Powering a restore on with --uuid keep ("moved") beside a running VM with
// the same BIOS UUID would run two VMs with one identity and the same MAC
// addresses on the same networks: refused before anything is written,
// unless the original is powered off or gone, the copy gets a new identity
// (--uuid new), or it is not powered on (issue 15 item 7; it only warned).
func TestPowerOnKeepBesideRunningOriginal(t *testing.T) {
	f := newFixture(t, "twin01")
	ctx := t.Context()
	if f.m.VM.BIOSUUID == "" {
		t.Fatal("the backup recorded no BIOS UUID")
	}
	power := func(on bool) {
		t.Helper()
		task, err := f.vm.VM.PowerOff(ctx)
		if on {
			task, err = f.vm.VM.PowerOn(ctx)
		}
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	power(true)
	before := state(t, f.env)
	_, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "twin01-copy", PowerOn: true})
	if !errors.Is(err, restore.ErrIdentityInUse) {
		t.Fatalf("Preflight of --power-on --uuid keep beside the running original = %v, want ErrIdentityInUse", err)
	}
	for _, want := range []string{"twin01", f.m.VM.BIOSUUID, "poweredOn", "--uuid new", "--power-on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if after := state(t, f.env); after != before {
		t.Fatal("a refused restore changed the target")
	}
	for name, opts := range map[string]restore.Options{
		"--uuid new":       {Name: "twin01-copy", PowerOn: true, UUID: vsphere.UUIDNew},
		"without power-on": {Name: "twin01-copy"},
	} {
		if _, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, opts); err != nil {
			t.Errorf("%s beside the running original: %v", name, err)
		}
	}
	power(false)
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "twin01-copy", PowerOn: true})
	if err != nil {
		t.Fatalf("--uuid keep beside the powered-off original: %v", err)
	}
	if len(plan.Warnings) == 0 || !strings.Contains(strings.Join(plan.Warnings, "\n"), "powered off") {
		t.Errorf("no warning about the powered-off original: %v", plan.Warnings)
	}
}
