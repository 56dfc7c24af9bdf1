package vspheretest

import (
	"context"
	"fmt"
	"net/url"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// Transfers returns the counts of datastore file requests so far.
func (e *Env) Transfers() TransferStats { return e.files.stats() }

// Interrupt arms i: the next transfer of its file that passes its offset
// runs i.Do and, with i.Cut, loses its connection.
func (e *Env) Interrupt(i Interrupt) {
	e.files.mu.Lock()
	e.files.interrupts = append(e.files.interrupts, &pendingInterrupt{Interrupt: i})
	e.files.mu.Unlock()
}

// CutAt resets the connection of the next download of [ds] p that passes
// each offset, once per offset.
func (e *Env) CutAt(ds, p string, offsets ...int64) {
	for _, off := range offsets {
		e.Interrupt(Interrupt{Datastore: ds, Path: p, Offset: off, Cut: true})
	}
}

// BeforeCall runs do before the next SOAP call of method (e.g.
// "WaitForUpdatesEx") is handled, once.
func (e *Env) BeforeCall(method string, do func()) {
	e.files.mu.Lock()
	e.files.calls = append(e.files.calls, &callHook{method: method, do: do})
	e.files.mu.Unlock()
}

// EndSessions ends every session that has made a request, except the one
// it uses itself, the way an administrator (or vCenter's idle timeout)
// does: their calls then fail with NotAuthenticated, their property
// retrievals come back empty-handed and their /folder requests get 401. It
// returns how many sessions it ended.
func (e *Env) EndSessions(ctx context.Context) (int, error) {
	e.adminMu.Lock()
	defer e.adminMu.Unlock()
	if e.admin == nil {
		sc := soap.NewClient(e.Server.URL, true)
		vc, err := vim25.NewClient(ctx, sc)
		if err != nil {
			return 0, fmt.Errorf("connect a second client: %w", err)
		}
		sm := session.NewManager(vc)
		if err := sm.Login(ctx, url.UserPassword(e.Username, e.Password)); err != nil {
			return 0, fmt.Errorf("log in a second client: %w", err)
		}
		us, err := sm.UserSession(ctx)
		if err != nil || us == nil {
			return 0, fmt.Errorf("session of the second client: %v", err)
		}
		e.admin, e.adminKey = sm, us.Key
	}
	return e.files.endSessions(ctx, e.admin, e.adminKey)
}

// PowerOn starts v. A running VM's .vmx, .nvram, log and disk extents are
// locked: only its runtime host serves them (see doc.go).
func (e *Env) PowerOn(ctx context.Context, v *VTPMVM) error {
	task, err := v.VM.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("power on %s: %w", v.Name, err)
	}
	return nil
}

// Migrate moves v to the host named host, as vMotion does: its runtime host
// changes, and with it the host that owns the locks of its files.
func (e *Env) Migrate(ctx context.Context, v *VTPMVM, host string) error {
	h, err := e.inv.FindHost(ctx, host)
	if err != nil {
		return err
	}
	ref := h.Reference()
	task, err := v.VM.Relocate(ctx, types.VirtualMachineRelocateSpec{Host: &ref}, types.VirtualMachineMovePriorityDefaultPriority)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("migrate %s to %s: %w", v.Name, host, err)
	}
	return nil
}

// VMHost returns the name of the host v runs on.
func (e *Env) VMHost(ctx context.Context, v *VTPMVM) (string, error) {
	var m mo.VirtualMachine
	if err := v.VM.Properties(ctx, v.Ref, []string{"runtime.host"}, &m); err != nil {
		return "", err
	}
	if m.Runtime.Host == nil {
		return "", fmt.Errorf("VM %s has no runtime host", v.Name)
	}
	return object.NewHostSystem(e.Client.Vim25(), *m.Runtime.Host).ObjectName(ctx)
}

// ClusterHosts returns the names of the hosts in v's cluster other than the
// one it runs on: where a vMotion can take it.
func (e *Env) ClusterHosts(ctx context.Context, v *VTPMVM) ([]string, error) {
	cur, err := e.VMHost(ctx, v)
	if err != nil {
		return nil, err
	}
	var cluster string
	for _, h := range e.files.hosts {
		if h.name == cur {
			cluster = h.cluster
		}
	}
	var out []string
	for _, h := range e.files.hosts {
		if h.name != cur && cluster != "" && h.cluster == cluster {
			out = append(out, h.name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fileHostIn returns the host that serves [ds] p in the datacenter of c:
// the runtime host of the running VM that holds it locked, or nil (vCenter)
// when none does.
func (e *Env) fileHostIn(c *vsphere.Client, ds, p string) *object.HostSystem {
	dcPath := ""
	if dc := c.Datacenter(); dc != nil {
		dcPath = dc.InventoryPath
	}
	owner, locked := e.files.lockOwner(fmt.Sprintf("[%s] %s", ds, p), dcPath)
	if !locked {
		return nil
	}
	return object.NewHostSystem(e.Client.Vim25(), types.ManagedObjectReference{Type: "HostSystem", Value: owner})
}
