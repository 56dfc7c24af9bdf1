package vspheretest

import (
	"context"
	"fmt"
	"io"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// ReadFile downloads a (small) datastore file of DC0 whole; for test
// assertions. A file a running VM holds locked is read through the VM's
// host, as it must be (see doc.go).
func (e *Env) ReadFile(ctx context.Context, ds, p string) ([]byte, error) {
	return e.ReadFileWith(ctx, e.inv, ds, p)
}

// ReadFileWith is ReadFile in the datacenter of c (Env.In, VTPMVM.Client).
func (e *Env) ReadFileWith(ctx context.Context, c *vsphere.Client, ds, p string) ([]byte, error) {
	rc, _, err := c.HostFiles(e.fileHostIn(c, ds, p)).Download(ctx, ds, p, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read [%s] %s: %w", ds, p, err)
	}
	return b, nil
}

// RemoveNvram deletes the VM's .nvram, the failure a backup must refuse to
// turn into a "successful" backup.
func (e *Env) RemoveNvram(ctx context.Context, v *VTPMVM) error {
	return v.Client.DeleteFile(ctx, v.Datastore, v.NvramPath)
}

// DeleteVM destroys the VM and its files (the "site burned" case) and
// returns once its home folder is gone, as vCenter's Destroy_Task does. The
// simulator's Destroy_Task deletes the folder in a second task it does not
// wait for, so a restore into the same folder right after could find it
// still there.
func (e *Env) DeleteVM(ctx context.Context, v *VTPMVM) error {
	if err := e.Client.Destroy(ctx, v.VM); err != nil {
		return err
	}
	e.waitFileTasks()
	switch ok, err := v.Client.Exists(ctx, v.Datastore, v.Dir); {
	case err != nil:
		return fmt.Errorf("delete VM %s: %w", v.Name, err)
	case ok:
		return fmt.Errorf("delete VM %s: its home folder [%s] %s/ is still there", v.Name, v.Datastore, v.Dir)
	}
	return nil
}

// waitFileTasks waits for every datastore file deletion the simulator has
// started, finished or not (a finished task returns at once).
func (e *Env) waitFileTasks() {
	for _, obj := range e.Model.Map().AllReference("Task") {
		// DescriptionId is set when the task is created and never changes.
		if t, ok := obj.(*simulator.Task); ok && t.Info.DescriptionId == "FileManager.deleteDatastoreFile" {
			t.Wait()
		}
	}
}

// Fault names a SOAP method to fail, for InjectFault.
type Fault struct {
	Method     string // e.g. "CreateSnapshot_Task", "RemoveSnapshot_Task"
	ObjectType string // e.g. "VirtualMachine"; empty: any
	ObjectName string // e.g. the VM name; empty: any
	// Fault is the vSphere fault returned; default types.InvalidState.
	Fault types.BaseMethodFault
	// Count limits the number of injections; 0 means always.
	Count int
}

// InjectFault makes the simulator answer matching SOAP calls with a fault,
// through the simulator's fault rules. The datastore HTTP file service is not
// covered by them. ClearFaults removes all rules.
func (e *Env) InjectFault(f Fault) {
	rule := &simulator.FaultInjectionRule{
		MethodName:  f.Method,
		ObjectType:  "*",
		ObjectName:  "*",
		Probability: 1,
		FaultType:   simulator.FaultTypeCustom,
		Fault:       f.Fault,
		MaxCount:    f.Count,
		Enabled:     true,
	}
	if f.ObjectType != "" {
		rule.ObjectType = f.ObjectType
	}
	if f.ObjectName != "" {
		rule.ObjectName = f.ObjectName
	}
	if rule.Fault == nil {
		rule.Fault = &types.InvalidState{}
	}
	e.Model.Service.AddFaultRule(rule)
}

// ClearFaults removes every injected fault.
func (e *Env) ClearFaults() { e.Model.Service.ClearFaultRules() }
