package repository

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestManifestDiskRecords: per-disk CBT records decode, a disk extent read
// in part through CBT may lack its whole-file SHA-256 and no other file
// may, and manifests written before disk records still decode.
func TestManifestDiskRecords(t *testing.T) {
	seed := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile("testdata/fuzz/FuzzDecodeManifest/" + name)
		if err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[1], "[]byte("), ")\n")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(s)
	}
	tests := []struct {
		name    string
		seed    string
		corrupt bool
		disks   int
	}{
		{"disk records, extent without sha256", "cbt-disk-records", false, 1},
		{"nvram without sha256", "regression-empty-sha256-outside-disk-extent", true, 0},
		{"written before disk records", "demo-manifest", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeManifest("fuzz", seed(tt.seed))
			if tt.corrupt {
				if !errors.Is(err, ErrCorruptManifest) {
					t.Fatalf("err = %v, want ErrCorruptManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Disks) != tt.disks {
				t.Fatalf("%d disk records, want %d", len(m.Disks), tt.disks)
			}
			if tt.disks > 0 {
				d := m.Disks[0]
				if d.Key != 2000 || d.ChangeID != "52 aa bb/4" || d.Capacity != 1<<20 || d.Read != DiskReadChanged || d.CBTChain != 2 || d.UUID == "" {
					t.Errorf("disk record %+v", d)
				}
			}
		})
	}
}
