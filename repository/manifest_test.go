package repository_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// validManifest returns a self-consistent manifest for a 1 MiB chunk size:
// an nvram of one chunk and a disk of a data chunk and a zero chunk.
func validManifest() *repository.Manifest {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	m := &repository.Manifest{
		ManifestHeader: repository.ManifestHeader{
			SchemaVersion: repository.ManifestSchemaVersion,
			BackupID:      repository.NewBackupID(time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)),
			ChunkSize:     1 << 20,
			VM:            repository.VMInfo{Name: "vm1", VTPM: true},
		},
		Files: []repository.File{
			{Name: "vm1.nvram", Type: repository.FileNvram, Size: 100, SHA256: hexSum(nil), Chunks: []string{a}},
			{Name: "vm1-flat.vmdk", Type: repository.FileDiskExtent, Size: 2 << 20, SHA256: hexSum(nil), Chunks: []string{b, repository.ZeroChunk}},
			{Name: "empty.vmxf", Type: repository.FileConfig, Size: 0, SHA256: hexSum(nil), Chunks: []string{}},
		},
		Objects: map[string]repository.StoredObject{
			a: {Size: 100, StoredSize: 300, StoredSHA256: a},
			b: {Size: 1 << 20, StoredSize: 5000, StoredSHA256: b},
		},
	}
	m.Summary = repository.Summary{Files: 3, Size: 100 + 2<<20, StoredSize: 5300, Objects: 2}
	return m
}

func TestManifestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *repository.Manifest)
		want   string
	}{
		{"valid", func(*repository.Manifest) {}, ""},
		{"schema", func(m *repository.Manifest) { m.SchemaVersion = 9 }, "schema version"},
		{"backup id", func(m *repository.Manifest) { m.BackupID = "nope" }, "backup id"},
		{"no vm", func(m *repository.Manifest) { m.VM.Name = "" }, "no VM name"},
		{"vtpm without nvram", func(m *repository.Manifest) { m.Files = m.Files[1:] }, "no .nvram"},
		{"chunk count", func(m *repository.Manifest) { m.Files[1].Chunks = m.Files[1].Chunks[:1] }, "1 chunks"},
		{"missing object", func(m *repository.Manifest) { delete(m.Objects, strings.Repeat("b", 64)) }, "no stored object"},
		{"wrong chunk size", func(m *repository.Manifest) { m.Files[0].Size = 99 }, "want 99"},
		{"bad id", func(m *repository.Manifest) {
			m.Objects["xyz"] = repository.StoredObject{StoredSize: 1, StoredSHA256: strings.Repeat("c", 64)}
		}, "chunk id"},
		{"path in name", func(m *repository.Manifest) { m.Files[0].Name = "../x" }, "not a base name"},
		{"duplicate", func(m *repository.Manifest) { m.Files[2].Name = m.Files[0].Name }, "listed twice"},
		{"summary", func(m *repository.Manifest) { m.Summary.StoredSize++ }, "summary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.mutate(m)
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, repository.ErrCorruptManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrCorruptManifest containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestWriteRead(t *testing.T) {
	be := storagetest.NewMemory()
	r := newRepo(t, be, nil).Repository
	m := validManifest()
	if err := r.WriteManifest(t.Context(), m); err != nil {
		t.Fatalf("WriteManifest: %v", err)
	}
	if err := r.WriteManifest(t.Context(), m); err == nil {
		t.Fatal("a manifest was overwritten")
	}
	got, err := r.ReadManifest(t.Context(), m.BackupID)
	if err != nil || got.VM.Name != "vm1" || len(got.Files) != 3 || got.StoredSize() != 5300 || got.TotalSize() != 100+2<<20 {
		t.Fatalf("ReadManifest = %+v, %v", got, err)
	}
	if _, err := r.ReadManifest(t.Context(), "20990101T000000.000Z-00000000"); !errors.Is(err, repository.ErrManifestNotFound) {
		t.Fatalf("missing manifest = %v", err)
	}
	if _, err := r.ReadManifest(t.Context(), "../config"); !errors.Is(err, repository.ErrManifestNotFound) {
		t.Fatalf("path in backup id = %v", err)
	}
	// Truncated manifest.
	name := repository.ManifestObjectName("20260101T000000.000Z-deadbeef")
	if err := be.Put(t.Context(), name, strings.NewReader(`{"schema_version":1,"backup_id":"2026`), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadManifest(t.Context(), "20260101T000000.000Z-deadbeef"); !errors.Is(err, repository.ErrCorruptManifest) {
		t.Fatalf("truncated manifest = %v", err)
	}
	ids, err := r.ListBackupIDs(t.Context())
	if err != nil || len(ids) != 2 || ids[0] != "20260101T000000.000Z-deadbeef" || ids[1] != m.BackupID {
		t.Fatalf("ListBackupIDs = %v, %v", ids, err)
	}
	res := r.ReadManifests(t.Context(), ids)
	if res[0].Err == nil || res[1].Err != nil || res[1].Manifest.BackupID != m.BackupID {
		t.Fatalf("ReadManifests = %+v", res)
	}
}

func TestBackupIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	prev := ""
	for i := range 50 {
		id := repository.NewBackupID(t0.Add(time.Duration(i) * 997 * time.Millisecond))
		if id <= prev {
			t.Fatalf("%s sorts before %s", id, prev)
		}
		prev = id
		got, err := repository.BackupTime(id)
		if err != nil || !got.Equal(t0.Add(time.Duration(i)*997*time.Millisecond).Truncate(time.Millisecond)) {
			t.Fatalf("BackupTime(%s) = %v, %v", id, got, err)
		}
	}
}

func TestReadManifestHeader(t *testing.T) {
	be := storagetest.NewMemory()
	r := newRepo(t, be, nil).Repository
	m := validManifest()
	if err := r.WriteManifest(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	h, err := r.ReadManifestHeader(t.Context(), m.BackupID)
	if err != nil || h.VM.Name != "vm1" || h.Summary.StoredSize != 5300 || h.Summary.Files != 3 {
		t.Fatalf("ReadManifestHeader = %+v, %v", h, err)
	}

	// A header longer than the first read still decodes.
	big := validManifest()
	big.BackupID = repository.NewBackupID(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
	big.EncryptionConfig = map[string]string{"encryption.keySafe": strings.Repeat("k", 100<<10)}
	if err := r.WriteManifest(t.Context(), big); err != nil {
		t.Fatal(err)
	}
	if h, err := r.ReadManifestHeader(t.Context(), big.BackupID); err != nil || len(h.EncryptionConfig["encryption.keySafe"]) != 100<<10 {
		t.Fatalf("large header: %v", err)
	}

	put := func(id, body string) {
		t.Helper()
		if err := be.Put(t.Context(), repository.ManifestObjectName(id), strings.NewReader(body), -1); err != nil {
			t.Fatal(err)
		}
	}
	put("20260101T000000.000Z-00000001", `{"schema_version":1,"backup_id":"2026`)
	put("20260101T000000.000Z-00000002", `{"schema_version":9,"backup_id":"20260101T000000.000Z-00000002","chunk_size":1,"vm":{"name":"old-vm"},"files":[`)
	put("20260101T000000.000Z-00000003", `[]`)
	if _, err := r.ReadManifestHeader(t.Context(), "20260101T000000.000Z-00000001"); !errors.Is(err, repository.ErrCorruptManifest) {
		t.Errorf("truncated header: %v", err)
	}
	h, err = r.ReadManifestHeader(t.Context(), "20260101T000000.000Z-00000002")
	if !errors.Is(err, repository.ErrCorruptManifest) || h == nil || h.VM.Name != "old-vm" {
		t.Errorf("future schema: %+v, %v; want the header naming its VM and ErrCorruptManifest", h, err)
	}
	if _, err := r.ReadManifestHeader(t.Context(), "20260101T000000.000Z-00000003"); !errors.Is(err, repository.ErrCorruptManifest) {
		t.Errorf("not an object: %v", err)
	}
	if _, err := r.ReadManifestHeader(t.Context(), "20990101T000000.000Z-00000009"); !errors.Is(err, repository.ErrManifestNotFound) {
		t.Errorf("missing: %v", err)
	}

	cat, err := repository.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Backups("vm1")) != 2 || len(cat.Backups("old-vm")) != 1 || cat.Backups("old-vm")[0].Err == nil || len(cat.Unattributed) != 2 {
		t.Fatalf("catalog: vm1 %d, old-vm %+v, unattributed %d", len(cat.Backups("vm1")), cat.Backups("old-vm"), len(cat.Unattributed))
	}
	if latest, _ := cat.Latest("vm1"); latest.ID != big.BackupID || latest.Header == nil {
		t.Fatalf("latest of vm1: %+v", latest)
	}
}

// cutBackend serves manifests cut short by the network: the body ends with
// io.ErrUnexpectedEOF after n bytes.
type cutBackend struct {
	storage.Backend
	n int
}

func (c cutBackend) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := c.Backend.Get(ctx, name, off, length)
	if err != nil || !strings.HasPrefix(name, "manifests/") {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, int64(c.n)), iotest.ErrReader(io.ErrUnexpectedEOF)), rc}, nil
}

func TestReadManifestHeaderEdges(t *testing.T) {
	be := storagetest.NewMemory()
	r := newRepo(t, be, nil).Repository
	put := func(id, body string) {
		t.Helper()
		if err := be.Put(t.Context(), repository.ManifestObjectName(id), strings.NewReader(body), -1); err != nil {
			t.Fatal(err)
		}
	}
	// Cut right after a complete member: must not pass for a whole header.
	put("20260101T000000.000Z-00000001", `{"schema_version":1,"backup_id":"20260101T000000.000Z-00000001","chunk_size":1048576,"vm":{"name":"x"}`)
	if _, err := r.ReadManifestHeader(t.Context(), "20260101T000000.000Z-00000001"); !errors.Is(err, repository.ErrCorruptManifest) {
		t.Errorf("header cut at a member boundary = %v, want ErrCorruptManifest", err)
	}

	// Written before summaries existed (and before signatures: readers of
	// such repositories pass --allow-unsigned): still valid, summary derived.
	r.SetTrust(repository.Trust{AllowUnsigned: true})
	m := validManifest()
	m.Summary = repository.Summary{}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	put(m.BackupID, string(data))
	got, err := r.ReadManifest(t.Context(), m.BackupID)
	if err != nil || got.Summary.StoredSize != 5300 {
		t.Fatalf("manifest without summary: %+v, %v", got, err)
	}
	if _, err := r.ReadManifestHeader(t.Context(), m.BackupID); err != nil {
		t.Fatalf("header of a manifest without summary: %v", err)
	}

	// A transfer cut short is an I/O error, not a corrupt manifest.
	cut, err := repository.Open(t.Context(), cutBackend{Backend: be, n: 40})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cut.ReadManifestHeader(t.Context(), m.BackupID)
	if err == nil || errors.Is(err, repository.ErrCorruptManifest) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut transfer = %v, want an I/O error that is not ErrCorruptManifest", err)
	}
}
