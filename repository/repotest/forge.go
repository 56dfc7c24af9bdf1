package repotest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Forger plays the attacker of issue 16: someone who holds only the
// bucket's credentials. It can read and write any object and encrypt to the
// repository's recipients (they are public, in config), but holds no
// writer key of the repository and no identity.
type Forger struct {
	be   storage.Backend
	repo *repository.Repository // opened like any reader: no writer key
}

// NewForger opens the repository on be as the attacker.
func NewForger(ctx context.Context, be storage.Backend) (*Forger, error) {
	repo, err := repository.Open(ctx, be)
	if err != nil {
		return nil, err
	}
	repo.SetTrust(repository.Trust{AllowUnsigned: true}) // the attacker reads anything
	return &Forger{be: be, repo: repo}, nil
}

// EvilNvram is the attacker's .nvram: 128 KiB of "EVIL", as in the issue.
var EvilNvram = bytes.Repeat([]byte("EVIL"), 32<<10)

// Edit returns a copy of the manifest of backup srcID whose .nvram is
// replaced by payload, stored as a chunk encrypted to the repository's
// recipients, with sizes, hashes and summary adjusted so that the manifest
// validates; its backup ID becomes newID ("" keeps srcID). Nothing is
// written but the chunk.
func (f *Forger) Edit(ctx context.Context, srcID, newID string, payload []byte) (*repository.Manifest, []byte, error) {
	m, err := f.repo.ReadManifest(ctx, srcID)
	if err != nil {
		return nil, nil, fmt.Errorf("forger: read %s: %w", srcID, err)
	}
	if len(payload) > int(m.ChunkSize) {
		return nil, nil, fmt.Errorf("forger: payload larger than a chunk")
	}
	id := repository.ChunkID(sha256.Sum256(payload))
	w := f.repo.NewChunkWriter()
	so, err := w.Put(ctx, id, payload)
	w.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("forger: store chunk: %w", err)
	}
	replaced := false
	for i := range m.Files {
		if m.Files[i].Type != repository.FileNvram {
			continue
		}
		for _, c := range m.Files[i].Chunks {
			delete(m.Objects, c)
		}
		sum := sha256.Sum256(payload)
		m.Files[i].Size, m.Files[i].SHA256, m.Files[i].Chunks = int64(len(payload)), hex.EncodeToString(sum[:]), []string{id.String()}
		replaced = true
	}
	if !replaced {
		return nil, nil, fmt.Errorf("forger: backup %s has no .nvram", srcID)
	}
	m.Objects[id.String()] = so
	// Chunks of other files may have been dropped with the old nvram's.
	for _, fl := range m.Files {
		for _, c := range fl.Chunks {
			if _, ok := m.Objects[c]; !ok && c != repository.ZeroChunk {
				return nil, nil, fmt.Errorf("forger: chunk %s shared with the .nvram", c)
			}
		}
	}
	if newID != "" {
		m.BackupID = newID
	}
	m.Summary = repository.Summary{Files: len(m.Files), Size: m.TotalSize(), StoredSize: m.StoredSize(), Objects: len(m.Objects)}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("forger: edited manifest: %w", err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	return m, data, nil
}

// LaterID returns a backup ID a second after the given one's time, so a
// planted backup would be the newest.
func LaterID(id string) string {
	t, err := repository.BackupTime(id)
	if err != nil {
		t = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC) // later than any test's backup
	}
	return repository.NewBackupID(t.Add(time.Second))
}

// put stores an object raw, replacing any: the attacker does not care for
// conventions (no Object Lock: that stops overwrites, not new objects).
func (f *Forger) put(ctx context.Context, name string, data []byte) error {
	if err := f.be.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("forger: put %s: %w", name, err)
	}
	return nil
}

func (f *Forger) get(ctx context.Context, name string) ([]byte, error) {
	data, err := storage.ReadAll(ctx, f.be, name)
	if err != nil {
		return nil, fmt.Errorf("forger: %w", err)
	}
	return data, nil
}

// A Forgery plants a backup of the VM whose newest genuine backup is
// genuineID, and returns the planted backup's ID. Kind is the rejection
// readers must report (repository.RejectUnsigned, RejectForged,
// RejectForeign).
type Forgery struct {
	Name  string
	Kind  string
	Plant func(ctx context.Context, f *Forger, genuineID string) (string, error)
}

// Forgeries are the attacks every read path must reject: the issue's
// unsigned manifest; one signed with another Ed25519 key; a signature
// over other bytes; a truncated signature; a genuine signature copied
// onto an edited manifest (under a new ID, and in place of the genuine
// one); a genuine manifest and signature replayed under a new ID.
func Forgeries() []Forgery {
	return []Forgery{
		{"unsigned (the issue's attack)", repository.RejectUnsigned, plantUnsigned},
		{"signed with another key", repository.RejectForeign, plantOtherKey},
		{"signature over other bytes", repository.RejectForged, plantOtherBytes},
		{"truncated signature", repository.RejectForged, plantTruncated},
		{"genuine signature copied onto an edited manifest", repository.RejectForged, plantCopiedSignature},
		{"genuine manifest edited in place", repository.RejectForged, editInPlace},
		{"genuine backup replayed under a new ID", repository.RejectForged, replay},
	}
}

func plantUnsigned(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id := LaterID(genuineID)
	_, data, err := f.Edit(ctx, genuineID, id, EvilNvram)
	if err != nil {
		return "", err
	}
	return id, f.put(ctx, repository.ManifestObjectName(id), data)
}

func plantOtherKey(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id := LaterID(genuineID)
	m, _, err := f.Edit(ctx, genuineID, id, EvilNvram)
	if err != nil {
		return "", err
	}
	k, err := repository.GenerateWriterKey()
	if err != nil {
		return "", err
	}
	signer, err := repository.Open(ctx, f.be)
	if err != nil {
		return "", err
	}
	signer.SetWriterKey(k) // a well-formed, valid signature by the attacker's key
	return id, signer.WriteManifest(ctx, m)
}

// sigFields decodes a signature object into its fields, to rewrite some.
func sigFields(data []byte) (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("forger: genuine signature: %w", err)
	}
	return v, nil
}

// digests returns what a signature of data must state: the whole
// manifest's size and SHA-256 and its header's (the bytes before the
// comma that opens "files", as the format says).
func digests(data []byte, m *repository.Manifest) (whole, header map[string]any, err error) {
	hdr, err := json.Marshal(&m.ManifestHeader)
	if err != nil {
		return nil, nil, err
	}
	n := len(hdr) - 1
	d := func(b []byte) map[string]any {
		s := sha256.Sum256(b)
		return map[string]any{"size": len(b), "sha256": hex.EncodeToString(s[:])}
	}
	return d(data), d(data[:n]), nil
}

func plantOtherBytes(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id := LaterID(genuineID)
	m, data, err := f.Edit(ctx, genuineID, id, EvilNvram)
	if err != nil {
		return "", err
	}
	genuine, err := f.get(ctx, repository.SignatureObjectName(genuineID))
	if err != nil {
		return "", err
	}
	v, err := sigFields(genuine)
	if err != nil {
		return "", err
	}
	// Everything states the planted manifest, under the genuine key, but
	// the signature bytes are the genuine ones: made over other bytes.
	v["backup_id"] = id
	if v["manifest"], v["header"], err = digests(data, m); err != nil {
		return "", err
	}
	sig, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if err := f.put(ctx, repository.SignatureObjectName(id), sig); err != nil {
		return "", err
	}
	return id, f.put(ctx, repository.ManifestObjectName(id), data)
}

func plantTruncated(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id, err := plantOtherBytes(ctx, f, genuineID)
	if err != nil {
		return "", err
	}
	sig, err := f.get(ctx, repository.SignatureObjectName(id))
	if err != nil {
		return "", err
	}
	return id, f.put(ctx, repository.SignatureObjectName(id), sig[:len(sig)*2/3])
}

func plantCopiedSignature(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id := LaterID(genuineID)
	_, data, err := f.Edit(ctx, genuineID, id, EvilNvram)
	if err != nil {
		return "", err
	}
	genuine, err := f.get(ctx, repository.SignatureObjectName(genuineID))
	if err != nil {
		return "", err
	}
	if err := f.put(ctx, repository.SignatureObjectName(id), genuine); err != nil {
		return "", err
	}
	return id, f.put(ctx, repository.ManifestObjectName(id), data)
}

func editInPlace(ctx context.Context, f *Forger, genuineID string) (string, error) {
	_, data, err := f.Edit(ctx, genuineID, "", EvilNvram)
	if err != nil {
		return "", err
	}
	return genuineID, f.put(ctx, repository.ManifestObjectName(genuineID), data)
}

func replay(ctx context.Context, f *Forger, genuineID string) (string, error) {
	id := LaterID(genuineID)
	for _, name := range []func(string) string{repository.ManifestObjectName, repository.SignatureObjectName} {
		data, err := f.get(ctx, name(genuineID))
		if err != nil {
			return "", err
		}
		if err := f.put(ctx, name(id), data); err != nil {
			return "", err
		}
	}
	return id, nil
}
