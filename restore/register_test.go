package restore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// vCenter registers an encrypted VM even when it may not give the key to
// the host, and leaves the VM locked. Restore must notice, say which
// privilege or host setting is missing, and remove what it created.
func TestRegisteredLockedIsUndone(t *testing.T) {
	tests := []struct {
		name string
		// deny are the privileges the restoring account lacks.
		deny []string
		// hostOff puts the target host out of encryption mode.
		hostOff bool
		// want are the phrases of the error; nil: the restore succeeds.
		want []string
	}{
		{name: "no RegisterVM", deny: []string{vspheretest.PrivRegisterVM},
			want: []string{"Cryptographer.RegisterVM", "CryptoUnlock", `runtime.cryptoState "locked"`, `connection state "invalid"`}},
		{name: "host not in encryption mode, no RegisterHost", deny: []string{vspheretest.PrivRegisterHost}, hostOff: true,
			want: []string{"Cryptographer.RegisterHost", "encryption mode", `cryptoState is "incapable"`, "CryptoUnlock"}},
		{name: "host not in encryption mode, RegisterHost held", hostOff: true},
		{name: "host in encryption mode, no RegisterHost", deny: []string{vspheretest.PrivRegisterHost}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "locked01")
			ctx := t.Context()
			if err := f.env.DeleteVM(ctx, f.vm); err != nil {
				t.Fatal(err)
			}
			host := f.m.VM.Host
			if tc.hostOff {
				if err := f.env.SetHostCryptoState(ctx, host, types.HostCryptoStateIncapable); err != nil {
					t.Fatal(err)
				}
			}
			f.env.DenyPrivileges(tc.deny...)
			before := state(t, f.env)

			res, err := f.restoreTo(t, ctx, f.env, restore.Options{})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("restore: %v", err)
				}
				f.checkRestoredVM(t, f.env, res, f.vm.Name)
				if s, err := f.env.HostCryptoState(ctx, host); err != nil || s != types.HostCryptoStateSafe {
					t.Errorf("host %s cryptoState %q (%v), want safe after registering an encrypted VM", host, s, err)
				}
				return
			}
			if !errors.Is(err, restore.ErrVMLocked) || res != nil {
				t.Fatalf("restore = %+v, %v; want ErrVMLocked", res, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if !strings.Contains(err.Error(), "nothing of this restore was left behind") {
				t.Errorf("error does not say the restore was undone: %v", err)
			}
			if after := state(t, f.env); after != before {
				t.Errorf("a locked restore left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
