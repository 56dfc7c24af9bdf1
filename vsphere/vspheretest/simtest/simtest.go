// Package simtest holds the thin *testing.T wrappers of vspheretest: each
// helper fails the test on error and releases what it started in
// t.Cleanup. vspheretest itself takes no *testing.T and imports no testing,
// so `vtpm-backup demo` builds the same simulated vCenter without linking
// the testing package into the release binary.
package simtest

import (
	"testing"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
)

// Start starts a simulated vCenter (vspheretest.NewEnv with opts[0], or the
// defaults) and closes it when the test ends.
func Start(t testing.TB, opts ...vspheretest.EnvOptions) *vspheretest.Env {
	t.Helper()
	var o vspheretest.EnvOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	env, err := vspheretest.NewEnv(t.Context(), o)
	if err != nil {
		t.Fatalf("start simulated vCenter: %v", err)
	}
	t.Cleanup(env.Close)
	return env
}

// CreateVTPMVM is env.CreateVTPMVM failing the test on error.
func CreateVTPMVM(t testing.TB, env *vspheretest.Env, o vspheretest.VMOptions) *vspheretest.VTPMVM {
	t.Helper()
	v, err := env.CreateVTPMVM(t.Context(), o)
	if err != nil {
		t.Fatalf("create vTPM VM %s: %v", o.Name, err)
	}
	return v
}

// Tag is env.TagObjects failing the test on error; it returns the tag ID.
func Tag(t testing.TB, env *vspheretest.Env, category, tag string, refs ...mo.Reference) string {
	t.Helper()
	rs := make([]types.ManagedObjectReference, 0, len(refs))
	for _, r := range refs {
		rs = append(rs, r.Reference())
	}
	id, err := env.TagObjects(t.Context(), category, tag, rs...)
	if err != nil {
		t.Fatalf("tag %s/%s: %v", category, tag, err)
	}
	return id
}
