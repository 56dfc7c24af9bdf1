package vsphere

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/types"
)

// RegisterVM registers the .vmx at vmxPath ("[ds] dir/name.vmx") as a VM
// named name (empty: vCenter's default from the vmx) in folder, running in
// pool, optionally pinned to host. An already registered path yields an error
// wrapping ErrFileExists; a key vCenter cannot get (EncryptionKeyRequired)
// an error wrapping ErrKeyRequired and the fault. A VM vCenter registered
// but left locked (see CheckRegistered) is returned together with an error
// wrapping a *LockedError, for the caller to undo. When ctx ends while
// vCenter is still registering, it waits (bounded) for the outcome and
// returns the registered VM together with the error, for the caller to
// undo.
func (c *Client) RegisterVM(ctx context.Context, folder *object.Folder, vmxPath, name string, pool *object.ResourcePool, host *object.HostSystem) (*object.VirtualMachine, error) {
	if folder == nil || pool == nil {
		return nil, fmt.Errorf("register %s: folder and resource pool are required", vmxPath)
	}
	task, err := folder.RegisterVM(ctx, vmxPath, name, false, pool, host)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", vmxPath, err)
	}
	info, err := c.waitTask(ctx, task)
	if err != nil && ctx.Err() != nil {
		// Cancelled while vCenter works on: learn how the task ends, so
		// the caller can undo a registration it no longer waited for.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registerWaitTimeout)
		defer cancel()
		if done, werr := c.waitTask(wctx, task); werr == nil {
			if ref, ok := done.Result.(types.ManagedObjectReference); ok {
				if vm, verr := c.vmByRef(wctx, ref); verr == nil {
					return vm, fmt.Errorf("register %s: %w (vCenter registered the VM anyway)", vmxPath, ctx.Err())
				}
			}
		}
		return nil, fmt.Errorf("register %s: %w", vmxPath, err)
	}
	if err != nil {
		if fault.Is(err, &types.AlreadyExists{}) {
			return nil, fmt.Errorf("register %s: already registered: %w", vmxPath, ErrFileExists)
		}
		if fault.Is(err, &types.EncryptionKeyRequired{}) {
			return nil, fmt.Errorf("register %s: %w: %w", vmxPath, ErrKeyRequired, err)
		}
		return nil, fmt.Errorf("register %s: %w", vmxPath, err)
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return nil, fmt.Errorf("register %s: unexpected result %T", vmxPath, info.Result)
	}
	vm, err := c.vmByRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := c.CheckRegistered(ctx, vm); err != nil {
		return vm, fmt.Errorf("register %s: %w", vmxPath, err)
	}
	return vm, nil
}

// registerWaitTimeout bounds how long a cancelled RegisterVM still waits to
// learn whether vCenter registered the VM.
const registerWaitTimeout = 2 * time.Minute

// Unregister removes the VM from the inventory, keeping its files.
func (c *Client) Unregister(ctx context.Context, vm *object.VirtualMachine) error {
	if err := vm.Unregister(ctx); err != nil {
		return fmt.Errorf("unregister %s: %w", vm.Reference().Value, err)
	}
	return nil
}

// Destroy deletes the VM and its files; a powered-on VM is powered off first.
func (c *Client) Destroy(ctx context.Context, vm *object.VirtualMachine) error {
	if task, err := vm.PowerOff(ctx); err == nil {
		if _, err := c.waitTask(ctx, task); err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
			return fmt.Errorf("power off %s: %w", vm.Reference().Value, err)
		}
	}
	task, err := vm.Destroy(ctx)
	if err == nil {
		_, err = c.waitTask(ctx, task)
	}
	if err != nil {
		return fmt.Errorf("destroy %s: %w", vm.Reference().Value, err)
	}
	return nil
}

// UUIDAction answers the question vSphere asks at the first power-on of a
// registered copy: was the VM moved (keep its BIOS UUID and MAC addresses) or
// copied (generate new ones)?
type UUIDAction string

// UUID actions.
const (
	// UUIDKeep answers "I moved it": same identity, for restoring the one
	// and only copy (the original is gone).
	UUIDKeep UUIDAction = "keep"
	// UUIDNew answers "I copied it": new BIOS UUID and MACs, for a clone
	// running next to the original.
	UUIDNew UUIDAction = "new"
)

// PowerOn powers the VM on and, while the task runs, answers the
// "msg.uuid.altered" question (moved or copied) according to action.
// Other questions are left for a human: the task then fails or times out
// with ctx. Choices are matched by their key or label containing
// "moved"/"copied" (ESXi uses labels "I _Moved It", "I _Copied It").
func (c *Client) PowerOn(ctx context.Context, vm *object.VirtualMachine, action UUIDAction) error {
	task, err := vm.PowerOn(ctx)
	if err != nil {
		return fmt.Errorf("power on %s: %w", vm.Reference().Value, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- c.answerUUIDQuestion(wctx, vm, action) }()
	_, err = c.waitTask(ctx, task)
	cancel()
	aerr := <-answered
	if err != nil {
		return fmt.Errorf("power on %s: %w", vm.Reference().Value, err)
	}
	if aerr != nil && !errors.Is(aerr, context.Canceled) {
		return fmt.Errorf("power on %s: answer question: %w", vm.Reference().Value, aerr)
	}
	return nil
}

func (c *Client) answerUUIDQuestion(ctx context.Context, vm *object.VirtualMachine, action UUIDAction) error {
	want := "moved"
	if action == UUIDNew {
		want = "copied"
	}
	var answerErr error
	err := property.Wait(ctx, property.DefaultCollector(c.Vim25()), vm.Reference(), []string{"runtime.question"}, func(changes []types.PropertyChange) bool {
		for _, ch := range changes {
			q, ok := ch.Val.(types.VirtualMachineQuestionInfo)
			if !ok {
				continue
			}
			choice := pickChoice(q, want)
			if choice == "" {
				continue
			}
			answerErr = vm.Answer(ctx, q.Id, choice)
			return true
		}
		return false
	})
	if answerErr != nil {
		return answerErr
	}
	return err
}

func pickChoice(q types.VirtualMachineQuestionInfo, want string) string {
	uuidQuestion := false
	for _, m := range q.Message {
		if m.Id == "msg.uuid.altered" {
			uuidQuestion = true
		}
	}
	if !uuidQuestion && !strings.Contains(strings.ToLower(q.Text), "moved or copied") {
		return ""
	}
	for _, ci := range q.Choice.ChoiceInfo {
		d := ci.GetElementDescription()
		s := strings.ToLower(strings.ReplaceAll(d.Key+" "+d.Label+" "+d.Summary, "_", ""))
		if strings.Contains(s, want) {
			return d.Key
		}
	}
	return ""
}

// FindVMByPath returns the VM registered from the .vmx at vmxPath ("[ds]
// dir/name.vmx"), or an error wrapping ErrNotFound. A restore cancelled
// while vCenter was still registering uses it to find what it registered.
func (c *Client) FindVMByPath(ctx context.Context, vmxPath string) (*object.VirtualMachine, error) {
	ref, err := object.NewSearchIndex(c.Vim25()).FindByDatastorePath(ctx, c.dc, vmxPath)
	if err != nil {
		return nil, fmt.Errorf("find VM of %s: %w", vmxPath, err)
	}
	if ref == nil {
		return nil, fmt.Errorf("VM of %s: %w", vmxPath, ErrNotFound)
	}
	return c.vmByRef(ctx, ref.Reference())
}
