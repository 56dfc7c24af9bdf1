package restore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// standalonePool is the resource pool of the VPX simulator's standalone
// host DC0_H0.
const standalonePool = "/DC0/host/DC0_H0/Resources"

// A Native Key Provider serves only hosts in a cluster, and, created with
// tpmRequired, only hosts with a TPM 2.0: a restore whose VM would run on
// another host is refused before anything is written, naming the host,
// what it lacks and the remedy. The hosts that qualify let it through, and
// the VM comes back unlocked (Run fails on a VM registered locked).
func TestNKPTargetHosts(t *testing.T) {
	f, _ := newNKPFixtureOf(t, "nkphost01", vspheretest.NativeProvider{ID: nkpID, HasBackup: true, TPMRequired: true})
	ctx := t.Context()
	if err := f.env.SetHostTPM(ctx, "DC0_C0_H1", false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    restore.Options
		missing string
		hosts   []string
		hint    string
	}{
		{"standalone host", restore.Options{Pool: standalonePool}, restore.MissingCluster, []string{"DC0_H0"}, "--pool"},
		{"pinned host without TPM", restore.Options{Host: "DC0_C0_H1"}, restore.MissingTPM, []string{"DC0_C0_H1"}, "--host with a host that has a TPM 2.0: DC0_C0_H0, DC0_C0_H2"},
		// The DRS cluster asked for, not the original host: vCenter
		// might pick DC0_C0_H1.
		{"DRS may pick a host without TPM", restore.Options{Pool: vspheretest.ResourcePool}, restore.MissingTPM, []string{"DC0_C0_H1"}, "DC0_C0_H0, DC0_C0_H2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Name = "nkphost01-copy"
			before := state(t, f.env)
			_, err := f.restoreTo(t, ctx, f.env, tc.opts)
			var ke *restore.KeyHostError
			if !errors.Is(err, restore.ErrKeyHost) || !errors.As(err, &ke) {
				t.Fatalf("restore = %v, want a *KeyHostError", err)
			}
			if ke.Missing != tc.missing || !slices.Equal(ke.Hosts, tc.hosts) || ke.ProviderID != nkpID {
				t.Errorf("refusal %+v, want %s missing on %v", ke, tc.missing, tc.hosts)
			}
			for _, want := range append(slices.Clone(tc.hosts), nkpID) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal lacks %q: %v", want, err)
				}
			}
			if !strings.Contains(ke.Hint(), tc.hint) {
				t.Errorf("remedy %q lacks %q", ke.Hint(), tc.hint)
			}
			if after := state(t, f.env); after != before {
				t.Fatalf("a refused restore changed the vCenter:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	t.Run("cluster host with TPM", func(t *testing.T) {
		res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "nkphost01-tpm", Host: "DC0_C0_H2"})
		if err != nil {
			t.Fatalf("restore onto a cluster host with a TPM: %v", err)
		}
		f.checkRestoredVM(t, f.env, res, "nkphost01-tpm")
	})
}

// A provider without tpmRequired serves cluster hosts without a TPM too.
func TestNKPWithoutTPMRequired(t *testing.T) {
	f, _ := newNKPFixture(t, "nkphost02")
	ctx := t.Context()
	if err := f.env.SetHostTPM(ctx, "DC0_C0_H1", false); err != nil {
		t.Fatal(err)
	}
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "nkphost02-notpm", Host: "DC0_C0_H1"})
	if err != nil {
		t.Fatalf("restore onto a cluster host without TPM: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, "nkphost02-notpm")
}

// Keys of a standard (KMS) provider reach any host: a standalone host
// without a TPM takes the restore.
func TestStandardProviderAnyHost(t *testing.T) {
	f := newFixture(t, "kmshost01")
	ctx := t.Context()
	if err := f.env.SetHostTPM(ctx, "DC0_H0", false); err != nil {
		t.Fatal(err)
	}
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{Name: "kmshost01-standalone", Pool: standalonePool})
	if err != nil {
		t.Fatalf("restore of a standard provider's VM onto a standalone host: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, "kmshost01-standalone")
}

// The test vCenter is as strict as vCenter: a host that loses its TPM
// between the pre-check and the registration gets no key, the VM is left
// locked, and Run removes it and its files.
func TestNKPHostLosesTPMAfterPreflight(t *testing.T) {
	f, _ := newNKPFixtureOf(t, "nkphost03", vspheretest.NativeProvider{ID: nkpID, HasBackup: true, TPMRequired: true})
	ctx := t.Context()
	plan, err := restore.Preflight(ctx, f.env.Client, f.repo, f.m, restore.Options{Name: "nkphost03-copy", Host: "DC0_C0_H0"})
	if err != nil {
		t.Fatal(err)
	}
	before := state(t, f.env)
	if err := f.env.SetHostTPM(ctx, "DC0_C0_H0", false); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(ctx, f.env.Client, f.repo, plan); !errors.Is(err, restore.ErrVMLocked) {
		t.Fatalf("Run onto a host that lost its TPM = %v, want ErrVMLocked", err)
	}
	if after := state(t, f.env); after != before {
		t.Fatalf("the locked restore was not removed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
