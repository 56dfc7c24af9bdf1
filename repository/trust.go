package repository

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Trust says which manifests a reader accepts as genuine backups.
type Trust struct {
	// Writers are writer public keys pinned outside the repository (the
	// identity file, --trust-writer, this host's own writer key).
	Writers []WriterPublicKey
	// AllowUnsigned accepts manifests without a signature, as written
	// before signing existed. A signature that is there must still verify.
	AllowUnsigned bool
}

// Authenticity is how a manifest read from the repository was
// authenticated. It is not stored: readers fill it in.
type Authenticity struct {
	// Signed: the manifest's signature verified with Key. False for an
	// unsigned manifest accepted by Trust.AllowUnsigned.
	Signed bool
	Key    WriterPublicKey
	// FromConfig: Key is trusted only because the repository's config
	// lists it (no key was pinned), which anyone who can write to the
	// bucket can change.
	FromConfig bool
}

// SetTrust sets what readers accept. Call it before reading.
func (r *Repository) SetTrust(t Trust) { r.trust = t }

// AllowsUnsigned reports whether unsigned manifests are accepted.
func (r *Repository) AllowsUnsigned() bool { return r.trust.AllowUnsigned }

// SetWriterKey gives the repository the key backups sign with. Its public
// key is also trusted by readers of this Repository: a host trusts what it
// signed itself.
func (r *Repository) SetWriterKey(k *WriterKey) { r.writer = k }

// WriterKey returns the key backups sign with, nil when there is none.
func (r *Repository) WriterKey() *WriterKey { return r.writer }

// TrustedWriters returns the keys manifests are verified against: the
// pinned ones and this host's writer key; when there are none, the writer
// keys of the repository's config, and fromConfig is true (callers warn:
// whoever can write to the bucket can add a key there).
func (r *Repository) TrustedWriters() (keys []WriterPublicKey, fromConfig bool) {
	keys = append(keys, r.trust.Writers...)
	if r.writer != nil && !slices.Contains(keys, r.writer.Public()) {
		keys = append(keys, r.writer.Public())
	}
	if len(keys) > 0 {
		return keys, false
	}
	return append(keys, r.writers...), true
}

// WriterKeys returns the writer public keys the repository's config lists.
func (r *Repository) WriterKeys() []WriterPublicKey { return slices.Clone(r.writers) }

// reject builds the RejectedError of a manifest.
func reject(backupID, kind, format string, args ...any) *RejectedError {
	return &RejectedError{BackupID: backupID, Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// sigResult is a signature read, or why it could not be.
type sigResult struct {
	sig *Signature // nil: the manifest has no signature
	err error
}

// readSignatureAsync reads a manifest's signature while the caller reads
// the manifest, so verification costs no extra round trip.
func (r *Repository) readSignatureAsync(ctx context.Context, backupID string) <-chan sigResult {
	ch := make(chan sigResult, 1)
	go func() {
		s, err := r.readSignature(ctx, backupID)
		ch <- sigResult{s, err}
	}()
	return ch
}

// readSignature returns a manifest's signature; nil without error when
// there is none. A malformed one is a *RejectedError.
func (r *Repository) readSignature(ctx context.Context, backupID string) (*Signature, error) {
	name := SignatureObjectName(backupID)
	rc, err := r.be.Get(ctx, name, 0, maxSignatureSize+1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read signature of backup %s: %w", backupID, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	s, err := ParseSignature(data)
	if err != nil {
		return nil, reject(backupID, RejectForged, "its signature object %s is unreadable (%v): planted or damaged", name, err)
	}
	return s, nil
}

// checkSignature verifies a signature against the trusted writer keys
// and against the backup and repository it must be for. The manifest's
// bytes are checked against the signed digests by the caller.
func (r *Repository) checkSignature(backupID string, s *Signature) (Authenticity, error) {
	if s.Repository != r.cfg.ID {
		return Authenticity{}, reject(backupID, RejectForged, "its signature was made for repository %s, not this one (%s): copied from another repository", s.Repository, r.cfg.ID)
	}
	if s.BackupID != backupID {
		return Authenticity{}, reject(backupID, RejectForged, "its signature was made for backup %s: copied from another backup", s.BackupID)
	}
	if !ed25519.Verify(s.key[:], s.statement(), s.sig) {
		return Authenticity{}, reject(backupID, RejectForged, "its signature does not verify with the writer key it names (%s)", s.key)
	}
	keys, fromConfig := r.TrustedWriters()
	if !slices.Contains(keys, s.key) {
		return Authenticity{}, reject(backupID, RejectForeign, "it is signed by writer key %s, which is not trusted (%s)", s.key, describeTrusted(keys, fromConfig))
	}
	return Authenticity{Signed: true, Key: s.key, FromConfig: fromConfig}, nil
}

func describeTrusted(keys []WriterPublicKey, fromConfig bool) string {
	if len(keys) == 0 {
		return "no writer key is pinned and the repository config lists none"
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.String()
	}
	src := "pinned"
	if fromConfig {
		src = "from the repository config"
	}
	return "trusted " + src + ": " + strings.Join(names, ", ")
}

// rejectUnsigned is the error for an unsigned manifest when unsigned ones
// are not accepted.
func (r *Repository) rejectUnsigned(backupID string) *RejectedError {
	if len(r.writers) == 0 {
		return reject(backupID, RejectUnsigned, "it has no signature, and the repository lists no writer key: it predates signed backups; pass --allow-unsigned to accept unsigned backups")
	}
	return reject(backupID, RejectUnsigned, "it has no signature (%s is missing): planted by someone without the writer key, or written before signing began (then pass --allow-unsigned)", SignatureObjectName(backupID))
}

// claim fills in the VM name a rejected manifest claims: messages show
// it, nothing trusts it.
func claim(err error, h *ManifestHeader) error {
	var re *RejectedError
	if errors.As(err, &re) && re.ClaimedVM == "" && h != nil {
		re.ClaimedVM = h.VM.Name
	}
	return err
}

// authenticateManifest checks a whole manifest's bytes against its
// signature (sr), or applies the unsigned policy.
func (r *Repository) authenticateManifest(backupID string, data []byte, sr sigResult) (Authenticity, error) {
	if sr.err != nil {
		return Authenticity{}, sr.err
	}
	if sr.sig == nil {
		if r.trust.AllowUnsigned {
			return Authenticity{}, nil
		}
		return Authenticity{}, r.rejectUnsigned(backupID)
	}
	auth, err := r.checkSignature(backupID, sr.sig)
	if err != nil {
		return auth, err
	}
	if d := digestOf(data); d != sr.sig.Manifest {
		return auth, reject(backupID, RejectForged, "its manifest (%d bytes, sha256 %.12s…) is not the one signed (%d bytes, sha256 %.12s…): edited after signing, or damaged",
			d.Size, d.SHA256, sr.sig.Manifest.Size, sr.sig.Manifest.SHA256)
	}
	return auth, nil
}

// authenticateHeader authenticates a header decoded (h) from the first
// bytes of its manifest (prefix; full when that is the whole object). For
// a signed manifest the result is decoded from exactly the bytes the
// signature covers, read again when prefix is too short.
func (r *Repository) authenticateHeader(ctx context.Context, backupID string, h *ManifestHeader, prefix []byte, full bool, sr sigResult) (*ManifestHeader, error) {
	switch {
	case sr.err != nil:
		return nil, claim(sr.err, h)
	case sr.sig == nil && r.trust.AllowUnsigned:
		return h, nil
	case sr.sig == nil:
		return nil, claim(r.rejectUnsigned(backupID), h)
	}
	s := sr.sig
	auth, err := r.checkSignature(backupID, s)
	if err != nil {
		return nil, claim(err, h)
	}
	n := s.Header.Size
	if int64(len(prefix)) < n && !full {
		if prefix, _, err = r.readPrefix(ctx, ManifestObjectName(backupID), n); err != nil {
			return nil, err
		}
	}
	if int64(len(prefix)) < n || digestOf(prefix[:n]) != s.Header {
		return nil, claim(reject(backupID, RejectForged, "its manifest header is not the one signed (%d bytes, sha256 %.12s…): edited after signing, or damaged", n, s.Header.SHA256), h)
	}
	signed, err := decodeSignedHeader(prefix[:n])
	if err != nil {
		// Signed by a trusted key, yet not a header: a bug, not an attack.
		return nil, fmt.Errorf("%w: backup %s: signed header does not decode: %v", ErrCorruptManifest, backupID, err)
	}
	signed.Auth = auth
	return signed, nil
}

// readPrefix reads the first length bytes of an object (all when
// negative). full reports that the whole object was read.
func (r *Repository) readPrefix(ctx context.Context, name string, length int64) (data []byte, full bool, err error) {
	rc, err := r.be.Get(ctx, name, 0, length)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	data, err = io.ReadAll(rc)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	return data, length < 0 || int64(len(data)) < length, nil
}

// decodeHeaderPrefix decodes the JSON object's members up to "files"
// from the first bytes of a manifest. With more (the object continues past
// data), running out of bytes is io.ErrUnexpectedEOF: read more. Otherwise
// it is a corrupt manifest.
func decodeHeaderPrefix(name string, data []byte, more bool) (*ManifestHeader, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) error {
		if more && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			return io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: %s: %v (truncated or not JSON)", ErrCorruptManifest, name, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err == nil {
			err = fmt.Errorf("not an object")
		}
		return nil, fail(err)
	}
	// The members are put back together in their order, not through a
	// map: with a key repeated (or repeated in another case, which Go's
	// decoder matches too), the last one wins, as in decodeManifest.
	var obj bytes.Buffer
	obj.WriteByte('{')
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		key, ok := tok.(string)
		if !ok {
			if tok != json.Delim('}') {
				return nil, fail(fmt.Errorf("unexpected %v", tok))
			}
			break // a manifest without chunk lists
		}
		if key == "files" || key == "objects" {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fail(err)
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, fail(err)
		}
		if obj.Len() > 1 {
			obj.WriteByte(',')
		}
		obj.Write(k)
		obj.WriteByte(':')
		obj.Write(v)
	}
	obj.WriteByte('}')
	var h ManifestHeader
	if err := json.Unmarshal(obj.Bytes(), &h); err != nil {
		return nil, fail(err)
	}
	return &h, nil
}
