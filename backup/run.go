package backup

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// Selection says which VMs to back up. Names and the other criteria add up:
// named VMs plus, with All, Folder or Tags, every VM found there.
type Selection struct {
	// Names are VM names, inventory paths or morefs (vm-42).
	Names []string
	// All selects every VM of the datacenter.
	All bool
	// Folder selects every VM below an inventory folder.
	Folder string
	// Tags select every VM carrying any of these vSphere tags, each
	// "CATEGORY/NAME" (one cron job per shard of a fleet tagged by an
	// administrator). Tags on hosts or folders do not select their VMs.
	Tags []string
	// VTPMOnly keeps only VMs with a virtual TPM.
	VTPMOnly bool
	// Exclude drops VMs whose name matches any of these globs (path.Match).
	Exclude []string
}

// ErrNothingSelected: the selection matched no VM.
var ErrNothingSelected = errors.New("no VM selected")

// ErrBadSelection: the selection itself is invalid (bad glob, bad or unknown
// tag, no criteria).
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
	tags, err := sel.check()
	if err != nil {
		return nil, err
	}
	r := &resolver{sel: sel, seen: map[string]bool{}}
	r.addNamed(ctx, c)
	// Tagged VMs, resolved before any listing so that a mistyped tag fails
	// the run instead of silently backing up less.
	tagged, err := taggedVMs(ctx, c, sel.Tags, tags)
	if err != nil {
		return nil, err
	}
	if sel.All || sel.Folder != "" {
		vms, err := c.ListVMs(ctx, sel.Folder)
		if err != nil {
			return nil, err
		}
		r.addListed(vms, func(vsphere.VMListEntry) bool { return true })
	}
	// With All every tagged VM is already in; otherwise one listing of the
	// inventory tells the tagged VMs' names, templates and vTPMs.
	if len(tagged) > 0 && !sel.All {
		vms, err := c.ListVMs(ctx, "")
		if err != nil {
			return nil, err
		}
		r.addListed(vms, func(e vsphere.VMListEntry) bool { return tagged[e.Ref.Value] })
	}
	if len(r.out) == 0 {
		return nil, fmt.Errorf("%w: check the names, --folder, --vsphere-tag and --exclude", ErrNothingSelected)
	}
	return r.out, nil
}

// check validates the selection before anything is asked of vCenter and
// returns its tags as category and name.
func (sel Selection) check() ([][2]string, error) {
	if len(sel.Names) == 0 && !sel.All && sel.Folder == "" && len(sel.Tags) == 0 {
		return nil, fmt.Errorf("%w: name VMs, or use --all, --folder or --vsphere-tag", ErrBadSelection)
	}
	for _, g := range sel.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("%w: --exclude %q: %v", ErrBadSelection, g, err)
		}
	}
	tags := make([][2]string, 0, len(sel.Tags))
	for _, t := range sel.Tags {
		cat, name, err := ParseTag(t)
		if err != nil {
			return nil, err
		}
		tags = append(tags, [2]string{cat, name})
	}
	return tags, nil
}

// excluded reports whether a VM name matches an --exclude glob.
func (sel Selection) excluded(name string) bool {
	for _, g := range sel.Exclude {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// resolver collects the selected VMs in selection order, each once.
type resolver struct {
	sel  Selection
	seen map[string]bool // by moref
	out  []target
}

// addNamed adds the named VMs; one that cannot be found becomes a failed
// target.
func (r *resolver) addNamed(ctx context.Context, c *vsphere.Client) {
	for _, n := range r.sel.Names {
		vm, err := c.FindVM(ctx, n)
		if err != nil {
			r.out = append(r.out, target{name: n, err: err})
			continue
		}
		if !r.seen[vm.Reference().Value] && !r.sel.excluded(path.Base(n)) {
			r.seen[vm.Reference().Value] = true
			r.out = append(r.out, target{name: n, vm: vm})
		}
	}
}

// addListed adds the listed VMs that keep accepts, leaving out templates,
// excluded names and, with VTPMOnly, VMs without a vTPM.
func (r *resolver) addListed(vms []vsphere.VMListEntry, keep func(vsphere.VMListEntry) bool) {
	for _, e := range vms {
		if !keep(e) || e.Template || r.seen[e.Ref.Value] || r.sel.excluded(e.Name) || (r.sel.VTPMOnly && !e.VTPM) {
			continue
		}
		r.seen[e.Ref.Value] = true
		r.out = append(r.out, target{name: e.Name, vm: e.VM})
	}
}

// taggedVMs returns the morefs of the VMs carrying any of the tags; names
// are the --vsphere-tag values, for messages.
func taggedVMs(ctx context.Context, c *vsphere.Client, names []string, tags [][2]string) (map[string]bool, error) {
	tagged := map[string]bool{}
	for i, t := range tags {
		refs, err := c.VMsWithTag(ctx, t[0], t[1])
		if err != nil {
			if errors.Is(err, vsphere.ErrNotFound) {
				return nil, fmt.Errorf("%w: --vsphere-tag %s: %w (check the spelling; names are case-sensitive)", ErrBadSelection, names[i], err)
			}
			return nil, fmt.Errorf("--vsphere-tag %s: %w", names[i], err)
		}
		for _, r := range refs {
			tagged[r.Value] = true
		}
	}
	return tagged, nil
}

// ParseTag splits a --vsphere-tag value "CATEGORY/NAME" at its one slash.
// Errors wrap ErrBadSelection.
func ParseTag(s string) (category, name string, err error) {
	category, name, ok := strings.Cut(s, "/")
	if !ok || category == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%w: --vsphere-tag %q: want CATEGORY/NAME, e.g. backup/shard-a", ErrBadSelection, s)
	}
	return category, name, nil
}

// Run backs up the selected VMs, Options.Parallel at a time, and returns
// one Result per VM in selection order. One VM's failure does not stop the
// others; the error is non-nil only when the selection itself failed, the
// repository lock could not be taken (ErrLocked: a prune runs) or it was
// lost during the run (ErrLockLost).
func (b *Backuper) Run(ctx context.Context, sel Selection) ([]*Result, error) {
	start := b.opts.Clock.Now()
	targets, err := resolve(ctx, b.client, sel)
	if err != nil {
		return nil, err
	}
	b.opts.Log.Info("VMs selected", "vms", len(targets), "duration", b.opts.Clock.Now().Sub(start))
	if !b.opts.DryRun {
		lockStart := b.opts.Clock.Now()
		lock, err := b.lockRun(ctx)
		if err != nil {
			return nil, err
		}
		b.opts.Log.Info("repository locked", "repository", b.repo.Location(), "lock", lock.Info().ID, "duration", b.opts.Clock.Now().Sub(lockStart))
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
	b.opts.Log.Info("backup run finished", "vms", len(results), "failed", Failed(results), "duration", b.opts.Clock.Now().Sub(start))
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
