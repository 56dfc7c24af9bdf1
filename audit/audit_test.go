package audit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// fixture is one backup of a vTPM VM in a fresh in-memory repository.
type fixture struct {
	env  *vspheretest.Env
	vm   *vspheretest.VTPMVM
	mem  *storagetest.Memory
	repo *repository.Repository
	id   *age.X25519Identity
	m    *repository.Manifest
}

// site is a simulated vCenter with one vTPM VM, shared by the subtests of
// a test: each subtest backs it up into its own repository, so damage done
// to one repository stays there.
type site struct {
	env *vspheretest.Env
	vm  *vspheretest.VTPMVM
}

func newSite(t *testing.T) *site {
	t.Helper()
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "win11-vtpm", Seed: 7, DiskSize: 16 << 20})
	return &site{env: env, vm: vm}
}

// backup backs the site's VM up into a new repository on be (nil: a new
// Memory).
func (s *site) backup(t *testing.T, lockDays int, wrap func(*storagetest.Memory) storage.Backend) *fixture {
	t.Helper()
	mem := storagetest.NewMemory()
	var be storage.Backend = mem
	if wrap != nil {
		be = wrap(mem)
	}
	r := repotest.New(t, repotest.Options{Backend: be, ObjectLockDays: lockDays})
	res := backup.New(s.env.Client, r.Repository, backup.Options{ToolVersion: "test"}, nil).BackupVM(t.Context(), s.vm.VM)
	if res.Err != nil {
		t.Fatalf("backup: %v", res.Err)
	}
	return &fixture{env: s.env, vm: s.vm, mem: mem, repo: r.Repository, id: r.Identity, m: res.Manifest}
}

// chunkObject returns the object name of the first stored chunk of the
// first file of type typ.
func (f *fixture) chunkObject(t *testing.T, typ string) string {
	t.Helper()
	for _, file := range f.m.FileByType(typ) {
		for _, c := range file.Chunks {
			if c == repository.ZeroChunk {
				continue
			}
			id, err := repository.ParseChunkID(c)
			if err != nil {
				t.Fatal(err)
			}
			return repository.ChunkObjectName(id)
		}
	}
	t.Fatalf("no stored chunk of a %s file in %+v", typ, f.m.Files)
	return ""
}

func run(t *testing.T, repo *repository.Repository, vc *vsphere.Client, opts audit.Options) *audit.Report {
	t.Helper()
	rep, err := audit.Run(t.Context(), repo, vc, opts)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

// row returns the report's row of vm.
func row(t *testing.T, rep *audit.Report, vm string) audit.VMReport {
	t.Helper()
	for _, r := range rep.VMs {
		if r.VM == vm {
			return r
		}
	}
	t.Fatalf("no row for VM %s in %+v", vm, rep.VMs)
	return audit.VMReport{}
}

func TestAuditReadyFreshBackup(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	f.repo.SetIdentities([]age.Identity{f.id})
	for _, tc := range []struct {
		name     string
		opts     audit.Options
		mode     string
		readsAll bool
	}{
		{"stat", audit.Options{}, "stat", false},
		{"read-data decrypt", audit.Options{ReadData: true}, "decrypt", true},
		{"inventory", audit.Options{Inventory: true}, "stat", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, f.repo, s.env.Client, tc.opts)
			if !rep.Ready() || len(rep.VMs) != 1 || len(rep.Problems) != 0 {
				t.Fatalf("audit of a fresh backup not ready: %+v", rep)
			}
			r := rep.VMs[0]
			if r.VM != s.vm.Name || r.BackupID != f.m.BackupID || !r.VTPM || !r.ManifestOK || !r.ObjectsOK || !r.NvramOK || !r.KeysChecked || !r.KeysOK || !r.AgeOK {
				t.Errorf("row %+v", r)
			}
			if rep.Mode != tc.mode || r.Objects != len(f.m.Objects) || r.Objects == 0 || (r.ObjectsRead == r.Objects) != tc.readsAll {
				t.Errorf("mode %s, %d objects, %d read; want mode %s, %d objects, all read: %v", rep.Mode, r.Objects, r.ObjectsRead, tc.mode, len(f.m.Objects), tc.readsAll)
			}
			if r.Size != f.m.TotalSize() || r.StoredSize != f.m.StoredSize() || len(r.KeyStatuses) != 1 || !r.KeyStatuses[0].Available {
				t.Errorf("sizes %d/%d, key statuses %+v", r.Size, r.StoredSize, r.KeyStatuses)
			}
		})
	}
}

// TestAuditNotReady proves each finding that makes a VM not ready, with the
// words a user reads.
func TestAuditNotReady(t *testing.T) {
	s := newSite(t)
	for _, tc := range []struct {
		name string
		// damage breaks something and returns the vCenter to audit against.
		damage func(t *testing.T, f *fixture) *vsphere.Client
		opts   audit.Options
		vm     string
		want   []string
		check  func(t *testing.T, r audit.VMReport)
	}{
		{
			name: "missing chunk object",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				name := f.chunkObject(t, repository.FileDiskExtent)
				if err := f.mem.Delete(t.Context(), name); err != nil {
					t.Fatal(err)
				}
				return f.env.Client
			},
			want: []string{"chunk object data/", "is missing", "-flat.vmdk", "run a new backup"},
			check: func(t *testing.T, r audit.VMReport) {
				expect(t, !r.ObjectsOK && r.ObjectsBad == 1 && r.NvramOK, "objects bad, nvram ok", r)
			},
		},
		{
			name: "corrupt nvram chunk with read-data",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				if err := f.mem.Corrupt(f.chunkObject(t, repository.FileNvram), 100); err != nil {
					t.Fatal(err)
				}
				return f.env.Client
			},
			opts: audit.Options{ReadData: true},
			want: []string{"stored object corrupt", "SHA-256 differs from the manifest", ".nvram", "vTPM state"},
			check: func(t *testing.T, r audit.VMReport) {
				expect(t, !r.ObjectsOK && !r.NvramOK, "objects and nvram bad", r)
			},
		},
		{
			name: "key missing on the target vCenter",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				// The other site registered the same provider ID, but its
				// KMS does not hold the VM's key.
				target := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
				if err := target.RegisterKeyProvider(t.Context(), f.vm.ProviderID); err != nil {
					t.Fatal(err)
				}
				return target.Client
			},
			want: []string{"is not available on", "KeyStateMissingInKMS"},
			check: func(t *testing.T, r audit.VMReport) {
				expect(t, r.KeysChecked && !r.KeysOK && r.ObjectsOK, "keys bad only", r)
			},
		},
		{
			name: "provider not registered on the target vCenter",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				target, err := vspheretest.NewSecondEnv(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(target.Close)
				return target.Client
			},
			want: []string{"provider_not_registered", "register the same KMS cluster under provider ID " + vspheretest.DefaultProviderID},
		},
		{
			name:   "backup older than max age",
			damage: func(t *testing.T, f *fixture) *vsphere.Client { return f.env.Client },
			opts:   audit.Options{MaxAge: 26 * time.Hour, Clock: clock.NewFake(time.Now().Add(30 * time.Hour))},
			want:   []string{"is 30h0m0s old, older than the maximum age 26h0m0s"},
			check: func(t *testing.T, r audit.VMReport) {
				expect(t, !r.AgeOK && r.KeysOK && r.ObjectsOK, "only age bad", r)
			},
		},
		{
			name: "vTPM VM without backup (inventory)",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				simtest.CreateVTPMVM(t, f.env, vspheretest.VMOptions{Name: "forgotten-vtpm", Seed: 9, DiskSize: 1 << 20})
				return f.env.Client
			},
			opts:  audit.Options{Inventory: true},
			vm:    "forgotten-vtpm",
			want:  []string{"vTPM VM forgotten-vtpm", "has no backup: add it to the backup job"},
			check: func(t *testing.T, r audit.VMReport) { expect(t, r.BackupID == "" && r.VTPM, "no backup, vTPM", r) },
		},
		{
			name:   "no vCenter given",
			damage: func(t *testing.T, f *fixture) *vsphere.Client { return nil },
			want:   []string{"1 key(s) not checked: no vCenter given"},
			check: func(t *testing.T, r audit.VMReport) {
				expect(t, !r.KeysChecked && !r.KeysOK && r.ObjectsOK, "keys unchecked", r)
			},
		},
		{
			name: "inconsistent manifest",
			damage: func(t *testing.T, f *fixture) *vsphere.Client {
				name := repository.ManifestObjectName(f.m.BackupID)
				data, err := storage.ReadAll(t.Context(), f.mem, name)
				if err != nil {
					t.Fatal(err)
				}
				data = []byte(strings.Replace(string(data), `"schema_version":1`, `"schema_version":9`, 1))
				if err := f.mem.Put(t.Context(), name, strings.NewReader(string(data)), int64(len(data))); err != nil {
					t.Fatal(err)
				}
				return f.env.Client
			},
			want: []string{"latest backup ", "manifest invalid", "schema version 9"},
		},
		{
			name:   "named VM without backup",
			damage: func(t *testing.T, f *fixture) *vsphere.Client { return f.env.Client },
			opts:   audit.Options{VMs: []string{"no-such-vm"}},
			vm:     "no-such-vm",
			want:   []string{"no backup of VM no-such-vm in memory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := s.backup(t, 0, nil)
			vc := tc.damage(t, f)
			rep := run(t, f.repo, vc, tc.opts)
			if rep.Ready() {
				t.Fatalf("audit ready despite the damage: %+v", rep)
			}
			vm := tc.vm
			if vm == "" {
				vm = s.vm.Name
			}
			r := row(t, rep, vm)
			if r.Ready {
				t.Fatalf("VM %s ready: %+v", vm, r)
			}
			all := strings.Join(r.Reasons, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("reasons lack %q:\n%s", w, all)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func expect(t *testing.T, ok bool, what string, r audit.VMReport) {
	t.Helper()
	if !ok {
		t.Errorf("want %s: %+v", what, r)
	}
}

// A corrupted object keeps its size: only reading the data finds it.
func TestAuditCorruptionNeedsReadData(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	if err := f.mem.Corrupt(f.chunkObject(t, repository.FileDiskExtent), 7); err != nil {
		t.Fatal(err)
	}
	if rep := run(t, f.repo, s.env.Client, audit.Options{}); !rep.Ready() {
		t.Fatalf("presence-and-size audit flagged a same-size corruption: %+v", rep.VMs)
	}
	// Without an identity: stored SHA-256 only, no private key needed.
	rep := run(t, f.repo, s.env.Client, audit.Options{ReadData: true})
	if rep.Ready() || rep.Mode != "read" || !strings.Contains(strings.Join(rep.VMs[0].Reasons, "\n"), "SHA-256 differs") {
		t.Fatalf("read-data audit: mode %s, %+v", rep.Mode, rep.VMs)
	}
}

func TestAuditTargetWithKeyIsReady(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	target := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
	if err := target.RegisterKeyProvider(t.Context(), f.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	if err := target.AddKey(f.vm.KeyID, f.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f.repo, target.Client, audit.Options{})
	if !rep.Ready() || rep.VCenter != target.Client.Host() {
		t.Fatalf("audit against a vCenter holding the key: %+v", rep)
	}
}

func TestAuditUnbackedNativeProvider(t *testing.T) {
	env := simtest.Start(t, vspheretest.EnvOptions{NativeProviderID: "nkp-prod", NativeHasBackup: false})
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "nkp-vm", Seed: 3, DiskSize: 1 << 20, ProviderID: "kms-prod"})
	s := &site{env: env, vm: vm}
	f := s.backup(t, 0, nil)
	// Pretend the VM's key belongs to the native provider (the simulator
	// cannot encrypt with one): rewrite the manifest's key record.
	m := *f.m
	m.Keys = append([]repository.KeyInfo(nil), m.Keys...)
	m.Keys[0].ProviderID, m.Keys[0].ProviderType = "nkp-prod", "native"
	if err := env.AddKey(vm.KeyID, "nkp-prod"); err != nil {
		t.Fatal(err)
	}
	m.BackupID = repository.NewBackupID(time.Now())
	if err := f.repo.WriteManifest(t.Context(), &m); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f.repo, env.Client, audit.Options{})
	r := row(t, rep, vm.Name)
	if r.Ready || !strings.Contains(strings.Join(r.Reasons, "\n"), "Native Key Provider nkp-prod has never been backed up") {
		t.Fatalf("unbacked NKP not reported: %+v", r)
	}
}

func TestAuditSubset(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	rep := run(t, f.repo, s.env.Client, audit.Options{ReadData: true, Subset: 0.5})
	r := rep.VMs[0]
	if want := (r.Objects + 1) / 2; r.ObjectsRead != want || !rep.Ready() {
		t.Fatalf("subset 50%%: read %d of %d objects, want %d; ready %v", r.ObjectsRead, r.Objects, want, rep.Ready())
	}
	if _, err := audit.Run(t.Context(), f.repo, nil, audit.Options{ReadData: true, Subset: 1.5}); err == nil {
		t.Fatal("subset 150% accepted")
	}
}

func TestAuditWrongIdentityFails(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	other, _ := age.GenerateX25519Identity()
	f.repo.SetIdentities([]age.Identity{other})
	_, err := audit.Run(t.Context(), f.repo, s.env.Client, audit.Options{ReadData: true})
	if !errors.Is(err, repository.ErrWrongIdentity) {
		t.Fatalf("audit with a foreign identity = %v, want ErrWrongIdentity", err)
	}
}

func TestAuditInventoryNeedsVCenter(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	if _, err := audit.Run(t.Context(), f.repo, nil, audit.Options{Inventory: true}); !errors.Is(err, audit.ErrNoVCenter) {
		t.Fatalf("inventory without vCenter = %v", err)
	}
}

func TestAuditEmptyRepositoryNotReady(t *testing.T) {
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	repo := repotest.New(t, repotest.Options{Backend: storagetest.NewMemory(), Clock: clock.NewFake(at)}).Repository
	rep := run(t, repo, nil, audit.Options{})
	if !rep.Time.Equal(at) {
		t.Fatalf("audit time %v, want the repository clock's %v", rep.Time, at)
	}
	if rep.Ready() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "no backups in memory") {
		t.Fatalf("empty repository: %+v", rep)
	}
}

// retainer adds Object Lock to Memory, enough for the audit: it records
// retention per object.
type retainer struct {
	*storagetest.Memory
	mu    sync.Mutex
	until map[string]time.Time
}

func (r *retainer) SetRetention(_ context.Context, name string, until time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.until[name] = until
	return nil
}

func (r *retainer) Retention(ctx context.Context, name string) (time.Time, error) {
	if _, err := r.Stat(ctx, name); err != nil {
		return time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.until[name], nil
}

func TestAuditRetention(t *testing.T) {
	s := newSite(t)
	var ret *retainer
	f := s.backup(t, 30, func(m *storagetest.Memory) storage.Backend {
		ret = &retainer{Memory: m, until: map[string]time.Time{}}
		return ret
	})
	rep := run(t, f.repo, s.env.Client, audit.Options{RetentionSample: 2})
	r := rep.VMs[0]
	if !r.Ready || r.Retention == nil || r.Retention.Checked != 3 || r.Retention.Retained != 3 || len(r.Warnings) != 0 {
		t.Fatalf("retained backup: %+v retention %+v", r, r.Retention)
	}
	if d := time.Until(r.Retention.Until); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("retained until %v, want about 30 days from now", r.Retention.Until)
	}
	// The manifest lost its retention (e.g. written before the bucket had
	// Object Lock): reported, but the backup is still restorable.
	ret.mu.Lock()
	delete(ret.until, repository.ManifestObjectName(f.m.BackupID))
	ret.mu.Unlock()
	r = run(t, f.repo, s.env.Client, audit.Options{RetentionSample: 2}).VMs[0]
	if !r.Ready || r.Retention.Retained != 2 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "not under Object Lock retention") || !strings.Contains(r.Warnings[0], "manifests/") {
		t.Fatalf("unretained manifest: %+v", r)
	}
}

// A manifest too damaged to name its VM still fails the audit.
func TestAuditUnreadableManifest(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	if err := f.mem.Corrupt(repository.ManifestObjectName(f.m.BackupID), 0); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f.repo, s.env.Client, audit.Options{})
	if rep.Ready() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "backup "+f.m.BackupID+": manifest unreadable, its VM is unknown") {
		t.Fatalf("unreadable manifest: %+v", rep)
	}
}

// Keys of all VMs are checked in one batch; each VM still gets its own
// verdict.
func TestAuditSeveralVMsOneKeyMissing(t *testing.T) {
	s := newSite(t)
	f := s.backup(t, 0, nil)
	other := simtest.CreateVTPMVM(t, s.env, vspheretest.VMOptions{Name: "second-vtpm", Seed: 8, DiskSize: 1 << 20})
	if res := backup.New(s.env.Client, f.repo, backup.Options{}, nil).BackupVM(t.Context(), other.VM); res.Err != nil {
		t.Fatal(res.Err)
	}
	target := simtest.Start(t, vspheretest.EnvOptions{NoKeyProvider: true})
	if err := target.RegisterKeyProvider(t.Context(), s.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	if err := target.AddKey(s.vm.KeyID, s.vm.ProviderID); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f.repo, target.Client, audit.Options{})
	if a, b := row(t, rep, s.vm.Name), row(t, rep, other.Name); !a.Ready || b.Ready || rep.Ready() ||
		!strings.Contains(strings.Join(b.Reasons, "\n"), "key "+other.KeyID) {
		t.Fatalf("want %s ready and %s not (its key %s missing): %+v", s.vm.Name, other.Name, other.KeyID, rep.VMs)
	}
}
