package vspheretest_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/vsphere/vspheretest"
)

func TestCreateVTPMVM(t *testing.T) {
	env := vspheretest.Start(t)
	ctx := t.Context()
	v, err := env.CreateVTPMVM(ctx, vspheretest.VMOptions{Name: "web01", DiskSize: 16 << 20, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Client.VMInfo(ctx, v.VM)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID == nil || info.KeyID.KeyId == "" || info.KeyID.ProviderId == nil || info.KeyID.ProviderId.Id != vspheretest.DefaultProviderID {
		t.Errorf("keyId = %+v, want a key of %s", info.KeyID, vspheretest.DefaultProviderID)
	}
	if !info.VTPM || info.Firmware != "efi" || info.HWVersion != "vmx-19" || !info.SecureBoot {
		t.Errorf("vTPM=%v firmware=%q version=%q secureBoot=%v", info.VTPM, info.Firmware, info.HWVersion, info.SecureBoot)
	}
	if v.KeyID != info.KeyID.KeyId {
		t.Errorf("fixture KeyID %q != config.keyId %q", v.KeyID, info.KeyID.KeyId)
	}
	rc, size, err := env.Client.Download(ctx, v.Datastore, v.NvramPath, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(v.Nvram)) || !bytes.Equal(got, v.Nvram) || sha256.Sum256(got) != v.NvramSHA256 {
		t.Errorf("nvram over HTTP differs (size %d, want %d)", size, len(v.Nvram))
	}
	t.Logf("files: %+v", info.Files)
	t.Logf("vmx:\n%s", v.VMX[:300])
}
