package vsphere_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

func TestVMsWithTag(t *testing.T) {
	env := simtest.Start(t)
	a := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tag-a", Seed: 1, DiskSize: 1 << 20})
	b := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tag-b", Seed: 2, DiskSize: 1 << 20})
	simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tag-c", Seed: 3, DiskSize: 1 << 20})
	simtest.Tag(t, env, "backup", "shard-a", a.VM, b.VM)
	// A tagged folder (not a VM) is ignored, and an empty tag selects nothing.
	folder, err := env.Client.FindFolder(t.Context(), vspheretest.VMFolder)
	if err != nil {
		t.Fatal(err)
	}
	simtest.Tag(t, env, "backup", "shard-b", folder)
	tagID := simtest.Tag(t, env, "backup", "empty")

	want := []string{a.Ref.Value, b.Ref.Value}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	tests := []struct {
		name          string
		category, tag string
		want          []string
		err           error
		msg           []string // the error names these
	}{
		{"by name", "backup", "shard-a", want, nil, nil},
		{"folder only", "backup", "shard-b", nil, nil, nil},
		{"empty", "backup", "empty", nil, nil, nil},
		{"by ID", "backup", tagID, nil, nil, nil},
		{"unknown tag", "backup", "shard-z", nil, vsphere.ErrNotFound, []string{`"shard-z"`, `"backup"`, "empty, shard-a, shard-b"}},
		{"unknown category", "nope", "shard-a", nil, vsphere.ErrNotFound, []string{`category "nope"`, "categories: backup"}},
		{"case matters", "Backup", "shard-a", nil, vsphere.ErrNotFound, []string{`"Backup"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := env.Client.VMsWithTag(t.Context(), tc.category, tc.tag)
			if !errors.Is(err, tc.err) {
				t.Fatalf("VMsWithTag = %v, want %v", err, tc.err)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			if err != nil && strings.Contains(err.Error(), env.Password) {
				t.Errorf("error shows the password: %v", err)
			}
			if got := values(refs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("VMs %v, want %v", got, tc.want)
			}
		})
	}
}

func values(refs []types.ManagedObjectReference) []string {
	var out []string
	for _, r := range refs {
		if r.Type != "VirtualMachine" {
			out = append(out, "not a VM: "+r.String())
			continue
		}
		out = append(out, r.Value)
	}
	return out
}

// Goroutines asking at once share one lazy vAPI login (run with -race);
// Logout then ends both sessions without error.
func TestVMsWithTagConcurrentAndLogout(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tag-par", Seed: 1, DiskSize: 1 << 20})
	simtest.Tag(t, env, "backup", "nightly", vm.VM)
	c, err := vsphere.Connect(t.Context(), vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			refs, err := c.VMsWithTag(t.Context(), "backup", "nightly")
			if err == nil && (len(refs) != 1 || refs[0] != vm.Ref) {
				err = fmt.Errorf("got %v, want %v", refs, vm.Ref)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}
}
