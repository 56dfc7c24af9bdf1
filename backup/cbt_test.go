package backup_test

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

const (
	cbtDisk  = 32 << 20
	cbtChunk = 1 << 20
)

// cbtFixture is a simulated vCenter, a repository with 1 MiB chunks and a
// VM with a 32 MiB disk and CBT turned on.
type cbtFixture struct {
	env  *vspheretest.Env
	repo *repotest.Repo
	vm   *vspheretest.VTPMVM
	key  int32
}

func newCBTFixture(t *testing.T, o vspheretest.VMOptions, enable bool) *cbtFixture {
	t.Helper()
	env := simtest.Start(t)
	env.SetCBTWindow(8 << 20) // four answers per disk: the backup must loop
	f := &cbtFixture{env: env, repo: repotest.New(t, repotest.Options{ChunkSize: cbtChunk, Decrypt: true})}
	o.Name, o.DiskSize = "cbt-vm", cbtDisk
	f.vm = simtest.CreateVTPMVM(t, env, o)
	keys, err := vspheretest.DiskKeys(t.Context(), f.vm)
	if err != nil {
		t.Fatal(err)
	}
	f.key = keys[0]
	if enable {
		if err := env.EnableCBT(t.Context(), f.vm, true); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *cbtFixture) backup(t *testing.T, o backup.Options) *backup.Result {
	t.Helper()
	o.ToolVersion = "test"
	res := backup.New(f.env.Client, f.repo.Repository, o, nil).BackupVM(t.Context(), f.vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	if len(res.Disks) != 1 {
		t.Fatalf("backup recorded %d disks, want 1: %+v", len(res.Disks), res.Disks)
	}
	t.Logf("backup %s: disk read %q (%s), %d of %d bytes read, %d skipped", res.BackupID, res.Disks[0].Read, res.Disks[0].Fallback, res.DiskBytesRead, cbtDisk, res.BytesSkipped)
	return res
}

// write changes the disk at each offset with n random bytes.
func (f *cbtFixture) write(t *testing.T, seed uint64, n int, offsets ...int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, off := range offsets {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := f.env.WriteDisk(t.Context(), f.vm, f.key, off, data); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRestore restores the backup's disk extent and compares it with the
// disk as it is now.
func (f *cbtFixture) checkRestore(t *testing.T, res *backup.Result) {
	t.Helper()
	ctx := t.Context()
	m, err := f.repo.ReadManifest(ctx, res.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	plan, err := restore.PlanDir(ctx, f.repo.Repository, m, dir, restore.DirOptions{Patterns: []string{"*-flat.vmdk"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.RunDir(ctx, f.repo.Repository, plan); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, filepathBase(f.vm.FlatPath)))
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.env.ReadFile(ctx, f.vm.Datastore, f.vm.FlatPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("restored disk (sha256 %x) differs from the VM's (sha256 %x)", sha256.Sum256(got), sha256.Sum256(want))
	}
}

func filepathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// TestCBTIncremental: with CBT, an unchanged VM's next backup reads no disk
// data, one with 1% changed in scattered 64 KiB writes reads the chunks
// holding them, and both restore byte-identical to the disk.
func TestCBTIncremental(t *testing.T) {
	tests := []struct {
		name    string
		offsets []int64 // 64 KiB writes between the backups
	}{
		{"unchanged", nil},
		// 5 × 64 KiB = 1% of 32 MiB, in 5 different chunks.
		{"1% scattered", []int64{100 << 10, 5<<20 + 300<<10, 11 << 20, 19<<20 + 64<<10, 31<<20 + 960<<10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCBTFixture(t, vspheretest.VMOptions{Seed: 11}, true)
			first := f.backup(t, backup.Options{})
			if d := first.Disks[0]; d.Read != repository.DiskReadAllocated || d.ChangeID == "" || d.UUID == "" || d.Capacity != cbtDisk {
				t.Fatalf("first backup's disk record: %+v", d)
			}
			f.write(t, 1, 64<<10, tt.offsets...)
			second := f.backup(t, backup.Options{})
			d := second.Disks[0]
			if d.Read != repository.DiskReadChanged || d.Fallback != "" || d.ChangeID == first.Disks[0].ChangeID || d.CBTChain != 2 {
				t.Fatalf("second backup's disk record: %+v", d)
			}
			chunks := map[int64]bool{}
			for _, off := range tt.offsets {
				chunks[off/cbtChunk], chunks[(off+64<<10-1)/cbtChunk] = true, true
			}
			changed := int64(len(chunks)) * cbtChunk
			if second.DiskBytesRead > 2*changed || second.DiskBytesRead < int64(len(tt.offsets))*64<<10 {
				t.Errorf("read %d bytes of disk for %d changed chunks (%d bytes)", second.DiskBytesRead, len(chunks), changed)
			}
			if len(tt.offsets) == 0 && second.DiskBytesRead >= 1<<20 {
				t.Errorf("an unchanged VM's backup read %d bytes of disk, want < 1 MiB", second.DiskBytesRead)
			}
			if second.BytesSkipped != cbtDisk-second.DiskBytesRead {
				t.Errorf("skipped %d bytes, want %d", second.BytesSkipped, cbtDisk-second.DiskBytesRead)
			}
			f.checkRestore(t, second)
		})
	}
}

// setDiskUUID gives the VM's disk a new UUID, as replacing the disk does.
func setDiskUUID(t *testing.T, env *vspheretest.Env, v *vspheretest.VTPMVM, uuid string) {
	t.Helper()
	vm := env.Model.Map().Get(v.Ref).(*simulator.VirtualMachine)
	env.Model.Map().WithLock(&simulator.Context{Map: env.Model.Map()}, vm, func() {
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).Uuid = uuid
			}
		}
	})
}

// TestCBTFallback: each case in which CBT cannot be trusted reads the disk
// whole (the fixture's disk is fully allocated), says why, and restores
// byte-identical.
func TestCBTFallback(t *testing.T) {
	tests := []struct {
		name    string
		opts    backup.Options
		prepare func(t *testing.T, f *cbtFixture)
		reason  string
		read    string
	}{
		{"no previous change ID", backup.Options{}, func(t *testing.T, f *cbtFixture) {
			if err := f.env.EnableCBT(t.Context(), f.vm, false); err != nil {
				t.Fatal(err)
			}
			if d := f.backup(t, backup.Options{}).Disks[0]; d.ChangeID != "" || !strings.Contains(d.Fallback, "off for this VM") {
				t.Fatalf("backup without CBT: %+v", d)
			}
			if err := f.env.EnableCBT(t.Context(), f.vm, true); err != nil {
				t.Fatal(err)
			}
		}, "recorded no CBT change ID", repository.DiskReadAllocated},
		{"disk UUID changed", backup.Options{}, func(t *testing.T, f *cbtFixture) {
			setDiskUUID(t, f.env, f.vm, "6000C290-0000-0000-0000-000000000001")
		}, "UUID changed", repository.DiskReadAllocated},
		{"CBT reset", backup.Options{}, func(_ *testing.T, f *cbtFixture) { f.env.ResetCBT(f.vm) }, "reset", repository.DiskReadFull},
		{"query fault", backup.Options{}, func(_ *testing.T, f *cbtFixture) {
			f.env.InjectCBTFault(&types.InvalidState{}, 1)
		}, "query failed", repository.DiskReadFull},
		{"full every 2", backup.Options{FullEvery: 2}, nil, "--full-every 2", repository.DiskReadFull},
		{"cbt off", backup.Options{CBT: backup.CBTOff}, nil, "--cbt off", repository.DiskReadFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCBTFixture(t, vspheretest.VMOptions{Seed: 12}, true)
			if tt.prepare == nil || tt.name != "no previous change ID" {
				f.backup(t, backup.Options{})
			}
			f.write(t, 2, 64<<10, 3<<20, 17<<20)
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			res := f.backup(t, tt.opts)
			d := res.Disks[0]
			if d.Read != tt.read || !strings.Contains(d.Fallback, tt.reason) {
				t.Errorf("disk read %q because %q; want %q because of %q", d.Read, d.Fallback, tt.read, tt.reason)
			}
			if res.DiskBytesRead != cbtDisk {
				t.Errorf("read %d bytes of disk, want all %d", res.DiskBytesRead, cbtDisk)
			}
			f.checkRestore(t, res)
		})
	}
}

// TestCBTThinDisk: a thin disk 10% allocated is read by allocation: the
// unallocated chunks become zero chunks without being read.
func TestCBTThinDisk(t *testing.T) {
	f := newCBTFixture(t, vspheretest.VMOptions{Seed: 13, EmptyDisk: true}, true)
	// 10% of the disk, in 64 KiB writes within 4 of the 32 chunks.
	var offsets []int64
	for _, base := range []int64{0, 9 << 20, 20 << 20, 30 << 20} {
		for i := range int64(13) {
			offsets = append(offsets, base+i*64<<10)
		}
	}
	f.write(t, 3, 64<<10, offsets...)
	if n, err := f.env.AllocatedBytes(f.vm, f.key); err != nil || n != int64(len(offsets))*64<<10 {
		t.Fatalf("allocated %d bytes (%v)", n, err)
	}
	res := f.backup(t, backup.Options{})
	if d := res.Disks[0]; d.Read != repository.DiskReadAllocated {
		t.Fatalf("disk record %+v", d)
	}
	if res.DiskBytesRead > cbtDisk*15/100 {
		t.Errorf("read %d bytes of a 10%%-allocated %d-byte disk, want at most 15%%", res.DiskBytesRead, cbtDisk)
	}
	f.checkRestore(t, res)
}

// TestCBTVerify: --verify-cbt reads everything and reports chunks CBT
// missed; a write CBT never saw (made behind the tracking's back) is one.
func TestCBTVerify(t *testing.T) {
	f := newCBTFixture(t, vspheretest.VMOptions{Seed: 14}, true)
	f.backup(t, backup.Options{})
	f.write(t, 4, 64<<10, 2<<20)
	res := f.backup(t, backup.Options{VerifyCBT: true})
	if d := res.Disks[0]; d.Read != repository.DiskReadFull || res.CBTMissed != 0 || res.DiskBytesRead != cbtDisk {
		t.Fatalf("verified backup: %+v, missed %d, read %d", d, res.CBTMissed, res.DiskBytesRead)
	}
	// A write that bypasses change tracking: CBT cannot report it.
	local := filepath.Join(datastoreDir(t, f.env), f.vm.FlatPath)
	fh, err := os.OpenFile(local, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(bytes.Repeat([]byte{0x5a}, 4096), 7<<20); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	res = f.backup(t, backup.Options{VerifyCBT: true})
	if res.CBTMissed != 1 || !strings.Contains(strings.Join(res.Warnings, "\n"), "CBT missed 1 changed chunk") {
		t.Fatalf("missed %d chunks, warnings %q", res.CBTMissed, res.Warnings)
	}
	f.checkRestore(t, res)
}

// datastoreDir is the local folder behind the simulator's LocalDS_0.
func datastoreDir(t *testing.T, env *vspheretest.Env) string {
	t.Helper()
	for _, obj := range env.Model.Map().All("Datastore") {
		if ds, ok := obj.(*simulator.Datastore); ok && ds.Name == vspheretest.Datastore {
			return ds.Info.GetDatastoreInfo().Url
		}
	}
	t.Fatal("no datastore")
	return ""
}

// TestCBTEnable: --cbt on refuses a VM without CBT before writing; with
// --enable-cbt the backup turns it on, says so, and the next backup reads
// only what changed.
func TestCBTEnable(t *testing.T) {
	f := newCBTFixture(t, vspheretest.VMOptions{Seed: 15}, false)
	res := backup.New(f.env.Client, f.repo.Repository, backup.Options{CBT: backup.CBTOn}, nil).BackupVM(t.Context(), f.vm.VM)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "--enable-cbt") {
		t.Fatalf("--cbt on without CBT: %v", res.Err)
	}
	first := f.backup(t, backup.Options{CBT: backup.CBTOn, EnableCBT: true})
	if !first.CBTEnabled || !strings.Contains(strings.Join(first.Warnings, "\n"), "turned on Changed Block Tracking") {
		t.Fatalf("--enable-cbt: enabled %v, warnings %q", first.CBTEnabled, first.Warnings)
	}
	second := f.backup(t, backup.Options{CBT: backup.CBTOn, EnableCBT: true})
	if second.CBTEnabled || second.Disks[0].Read != repository.DiskReadChanged || second.DiskBytesRead != 0 {
		t.Fatalf("second backup: enabled again %v, %+v, read %d", second.CBTEnabled, second.Disks[0], second.DiskBytesRead)
	}
}
