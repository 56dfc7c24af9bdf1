// Package demo runs vtpm-backup's main job end to end against an in-process
// vCenter simulator and a local repository, so a newcomer sees in a minute
// what the tool does for a vTPM VM and why each step matters: backup, list,
// audit, a planted backup rejected for want of the writer key's signature,
// restore under a new name, a byte-for-byte check of the restored .nvram,
// and the key pre-check refusing a restore on a vCenter that lacks the key
// provider.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// VMName is the demo's vTPM VM; RestoredName the copy restored beside it.
const (
	VMName       = "win11-demo"
	RestoredName = "win11-demo-restored"
)

// Options tune the demo.
type Options struct {
	// Dir holds the repository and the age identity; empty means a new
	// temporary folder, removed at the end unless Keep is set.
	Dir string
	// DiskSize of the demo VM; default 64 MiB.
	DiskSize int64
	// Keep leaves the simulator running until ctx ends, calling Ready with
	// the environment a user needs to explore it with govc.
	Keep bool
	// Ready is called with govc-style variables when Keep is set.
	Ready func(env map[string]string)
	// ToolVersion goes into the manifest.
	ToolVersion string
	// Clock is the demo's one clock: it seeds the VM's content, dates the
	// identity and is the repository's clock (backups, audit, restore);
	// default the system clock.
	Clock clock.Clock
}

// Reporter receives the demo's narration.
type Reporter interface {
	// Step starts step n: what it does and why it matters for a vTPM VM.
	Step(n int, title, why string)
	// Detail reports a fact the step established.
	Detail(format string, args ...any)
}

// StepError says which step failed.
type StepError struct {
	Step  int
	Title string
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("demo step %d (%s): %v", e.Step, e.Title, e.Err)
}
func (e *StepError) Unwrap() error { return e.Err }

// Run runs the demo. It returns nil only when every check passed.
func Run(ctx context.Context, opts Options, r Reporter) error {
	if opts.DiskSize == 0 {
		opts.DiskSize = 64 << 20
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "vtpm-backup-demo-"); err != nil {
			return err
		}
		if !opts.Keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		// 0700: the folder holds the demo's private key.
		return fmt.Errorf("demo folder: %w", err)
	}
	d := &run{
		opts:    opts,
		r:       r,
		idPath:  filepath.Join(dir, "identity.txt"),
		keyPath: filepath.Join(dir, "writer.key"),
		repoDir: filepath.Join(dir, "repo"),
	}
	defer d.close()
	for i, s := range steps {
		r.Step(i+1, s.title, s.why)
		if err := s.run(d, ctx); err != nil {
			return &StepError{Step: i + 1, Title: s.title, Err: err}
		}
	}
	if opts.Keep {
		d.handOver(ctx)
	}
	return nil
}

// step is one narrated step of the demo: what it does, why it matters for
// a vTPM VM, and the code that does and checks it.
type step struct {
	title, why string
	run        func(d *run, ctx context.Context) error
}

// steps is the demo, in order; each step builds on the state the ones
// before it left in run.
var steps = []step{
	{"start a simulated vCenter with a key provider and a vTPM VM",
		"a vTPM VM needs EFI firmware, hardware version 14+, and a key provider whose key encrypts its home files (.vmx, .nvram)",
		(*run).startVCenter},
	{"create an encrypted repository and its writer key",
		"backups are encrypted with age to a public key: the backup host cannot read them; only the offline identity can. They are signed with the writer key, whose public key the identity file pins",
		(*run).createRepository},
	{"back up the VM",
		"home files (the .nvram above all) are copied before a temporary snapshot, the disk is streamed in deduplicated chunks, and the key IDs are recorded",
		(*run).backUp},
	{"back up again",
		"the nightly run uploads only what changed: chunks the previous backup stored are skipped",
		(*run).backUpAgain},
	{"list the backups", "each backup is one manifest; IDs sort by time",
		(*run).listBackups},
	{"audit restore readiness",
		"every morning: are all chunks there and intact, is the .nvram in the backup, are the keys available on the vCenter we would restore to?",
		(*run).audit},
	{"plant a forged backup, as someone holding only the bucket's credentials",
		"the recipients are public, so anyone who can write to the bucket can store a chunk that decrypts; without the writer key they cannot sign a manifest, so restores and audits that pin the key reject it",
		(*run).rejectPlanted},
	{"restore under a new name beside the original",
		"the key is checked on the vCenter first; the files keep their names in a new folder (the encrypted .vmx cannot be rewritten) and the VM is registered under the new name",
		(*run).restoreBeside},
	{"verify the restored VM",
		"the restored .nvram must equal the original byte for byte, and the VM must carry the same key and a vTPM",
		(*run).verifyRestored},
	{"try to restore on another vCenter that lacks the key provider",
		"without its key an encrypted VM is locked: vtpm-backup refuses before writing anything, and says what to restore first",
		(*run).refuseWithoutKey},
}

// run is the state the steps share.
type run struct {
	opts                     Options
	r                        Reporter
	idPath, keyPath, repoDir string

	env  *vspheretest.Env
	vm   *vspheretest.VTPMVM
	repo *repository.Repository
}

func (d *run) close() {
	if d.repo != nil {
		_ = d.repo.Close() // a local folder: nothing to flush
	}
	if d.env != nil {
		d.env.Close()
	}
}

func (d *run) startVCenter(ctx context.Context) error {
	var err error
	if d.env, err = vspheretest.NewEnv(ctx, vspheretest.EnvOptions{}); err != nil {
		return err
	}
	seed := uint64(d.opts.Clock.Now().UnixNano())
	if d.vm, err = d.env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: VMName, Seed: seed, DiskSize: d.opts.DiskSize}); err != nil {
		return err
	}
	vm := d.vm
	d.r.Detail("vCenter %s, VM %s (%s): firmware efi, vTPM present, key %s of provider %s", d.env.URL.Host, vm.Name, vm.Ref.Value, vm.KeyID, vm.ProviderID)
	d.r.Detail("its .nvram (the TPM state) is %d bytes, SHA-256 %x", len(vm.Nvram), vm.NvramSHA256[:8])
	return nil
}

func (d *run) createRepository(ctx context.Context) error {
	writer, err := repository.GenerateWriterKey()
	if err != nil {
		return err
	}
	pub, err := repository.GenerateIdentityFile(d.idPath, d.opts.Clock.Now(), writer.Public())
	if err != nil {
		return err
	}
	be, err := local.New(d.repoDir)
	if err != nil {
		return err
	}
	if d.repo, err = repository.Init(ctx, be, repository.InitOptions{Recipients: []string{pub}, WriterKey: writer}, repository.WithClock(d.opts.Clock)); err != nil {
		return err
	}
	if err := repository.WriteWriterKeyFile(d.keyPath, writer, d.repo.Config().ID, d.opts.Clock.Now()); err != nil {
		return err
	}
	d.r.Detail("repository %s, recipient %s", d.repoDir, pub)
	d.r.Detail("identity (private key) %s: keep it offline in real life", d.idPath)
	d.r.Detail("writer key %s (public key %s): backup hosts sign with it; the identity file pins it", d.keyPath, writer.Public())
	return nil
}

func (d *run) backUp(ctx context.Context) error {
	res, err := d.backupOnce(ctx)
	if err != nil {
		return err
	}
	m := res.Manifest
	nv := m.FileByType(repository.FileNvram)
	if len(nv) != 1 || nv[0].SHA256 != fmt.Sprintf("%x", d.vm.NvramSHA256) {
		return fmt.Errorf("the manifest does not record the .nvram with its SHA-256")
	}
	d.r.Detail("backup %s: %d files, %d bytes read, %d bytes stored (%d new, %d zero chunks)", res.BackupID, len(m.Files), res.BytesRead, res.BytesUploaded, res.ChunksNew, res.ChunksZero)
	for _, k := range m.Keys {
		d.r.Detail("recorded key %s of provider %s (%s) for %s", k.KeyID, k.ProviderID, k.ProviderType, k.Use)
	}
	snaps, err := d.env.Client.FindSnapshots(ctx, d.vm.VM, backup.SnapshotPrefix)
	if err != nil || len(snaps) != 0 {
		return fmt.Errorf("the temporary snapshot was not removed (%d left, %v)", len(snaps), err)
	}
	d.r.Detail("temporary snapshot removed")
	return nil
}

func (d *run) backUpAgain(ctx context.Context) error {
	again, err := d.backupOnce(ctx)
	if err != nil {
		return err
	}
	d.r.Detail("backup %s: %d chunks known, %d new, %d bytes uploaded", again.BackupID, again.ChunksKnown, again.ChunksNew, again.BytesUploaded)
	return nil
}

func (d *run) listBackups(ctx context.Context) error {
	cat, err := repository.LoadCatalog(ctx, d.repo)
	if err != nil {
		return err
	}
	for _, b := range cat.Backups(VMName) {
		d.r.Detail("%s  %s", b.ID, b.Time.Format(time.RFC3339))
	}
	if len(cat.Backups(VMName)) != 2 {
		return fmt.Errorf("want 2 backups of %s, found %d", VMName, len(cat.Backups(VMName)))
	}
	return nil
}

// audit reads every object back, so it is the first step that needs the
// identity: the backups before it were made with the public key only.
func (d *run) audit(ctx context.Context) error {
	ids, err := repository.LoadIdentityFile(d.idPath)
	if err != nil {
		return err
	}
	d.repo.SetIdentities(ids)
	rep, err := audit.Run(ctx, d.repo, d.env.Client, audit.Options{ReadData: true})
	if err != nil {
		return err
	}
	for _, row := range rep.VMs {
		verdict := "READY"
		if !row.Ready {
			verdict = "NOT READY"
		}
		d.r.Detail("%s: %s (backup %s, %d objects decrypted and verified, keys available: %v)", row.VM, verdict, row.BackupID, row.ObjectsRead, row.KeysOK)
		for _, why := range row.Reasons {
			d.r.Detail("  %s", why)
		}
	}
	if !rep.Ready() {
		return errors.New("the audit found the backup not ready")
	}
	return nil
}

// rejectPlanted plants what the attacker of issue 16 planted: the newest
// manifest copied under a later ID, its .nvram pointing at a chunk of
// "EVIL" encrypted to the public recipient, unsigned. A reader that pins
// the writer key from the identity file rejects it, @latest skips it, and
// the audit names it.
func (d *run) rejectPlanted(ctx context.Context) error {
	planted, err := d.plant(ctx)
	if err != nil {
		return err
	}
	reader, err := repository.Open(ctx, d.repo.Backend(), repository.WithClock(d.opts.Clock))
	if err != nil {
		return err
	}
	pins, err := repository.IdentityFileWriterKeys(d.idPath)
	if err != nil {
		return err
	}
	reader.SetTrust(repository.Trust{Writers: pins})
	_, err = reader.ReadManifest(ctx, planted)
	if !errors.Is(err, repository.ErrRejected) {
		return fmt.Errorf("the planted backup %s was not rejected (%v)", planted, err)
	}
	d.r.Detail("planted backup %s: %v", planted, err)
	latest, err := repository.Select(ctx, reader, VMName+"@latest")
	if err != nil || latest.BackupID == planted {
		return fmt.Errorf("%s@latest chose %v (%v), not the newest genuine backup", VMName, latest, err)
	}
	d.r.Detail("%s@latest is still the genuine backup %s", VMName, latest.BackupID)
	rep, err := audit.Run(ctx, reader, d.env.Client, audit.Options{})
	if err != nil || rep.Ready() || len(rep.Problems) == 0 {
		return fmt.Errorf("the audit did not report the planted backup (%v)", err)
	}
	d.r.Detail("audit: NOT READY: %s", rep.Problems[0])
	return nil
}

// plant stores the forgery with the attacker's means: the storage and the
// public recipients.
func (d *run) plant(ctx context.Context) (string, error) {
	cat, err := repository.LoadCatalog(ctx, d.repo)
	if err != nil {
		return "", err
	}
	newest, ok := cat.Latest(VMName)
	if !ok {
		return "", fmt.Errorf("no backup of %s", VMName)
	}
	m, err := d.repo.ReadManifest(ctx, newest.ID)
	if err != nil {
		return "", err
	}
	evil := bytes.Repeat([]byte("EVIL"), len(d.vm.Nvram)/4)
	id := repository.ChunkID(sha256.Sum256(evil))
	w := d.repo.NewChunkWriter()
	so, err := w.Put(ctx, id, evil)
	w.Close()
	if err != nil {
		return "", err
	}
	for i, f := range m.Files {
		if f.Type == repository.FileNvram {
			m.Files[i].Chunks, m.Files[i].SHA256, m.Files[i].Size = []string{id.String()}, fmt.Sprintf("%x", id[:]), int64(len(evil))
		}
	}
	m.Objects[id.String()] = so
	m.BackupID = repository.NewBackupID(newest.Time.Add(time.Hour))
	m.Summary = repository.Summary{} // derived by readers, as for old manifests
	data, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return m.BackupID, d.repo.Backend().Put(ctx, repository.ManifestObjectName(m.BackupID), bytes.NewReader(data), int64(len(data)))
}

func (d *run) restoreBeside(ctx context.Context) error {
	sel, err := repository.Select(ctx, d.repo, VMName+"@latest")
	if err != nil {
		return err
	}
	plan, err := restore.Preflight(ctx, d.env.Client, d.repo, sel, restore.Options{Name: RestoredName})
	if err != nil {
		return err
	}
	restored, err := restore.Run(ctx, d.env.Client, d.repo, plan)
	if err != nil {
		return err
	}
	d.r.Detail("registered %s as %s from %s", restored.Name, restored.MoRef, restored.VMXPath)
	return nil
}

func (d *run) verifyRestored(ctx context.Context) error {
	vm := d.vm
	got, err := d.env.ReadFile(ctx, vm.Datastore, RestoredName+"/"+filepath.Base(vm.NvramPath))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, vm.Nvram) {
		return fmt.Errorf("restored .nvram differs from the original (SHA-256 %x, want %x)", sha256.Sum256(got), vm.NvramSHA256)
	}
	d.r.Detail("restored .nvram: %d bytes, identical to the original", len(got))
	rvm, err := d.env.Client.FindVM(ctx, RestoredName)
	if err != nil {
		return err
	}
	info, err := d.env.Client.VMInfo(ctx, rvm)
	if err != nil {
		return err
	}
	if info.KeyID == nil || info.KeyID.KeyId != vm.KeyID || !info.VTPM || info.Firmware != "efi" {
		return fmt.Errorf("restored VM: key %v, vTPM %v, firmware %s; want key %s, vTPM, efi", info.KeyID, info.VTPM, info.Firmware, vm.KeyID)
	}
	d.r.Detail("restored VM %s: key %s, vTPM present, firmware %s", info.Name, info.KeyID.KeyId, info.Firmware)
	if _, err := d.env.Client.FindVM(ctx, VMName); err != nil {
		return fmt.Errorf("the original VM is gone: %w", err)
	}
	return nil
}

func (d *run) refuseWithoutKey(ctx context.Context) error {
	other, err := vspheretest.NewSecondEnv(ctx)
	if err != nil {
		return err
	}
	defer other.Close()
	before, err := other.Client.ListFolder(ctx, d.vm.Datastore, "")
	if err != nil {
		return err
	}
	sel, err := repository.Select(ctx, d.repo, VMName+"@latest")
	if err != nil {
		return err
	}
	_, err = restore.Preflight(ctx, other.Client, d.repo, sel, restore.Options{})
	if !errors.Is(err, keys.ErrKeyNotAvailable) {
		return fmt.Errorf("restore on a vCenter without the key was not refused (%v)", err)
	}
	d.r.Detail("refused, as it must be:")
	d.r.Detail("  %v", err)
	after, err := other.Client.ListFolder(ctx, d.vm.Datastore, "")
	if err != nil {
		return err
	}
	if len(after) != len(before) {
		return fmt.Errorf("the refused restore changed the target datastore")
	}
	d.r.Detail("the target datastore is unchanged")
	return nil
}

// handOver gives the user the running simulator and repository until ctx
// ends.
func (d *run) handOver(ctx context.Context) {
	env := map[string]string{
		"GOVC_URL":             d.env.URL.String(),
		"GOVC_USERNAME":        d.env.Username,
		"GOVC_PASSWORD":        d.env.Password,
		"GOVC_INSECURE":        "1",
		"VTPM_BACKUP_REPO":     d.repoDir,
		"VTPM_BACKUP_IDENTITY": d.idPath,
		// The backups' writer key, for more backups; the identity
		// file pins its public key for the readers.
		"VTPM_BACKUP_WRITER_KEY": d.keyPath,
	}
	if d.opts.Ready != nil {
		d.opts.Ready(env)
	}
	<-ctx.Done()
}

// backupOnce backs up the demo VM the way "vtpm-backup backup" does: a run
// under the repository's shared lock.
func (d *run) backupOnce(ctx context.Context) (*backup.Result, error) {
	results, err := backup.New(d.env.Client, d.repo, backup.Options{ToolVersion: d.opts.ToolVersion}, nil).Run(ctx, backup.Selection{Names: []string{VMName}})
	if err != nil {
		return nil, err
	}
	return results[0], results[0].Err
}
