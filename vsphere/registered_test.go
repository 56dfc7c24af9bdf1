package vsphere_test

import (
	"errors"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// RegisterVM returns a VM vCenter registered locked together with a
// *LockedError, so the caller can undo the registration.
func TestRegisterVMLocked(t *testing.T) {
	env, v := newVM(t, "lock01")
	ctx := t.Context()
	c := env.Client
	folder, err := c.FindFolder(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := c.FindResourcePool(ctx, vspheretest.ResourcePool)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckRegistered(ctx, v.VM); err != nil {
		t.Fatalf("the fixture VM: %v", err)
	}
	if err := c.Unregister(ctx, v.VM); err != nil {
		t.Fatal(err)
	}
	env.DenyPrivileges(vspheretest.PrivRegisterVM)
	vm, err := c.RegisterVM(ctx, folder, v.DatastorePath(v.VMXPath), "lock01", pool, nil)
	var le *vsphere.LockedError
	if !errors.As(err, &le) || !errors.Is(err, vsphere.ErrVMLocked) || vm == nil {
		t.Fatalf("RegisterVM without %s = %v, %v; want the VM and a *LockedError", vspheretest.PrivRegisterVM, vm, err)
	}
	if le.VM != vm.Reference().Value || le.CryptoState != string(types.VirtualMachineCryptoStateLocked) || le.Host == "" || le.HostEncryptionOff() {
		t.Errorf("LockedError %+v: want the VM, locked, its host, in encryption mode", le)
	}
	if err := c.Unregister(ctx, vm); err != nil {
		t.Fatal(err)
	}
	env.GrantPrivileges(vspheretest.PrivRegisterVM)
	vm, err = c.RegisterVM(ctx, folder, v.DatastorePath(v.VMXPath), "lock01", pool, nil)
	if err != nil || vm == nil {
		t.Fatalf("RegisterVM with the privilege back: %v", err)
	}
}
