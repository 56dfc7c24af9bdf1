package keys_test

import (
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// The vTPM and key checks of Restorability: the .nvram of a vTPM VM and
// the VM key of an encrypted one (issue 15 item 2: one list for restore's
// pre-flight and audit).
func TestRestorabilityNvramAndVMKey(t *testing.T) {
	home := func(name, typ string) repository.File {
		return repository.File{Name: name, Type: typ, Datastore: "ds1", Dir: "vm1"}
	}
	good := func() *repository.Manifest {
		return &repository.Manifest{
			ManifestHeader: repository.ManifestHeader{
				BackupID: "20260101T000000.000Z-00000001",
				VM:       repository.VMInfo{Name: "vm1", Datastore: "ds1", HomeFolder: "vm1", VTPM: true, Encrypted: true},
				Keys:     []repository.KeyInfo{{KeyID: "k1", ProviderID: "p1", Use: keys.UseVM}},
			},
			Files: []repository.File{
				home("vm1.vmx", repository.FileConfig), home("vm1.nvram", repository.FileNvram),
				home("vm1-flat.vmdk", repository.FileDiskExtent),
			},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(m *repository.Manifest)
		want   []string
	}{
		{"restorable", func(*repository.Manifest) {}, nil},
		{"vTPM without .nvram", func(m *repository.Manifest) { m.Files = append(m.Files[:1], m.Files[2:]...) },
			[]string{"has a vTPM but backup 20260101T000000.000Z-00000001 holds no .nvram"}},
		{"no .nvram needed without vTPM", func(m *repository.Manifest) {
			m.Files = append(m.Files[:1], m.Files[2:]...)
			m.VM.VTPM = false
		}, nil},
		{"encrypted without VM key", func(m *repository.Manifest) { m.Keys = nil }, []string{"no VM key ID: its key cannot be checked on a vCenter and it would restore as a locked VM"}},
		{"plain VM needs no key", func(m *repository.Manifest) { m.Keys, m.VM.VTPM, m.VM.Encrypted = nil, false, false }, nil},
		{"no .vmx", func(m *repository.Manifest) { m.Files = m.Files[1:] }, []string{"holds no .vmx file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.change(m)
			r := keys.Restorability(m)
			if len(r.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d naming %q", r.Problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(r.Problems[i], w) {
					t.Errorf("problem %q lacks %q", r.Problems[i], w)
				}
			}
			if keys.NeedsVMKey(m) != (tc.name == "encrypted without VM key") {
				t.Errorf("NeedsVMKey = %v", keys.NeedsVMKey(m))
			}
		})
	}
}
