package repository

import (
	"errors"
	"strings"
	"testing"
)

// TestHeaderAgreesWithManifest: the catalog's view of a manifest (its
// header, read alone) and a restore's (the whole manifest) never differ.
// Found while writing FuzzDecodeManifest's agreement property: a key
// repeated in another case ("VM" after "vm") was resolved differently, and
// a header member after the file list was missed by the header alone.
func TestHeaderAgreesWithManifest(t *testing.T) {
	const files = `"files":[{"name":"a.vmx","type":"config","size":0,"sha256":"` +
		"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" + `","chunks":[]}],"objects":{}`
	const head = `"schema_version":1,"backup_id":"20261127T010203.000Z-0a0b0c0d","chunk_size":1048576`
	tests := []struct {
		name   string
		data   string
		vm     string // "" means the manifest is refused as corrupt
		nkeys  int
		reason string
	}{
		{"canonical", `{` + head + `,"vm":{"name":"a"},"keys":[{"key_id":"k"}],` + files + `}`, "a", 1, ""},
		{"key repeated in another case", `{` + head + `,"vm":{"name":"a"},"VM":{"name":"b"},` + files + `}`, "b", 0, ""},
		{"key repeated", `{` + head + `,"vm":{"name":"a"},"vm":{"name":"b"},` + files + `}`, "b", 0, ""},
		{"keys after the files", `{` + head + `,"vm":{"name":"a"},` + files + `,"keys":[{"key_id":"k"}]}`, "", 0, "after the file list"},
		{"vm after the objects", `{` + head + `,"vm":{"name":"a"},` + files + `,"vm":{"name":"b"}}`, "", 0, "after the file list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeManifest("20261127T010203.000Z-0a0b0c0d", []byte(tc.data))
			if tc.vm == "" {
				if !errors.Is(err, ErrCorruptManifest) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("decodeManifest = %v, want ErrCorruptManifest saying %q", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, err := decodeHeaderPrefix("m", []byte(tc.data), false)
			if err != nil {
				t.Fatal(err)
			}
			if m.VM.Name != tc.vm || h.VM.Name != tc.vm || len(m.Keys) != tc.nkeys || len(h.Keys) != tc.nkeys {
				t.Fatalf("manifest VM %q keys %d, header VM %q keys %d; want %q, %d", m.VM.Name, len(m.Keys), h.VM.Name, len(h.Keys), tc.vm, tc.nkeys)
			}
		})
	}
}
