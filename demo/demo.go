// Package demo runs vtpm-backup's main job end to end against an in-process
// vCenter simulator and a local repository, so a newcomer sees in a minute
// what the tool does for a vTPM VM and why each step matters: backup, list,
// audit, restore under a new name, a byte-for-byte check of the restored
// .nvram, and the key pre-check refusing a restore on a vCenter that lacks
// the key provider.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
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
func Run(ctx context.Context, opts Options, r Reporter) (err error) {
	if opts.DiskSize == 0 {
		opts.DiskSize = 64 << 20
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vtpm-backup-demo-"); err != nil {
			return err
		}
		if !opts.Keep {
			defer os.RemoveAll(dir)
		}
	}
	n := 0
	step := func(title, why string, f func() error) error {
		n++
		r.Step(n, title, why)
		if err := f(); err != nil {
			return &StepError{Step: n, Title: title, Err: err}
		}
		return nil
	}

	var (
		env  *vspheretest.Env
		vm   *vspheretest.VTPMVM
		repo *repository.Repository
		res  *backup.Result
		m    *repository.Manifest
	)
	defer func() {
		if env != nil {
			env.Close()
		}
	}()

	if err := step("start a simulated vCenter with a key provider and a vTPM VM",
		"a vTPM VM needs EFI firmware, hardware version 14+, and a key provider whose key encrypts its home files (.vmx, .nvram)",
		func() error {
			var err error
			if env, err = vspheretest.NewEnv(ctx, vspheretest.EnvOptions{}); err != nil {
				return err
			}
			if vm, err = env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: VMName, Seed: uint64(time.Now().UnixNano()), DiskSize: opts.DiskSize}); err != nil {
				return err
			}
			r.Detail("vCenter %s, VM %s (%s): firmware efi, vTPM present, key %s of provider %s", env.URL.Host, vm.Name, vm.Ref.Value, vm.KeyID, vm.ProviderID)
			r.Detail("its .nvram (the TPM state) is %d bytes, SHA-256 %x", len(vm.Nvram), vm.NvramSHA256[:8])
			return nil
		}); err != nil {
		return err
	}

	idPath := filepath.Join(dir, "identity.txt")
	repoDir := filepath.Join(dir, "repo")
	if err := step("create an encrypted repository",
		"backups are encrypted with age to a public key: the backup host cannot read them; only the offline identity can",
		func() error {
			pub, err := repository.GenerateIdentityFile(idPath, time.Now())
			if err != nil {
				return err
			}
			be, err := local.New(repoDir)
			if err != nil {
				return err
			}
			if repo, err = repository.Init(ctx, be, repository.InitOptions{Recipients: []string{pub}}); err != nil {
				return err
			}
			r.Detail("repository %s, recipient %s", repoDir, pub)
			r.Detail("identity (private key) %s: keep it offline in real life", idPath)
			return nil
		}); err != nil {
		return err
	}

	if err := step("back up the VM",
		"home files (the .nvram above all) are copied before a temporary snapshot, the disk is streamed in deduplicated chunks, and the key IDs are recorded",
		func() error {
			var err error
			if res, err = backupOnce(ctx, env, repo, opts.ToolVersion); err != nil {
				return err
			}
			m = res.Manifest
			nv := m.FileByType(repository.FileNvram)
			if len(nv) != 1 || nv[0].SHA256 != fmt.Sprintf("%x", vm.NvramSHA256) {
				return fmt.Errorf("the manifest does not record the .nvram with its SHA-256")
			}
			r.Detail("backup %s: %d files, %d bytes read, %d bytes stored (%d new, %d zero chunks)", res.BackupID, len(m.Files), res.BytesRead, res.BytesUploaded, res.ChunksNew, res.ChunksZero)
			for _, k := range m.Keys {
				r.Detail("recorded key %s of provider %s (%s) for %s", k.KeyID, k.ProviderID, k.ProviderType, k.Use)
			}
			snaps, err := env.Client.FindSnapshots(ctx, vm.VM, backup.SnapshotPrefix)
			if err != nil || len(snaps) != 0 {
				return fmt.Errorf("the temporary snapshot was not removed (%d left, %v)", len(snaps), err)
			}
			r.Detail("temporary snapshot removed")
			return nil
		}); err != nil {
		return err
	}

	if err := step("back up again",
		"the nightly run uploads only what changed: chunks the previous backup stored are skipped",
		func() error {
			again, err := backupOnce(ctx, env, repo, opts.ToolVersion)
			if err != nil {
				return err
			}
			r.Detail("backup %s: %d chunks known, %d new, %d bytes uploaded", again.BackupID, again.ChunksKnown, again.ChunksNew, again.BytesUploaded)
			return nil
		}); err != nil {
		return err
	}

	if err := step("list the backups", "each backup is one manifest; IDs sort by time", func() error {
		cat, err := repository.LoadCatalog(ctx, repo)
		if err != nil {
			return err
		}
		for _, b := range cat.Backups(VMName) {
			r.Detail("%s  %s", b.ID, b.Time.Format(time.RFC3339))
		}
		if len(cat.Backups(VMName)) != 2 {
			return fmt.Errorf("want 2 backups of %s, found %d", VMName, len(cat.Backups(VMName)))
		}
		return nil
	}); err != nil {
		return err
	}

	ids, err := repository.LoadIdentityFile(idPath)
	if err != nil {
		return err
	}
	repo.SetIdentities(ids)

	if err := step("audit restore readiness",
		"every morning: are all chunks there and intact, is the .nvram in the backup, are the keys available on the vCenter we would restore to?",
		func() error {
			rep, err := audit.Run(ctx, repo, env.Client, audit.Options{ReadData: true})
			if err != nil {
				return err
			}
			for _, row := range rep.VMs {
				verdict := "READY"
				if !row.Ready {
					verdict = "NOT READY"
				}
				r.Detail("%s: %s (backup %s, %d objects decrypted and verified, keys available: %v)", row.VM, verdict, row.BackupID, row.ObjectsRead, row.KeysOK)
				for _, why := range row.Reasons {
					r.Detail("  %s", why)
				}
			}
			if !rep.Ready() {
				return errors.New("the audit found the backup not ready")
			}
			return nil
		}); err != nil {
		return err
	}

	var restored *restore.Result
	if err := step("restore under a new name beside the original",
		"the key is checked on the vCenter first; the files keep their names in a new folder (the encrypted .vmx cannot be rewritten) and the VM is registered under the new name",
		func() error {
			sel, err := restore.Select(ctx, repo, VMName+"@latest")
			if err != nil {
				return err
			}
			plan, err := restore.Preflight(ctx, env.Client, repo, sel, restore.Options{Name: RestoredName})
			if err != nil {
				return err
			}
			if restored, err = restore.Run(ctx, env.Client, repo, plan); err != nil {
				return err
			}
			r.Detail("registered %s as %s from %s", restored.Name, restored.MoRef, restored.VMXPath)
			return nil
		}); err != nil {
		return err
	}

	if err := step("verify the restored VM",
		"the restored .nvram must equal the original byte for byte, and the VM must carry the same key and a vTPM",
		func() error {
			ds := vm.Datastore
			got, err := download(ctx, env, ds, RestoredName+"/"+filepath.Base(vm.NvramPath))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, vm.Nvram) {
				return fmt.Errorf("restored .nvram differs from the original (SHA-256 %x, want %x)", sha256.Sum256(got), vm.NvramSHA256)
			}
			r.Detail("restored .nvram: %d bytes, identical to the original", len(got))
			rvm, err := env.Client.FindVM(ctx, RestoredName)
			if err != nil {
				return err
			}
			info, err := env.Client.VMInfo(ctx, rvm)
			if err != nil {
				return err
			}
			if info.KeyID == nil || info.KeyID.KeyId != vm.KeyID || !info.VTPM || info.Firmware != "efi" {
				return fmt.Errorf("restored VM: key %v, vTPM %v, firmware %s; want key %s, vTPM, efi", info.KeyID, info.VTPM, info.Firmware, vm.KeyID)
			}
			r.Detail("restored VM %s: key %s, vTPM present, firmware %s", info.Name, info.KeyID.KeyId, info.Firmware)
			if _, err := env.Client.FindVM(ctx, VMName); err != nil {
				return fmt.Errorf("the original VM is gone: %w", err)
			}
			return nil
		}); err != nil {
		return err
	}

	if err := step("try to restore on another vCenter that lacks the key provider",
		"without its key an encrypted VM is locked: vtpm-backup refuses before writing anything, and says what to restore first",
		func() error {
			other, err := vspheretest.NewSecondEnv(ctx)
			if err != nil {
				return err
			}
			defer other.Close()
			before, err := other.Client.ListFolder(ctx, vm.Datastore, "")
			if err != nil {
				return err
			}
			sel, err := restore.Select(ctx, repo, VMName+"@latest")
			if err != nil {
				return err
			}
			_, err = restore.Preflight(ctx, other.Client, repo, sel, restore.Options{})
			if !errors.Is(err, keys.ErrKeyNotAvailable) {
				return fmt.Errorf("restore on a vCenter without the key was not refused (%v)", err)
			}
			r.Detail("refused, as it must be:")
			r.Detail("  %v", err)
			after, err := other.Client.ListFolder(ctx, vm.Datastore, "")
			if err != nil {
				return err
			}
			if len(after) != len(before) {
				return fmt.Errorf("the refused restore changed the target datastore")
			}
			r.Detail("the target datastore is unchanged")
			return nil
		}); err != nil {
		return err
	}

	if opts.Keep {
		env2 := map[string]string{
			"GOVC_URL":             env.URL.String(),
			"GOVC_USERNAME":        env.Username,
			"GOVC_PASSWORD":        env.Password,
			"GOVC_INSECURE":        "1",
			"VTPM_BACKUP_REPO":     repoDir,
			"VTPM_BACKUP_IDENTITY": idPath,
		}
		if opts.Ready != nil {
			opts.Ready(env2)
		}
		<-ctx.Done()
	}
	return nil
}

// backupOnce backs up the demo VM the way "vtpm-backup backup" does: a run
// under the repository's shared lock.
func backupOnce(ctx context.Context, env *vspheretest.Env, repo *repository.Repository, toolVersion string) (*backup.Result, error) {
	results, err := backup.New(env.Client, repo, backup.Options{ToolVersion: toolVersion}, nil).Run(ctx, backup.Selection{Names: []string{VMName}})
	if err != nil {
		return nil, err
	}
	return results[0], results[0].Err
}

func download(ctx context.Context, env *vspheretest.Env, ds, p string) ([]byte, error) {
	rc, _, err := env.Client.Download(ctx, ds, p, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
