package backup

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/internal/repository"
	"github.com/vtpm-backup/vtpm-backup/internal/vsphere"
)

// Selection says which VMs to back up. Names and the other criteria add up:
// named VMs plus, with All or Folder, every VM found there.
type Selection struct {
	// Names are VM names, inventory paths or morefs (vm-42).
	Names []string
	// All selects every VM of the datacenter.
	All bool
	// Folder selects every VM below an inventory folder.
	Folder string
	// VTPMOnly keeps only VMs with a virtual TPM.
	VTPMOnly bool
	// Exclude drops VMs whose name matches any of these globs (path.Match).
	Exclude []string
}

// ErrNothingSelected: the selection matched no VM.
var ErrNothingSelected = errors.New("no VM selected")

// ErrBadSelection: the selection itself is invalid (bad glob, no criteria).
var ErrBadSelection = errors.New("invalid VM selection")

// target is a selected VM, or why it could not be found.
type target struct {
	name string
	vm   *object.VirtualMachine
	err  error
}

// resolve turns a selection into VMs. A named VM that cannot be found is
// kept as a failed target, so a nightly run still backs up the others.
func resolve(ctx context.Context, c *vsphere.Client, sel Selection) ([]target, error) {
	if len(sel.Names) == 0 && !sel.All && sel.Folder == "" {
		return nil, fmt.Errorf("%w: name VMs, or use --all or --folder", ErrBadSelection)
	}
	for _, g := range sel.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("%w: --exclude %q: %v", ErrBadSelection, g, err)
		}
	}
	excluded := func(name string) bool {
		for _, g := range sel.Exclude {
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
		return false
	}
	var out []target
	seen := map[string]bool{}
	for _, n := range sel.Names {
		vm, err := c.FindVM(ctx, n)
		if err != nil {
			out = append(out, target{name: n, err: err})
			continue
		}
		if !seen[vm.Reference().Value] && !excluded(path.Base(n)) {
			seen[vm.Reference().Value] = true
			out = append(out, target{name: n, vm: vm})
		}
	}
	if sel.All || sel.Folder != "" {
		vms, err := c.ListVMs(ctx, sel.Folder)
		if err != nil {
			return nil, err
		}
		for _, e := range vms {
			if e.Template || seen[e.Ref.Value] || excluded(e.Name) || (sel.VTPMOnly && !e.VTPM) {
				continue
			}
			seen[e.Ref.Value] = true
			out = append(out, target{name: e.Name, vm: e.VM})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: check the names, --folder and --exclude", ErrNothingSelected)
	}
	return out, nil
}

// Run backs up the selected VMs, Options.Parallel at a time, and returns
// one Result per VM in selection order. One VM's failure does not stop the
// others; the error is non-nil only when the selection itself failed, the
// repository lock could not be taken (ErrLocked: a prune runs) or it was
// lost during the run (ErrLockLost).
func (b *Backuper) Run(ctx context.Context, sel Selection) ([]*Result, error) {
	targets, err := resolve(ctx, b.client, sel)
	if err != nil {
		return nil, err
	}
	if !b.opts.DryRun {
		lock, err := b.lockRun(ctx)
		if err != nil {
			return nil, err
		}
		b.lockID = lock.Info().ID
		defer func() { b.lockID = "" }()
		// A lock that cannot be removed expires by itself.
		defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
		ctx = lock.Context() // cancelled if the lock is lost
		// Read earlier manifests once, before the VMs compete for them.
		if err := b.loadPrevious(ctx); err != nil {
			return nil, err
		}
	}
	results := make([]*Result, len(targets))
	sem := make(chan struct{}, b.opts.Parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		if t.err != nil {
			results[i] = &Result{VM: t.name, Err: t.err}
			b.events.VMDone(results[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = &Result{VM: t.name, Err: ctx.Err()}
				b.events.VMDone(results[i])
				return
			}
			defer func() { <-sem }()
			results[i] = b.BackupVM(ctx, t.vm)
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); errors.Is(cause, repository.ErrLockLost) {
		return results, fmt.Errorf("backup stopped: %w", cause)
	}
	return results, nil
}

// Failed counts failed results.
func Failed(results []*Result) int {
	n := 0
	for _, r := range results {
		if r.Err != nil {
			n++
		}
	}
	return n
}
