package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// cleanupTimeout bounds the removal of a failed restore's files and VM.
const cleanupTimeout = 10 * time.Minute

// ErrPowerOn: the VM was restored and registered, but powering it on
// failed. The restored VM is kept: it is complete, and whatever stopped the
// power-on (no resources, a question for a human) is fixed in vSphere.
var ErrPowerOn = errors.New("restored VM did not power on")

// Result describes a finished restore.
type Result struct {
	BackupID string
	SourceVM string
	// Name and MoRef identify the new VM; MoRef is empty for RunDir.
	Name    string
	MoRef   string
	VMXPath string
	// Dir is the local folder of a RunDir restore.
	Dir       string
	Files     []PlannedFile
	Bytes     int64
	PoweredOn bool
	// PowerOnErr says why a planned power-on failed (it wraps ErrPowerOn).
	// The restore itself succeeded: the VM is registered and complete.
	PowerOnErr error
	Started    time.Time
	Finished   time.Time
}

// Duration is how long the restore took.
func (r *Result) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// MBPerSecond is the restore throughput in MB/s (10^6 bytes).
func (r *Result) MBPerSecond() float64 {
	if s := r.Duration().Seconds(); s > 0 {
		return float64(r.Bytes) / 1e6 / s
	}
	return 0
}

// undo records what a restore created, so a failure removes exactly that.
type undo struct {
	c         *vsphere.Client
	datastore string
	dir       string
	madeDir   bool
	uploaded  []string // paths relative to the datastore
	vm        *object.VirtualMachine
	// vmxPath is set once registration was asked for: cancelled while
	// vCenter was registering, the VM may exist although vm is nil.
	vmxPath string
}

// run removes what the restore created, with a fresh context: the restore's
// own may be cancelled (Ctrl-C) and the leftovers must go all the same.
func (u *undo) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return u.remove(ctx)
}

// remove unregisters the VM and deletes the files and the folder u records.
func (u *undo) remove(ctx context.Context) error {
	var errs []error
	if u.vm == nil && u.vmxPath != "" {
		if vm, err := u.c.FindVMByPath(ctx, u.vmxPath); err == nil {
			u.vm = vm
		} else if !errors.Is(err, vsphere.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if u.vm != nil {
		if err := u.c.Unregister(ctx, u.vm); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(u.uploaded) - 1; i >= 0; i-- {
		if err := u.c.DeleteFile(ctx, u.datastore, u.uploaded[i]); err != nil {
			errs = append(errs, err)
		}
	}
	// The folder did not exist before (Preflight and MakeDirectory make
	// sure): what registration left in it (vmware.log) is ours too.
	if u.madeDir {
		if err := u.c.DeleteFolder(ctx, u.datastore, u.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run restores the backup planned by Preflight: it creates the home folder,
// uploads every file, registers the VM and, when planned, powers it on.
// Any failure or cancellation before the VM is registered and complete
// unregisters it and deletes the files uploaded and the folder created; the
// error then says whether that cleanup succeeded. A power-on failure keeps
// the restored VM: Run returns the Result with PowerOnErr set, and no error.
func Run(ctx context.Context, c *vsphere.Client, repo *repository.Repository, plan *Plan) (res *Result, err error) {
	if plan == nil || plan.m == nil || plan.placement == nil {
		return nil, errors.New("restore: Run needs a plan from Preflight")
	}
	if plan.placement.Client != nil {
		c = plan.placement.Client // c in the target's datacenter
	}
	m, ev := plan.m, plan.events
	res = &Result{
		BackupID: m.BackupID, SourceVM: m.VM.Name, Name: plan.Name, VMXPath: plan.VMXPath,
		Files: plan.Files, Started: plan.clock.Now().UTC(),
	}
	u := &undo{c: c, datastore: plan.Datastore, dir: plan.Name}
	defer func() {
		if err == nil {
			return
		}
		ev.Status("removing what this restore created in " + plan.HomeFolder)
		if cerr := u.run(ctx); cerr != nil {
			err = fmt.Errorf("%w\ncleanup failed, remove by hand what is left in %s: %v", err, plan.HomeFolder, cerr)
		} else {
			err = fmt.Errorf("%w (nothing of this restore was left behind)", err)
		}
		res = nil
	}()

	if plan.Leftover != nil {
		if err := removeLeftover(ctx, c, plan); err != nil {
			return nil, err
		}
	}
	ev.Status("creating " + plan.HomeFolder)
	switch exists, err := c.Exists(ctx, plan.Datastore, plan.Name); {
	case err != nil:
		return nil, err
	case exists:
		// Someone created it since Preflight: it is not ours.
		return nil, fmt.Errorf("%w: %s appeared after the pre-flight checks: pass --name NEW", ErrCollision, plan.HomeFolder)
	}
	// The marker creates the folder: there is no moment when the folder
	// exists without it, so a run killed at any point leaves a folder a
	// rerun recognises as this restore's (see findLeftover).
	u.madeDir = true
	if err := writeMarker(ctx, c, plan, plan.host); err != nil {
		return nil, err
	}

	res.Bytes, err = uploadAll(ctx, c, repo, plan, u)
	if err != nil {
		return nil, err
	}
	vm, err := register(ctx, c, plan, u)
	if err != nil {
		return nil, err
	}
	res.MoRef = vm.Reference().Value
	// Complete: from now on the folder is the VM's, never a leftover. A
	// marker that cannot go would make a later restore of that name
	// remove this VM, so then the restore fails and is undone instead.
	if err := c.DeleteFile(ctx, plan.Datastore, markerPath(plan.Name)); err != nil {
		return nil, fmt.Errorf("remove the restore marker: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Finished = plan.clock.Now().UTC()

	if plan.PowerOn {
		ev.Status(fmt.Sprintf("powering on %s (%s), answering the UUID question with %q", plan.Name, res.MoRef, plan.UUID))
		if perr := c.PowerOn(ctx, vm, plan.UUID); perr != nil {
			res.PowerOnErr = fmt.Errorf("%w: VM %s (%s) is restored and registered but did not power on: %v; power it on in the vSphere Client", ErrPowerOn, plan.Name, res.MoRef, perr)
			return res, nil
		}
		res.PoweredOn = true
	}
	return res, nil
}

// uploadAll rebuilds every file of the plan into the new home folder,
// recording each upload in u before it starts (a failed upload may leave a
// partial file). It returns the bytes written.
func uploadAll(ctx context.Context, c *vsphere.Client, repo *repository.Repository, plan *Plan, u *undo) (int64, error) {
	st := newStreamer(repo, plan.m, plan.workers)
	defer st.close()
	// Uploads go to the host the VM will be registered on, or through
	// vCenter when vCenter places it.
	files := c.HostFiles(plan.placement.Host)
	var n int64
	for _, f := range plan.m.Files {
		target := plan.Name + "/" + f.Name
		plan.events.Status(fmt.Sprintf("restoring %s to [%s] %s", fileLabel(f), plan.Datastore, target))
		u.uploaded = append(u.uploaded, target)
		if err := upload(ctx, files, st, f, plan.Datastore, target, plan.events.Progress); err != nil {
			return n, err
		}
		n += f.Size
	}
	return n, nil
}

// register registers the uploaded .vmx as planned and records the VM in u,
// also when the call failed after vCenter registered it (cancelled
// meanwhile).
func register(ctx context.Context, c *vsphere.Client, plan *Plan, u *undo) (*object.VirtualMachine, error) {
	plan.events.Status(fmt.Sprintf("registering %s as %s in %s", plan.VMXPath, plan.Name, plan.Folder))
	u.vmxPath = plan.VMXPath
	pl := plan.placement
	vm, err := c.RegisterVM(ctx, pl.Folder, plan.VMXPath, plan.Name, pl.Pool, pl.Host)
	if vm != nil {
		u.vm = vm
	}
	if errors.Is(err, vsphere.ErrKeyRequired) {
		return nil, fmt.Errorf("%w: %s refused to register the VM because its key is not available, although the pre-flight check found it: %v", keys.ErrKeyNotAvailable, plan.vcenter, err)
	}
	var locked *vsphere.LockedError
	if errors.As(err, &locked) {
		return nil, lockedError(plan, locked)
	}
	return vm, err
}

// lockedError explains a VM vCenter registered locked: which privilege or
// host setting kept the key from its host, and what to do.
func lockedError(plan *Plan, le *vsphere.LockedError) error {
	host := "its host"
	if le.Host != "" {
		host = "host " + le.Host
	}
	remedy := "Grant the restoring account the privilege Cryptographer.RegisterVM (Cryptographic operations > Register VM)"
	if natives := plan.nativeProviders(); len(natives) > 0 {
		// The pre-check found the host fit (checkKeyHosts); it may have
		// changed since.
		remedy = fmt.Sprintf("Check that %s is still in a cluster and, if the Native Key Provider %s requires one, has a TPM 2.0. ", host, natives[0].ID) + remedy
	}
	if le.HostEncryptionOff() {
		remedy += fmt.Sprintf(", and Cryptographer.RegisterHost (Cryptographic operations > Register host) so that vCenter can put %s into encryption mode (its cryptoState is %q), or have an administrator do so", host, le.HostCryptoState)
	}
	return fmt.Errorf("%w: %s registered %s (%s) but left it locked (runtime.cryptoState %q, connection state %q): %s did not get the VM's key. %s, then retry the restore; a VM already locked this way is unlocked with CryptoUnlock (Unlock VM in the vSphere Client) once that is fixed",
		ErrVMLocked, plan.vcenter, plan.Name, le.VM, le.CryptoState, le.ConnectionState, host, remedy)
}

// errUploadEnded stops the chunk writer when the upload gave up first.
var errUploadEnded = errors.New("upload ended")

// upload streams the rebuilt file into [ds] target. The writer side of the
// pipe is closed with the stream's error, so a failed chunk or checksum
// makes the upload fail instead of completing a short or wrong file.
func upload(ctx context.Context, files *vsphere.Files, st *streamer, f repository.File, ds, target string, progress func(int64)) error {
	pr, pw := io.Pipe()
	streamed := make(chan error, 1)
	go func() {
		err := st.writeFile(ctx, f, pw, progress)
		pw.CloseWithError(err) // nil: EOF
		streamed <- err
	}()
	uerr := files.Upload(ctx, ds, target, pr, f.Size)
	pr.CloseWithError(errUploadEnded)
	serr := <-streamed
	switch {
	case serr != nil && !errors.Is(serr, errUploadEnded):
		return serr
	case uerr != nil:
		return fmt.Errorf("restore %s: %w", fileLabel(f), uerr)
	case serr != nil:
		return fmt.Errorf("upload %s to [%s] %s: ended early", fileLabel(f), ds, target)
	}
	return nil
}
