package repository

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A manifest's signature is stored beside it, in manifests/<id>.sig, and is
// written before it: the manifest stays the commit point, and a manifest
// never exists without its signature (an orphan signature is harmless and
// prune removes it).
//
// The signature covers a statement, not the JSON of the .sig object:
//
//	vtpm-backup signed manifest v1
//	repository <repository id>
//	backup <backup id>
//	manifest <size> <sha256 of the whole manifest object>
//	header <size> <sha256 of the manifest's first <size> bytes: its header>
//
// so a genuine signature does not carry over to another backup ID, another
// repository, or edited bytes; and the header digest lets a catalog verify
// a header from a ranged read, without the chunk lists.

const (
	signatureSuffix = ".sig"
	// signatureVersion and signatureAlgorithm are the only format this
	// build writes and reads.
	signatureVersion   = 1
	signatureAlgorithm = "ed25519"
	statementMagic     = "vtpm-backup signed manifest v1"
	// maxSignatureSize bounds what is read of a .sig object: a genuine one
	// is about 500 bytes; a planted huge one must not cost memory.
	maxSignatureSize = 4 << 10
)

// Errors readers test with errors.Is.
var (
	// ErrRejected: a manifest failed authentication (unsigned, forged or
	// signed by a key that is not trusted). Its error is a *RejectedError.
	ErrRejected = errors.New("backup rejected")
	// ErrBadSignature: a .sig object cannot be parsed.
	ErrBadSignature = errors.New("malformed signature")
)

// Reasons a manifest is rejected (RejectedError.Kind).
const (
	// RejectUnsigned: the manifest has no signature. Repositories created
	// before signing existed hold such manifests; readers accept them only
	// when told to (Trust.AllowUnsigned).
	RejectUnsigned = "unsigned"
	// RejectForged: the signature does not verify, is malformed, or was
	// made for other bytes, another backup or another repository.
	RejectForged = "forged"
	// RejectForeign: the signature is valid, but made by a writer key the
	// reader does not trust.
	RejectForeign = "foreign"
)

// RejectedError says why a manifest was not accepted as a genuine backup.
// It matches ErrRejected.
type RejectedError struct {
	BackupID string
	// Kind is RejectUnsigned, RejectForged or RejectForeign.
	Kind string
	// Reason explains Kind in a sentence.
	Reason string
	// ClaimedVM is the VM name the manifest claims, when it could be read;
	// it is what an attacker wrote, for messages only.
	ClaimedVM string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("backup %s is REJECTED as %s: %s", e.BackupID, e.Kind, e.Reason)
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Digest is the size and SHA-256 of a byte range.
type Digest struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func digestOf(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

// Signature is the content of a manifests/<id>.sig object.
type Signature struct {
	Version    int    `json:"version"`
	Algorithm  string `json:"algorithm"`
	Key        string `json:"key"`
	Repository string `json:"repository"`
	BackupID   string `json:"backup_id"`
	Manifest   Digest `json:"manifest"`
	Header     Digest `json:"header"`
	// Sig is the Ed25519 signature of the statement, base64 (standard).
	Sig string `json:"signature"`

	key WriterPublicKey
	sig []byte
}

// SignatureObjectName is where a manifest's signature is stored.
func SignatureObjectName(backupID string) string { return manifestPrefix + backupID + signatureSuffix }

// statement is the byte string the signature covers. Every field was
// checked to hold no space or newline (ParseSignature, signManifest), so
// the encoding is unambiguous.
func (s *Signature) statement() []byte {
	return fmt.Appendf(nil, "%s\nrepository %s\nbackup %s\nmanifest %d %s\nheader %d %s\n",
		statementMagic, s.Repository, s.BackupID, s.Manifest.Size, s.Manifest.SHA256, s.Header.Size, s.Header.SHA256)
}

// ParseSignature parses and checks the form of a .sig object; whether it
// verifies is checkSignature's business.
func ParseSignature(data []byte) (*Signature, error) {
	if len(data) > maxSignatureSize {
		return nil, fmt.Errorf("%w: %d bytes, more than a signature's %d", ErrBadSignature, len(data), maxSignatureSize)
	}
	var s Signature
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v (truncated or not JSON)", ErrBadSignature, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the signature object", ErrBadSignature)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return &s, nil
}

// check validates every field and decodes the key and signature bytes.
func (s *Signature) check() error {
	if s.Version != signatureVersion || s.Algorithm != signatureAlgorithm {
		return fmt.Errorf("version %d, algorithm %q (this build reads %d, %q)", s.Version, s.Algorithm, signatureVersion, signatureAlgorithm)
	}
	k, err := ParseWriterPublicKey(s.Key)
	if err != nil {
		return err
	}
	s.key = k
	if !isLowerHex(s.Repository, 32) {
		return fmt.Errorf("repository id %q", s.Repository)
	}
	if _, err := BackupTime(s.BackupID); err != nil || strings.ContainsAny(s.BackupID, " \n/\\") {
		return fmt.Errorf("backup id %q", s.BackupID)
	}
	for _, d := range []Digest{s.Manifest, s.Header} {
		if d.Size <= 0 || !isLowerHex(d.SHA256, 64) {
			return fmt.Errorf("digest %d %q", d.Size, d.SHA256)
		}
	}
	if s.Header.Size > s.Manifest.Size {
		return fmt.Errorf("header of %d bytes in a manifest of %d", s.Header.Size, s.Manifest.Size)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	s.sig = raw
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// headerLength returns how many leading bytes of an encoded manifest are
// its header: everything before the comma that opens "files". It checks
// that the encoding really has that shape, since readers decode those
// bytes alone.
func headerLength(data []byte, h *ManifestHeader) (int, error) {
	hdr, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	n := len(hdr) - 1 // without the closing brace
	if n <= 1 || len(data) <= n || !bytes.Equal(data[:n], hdr[:n]) || data[n] != ',' {
		return 0, fmt.Errorf("manifest %s: the encoded manifest does not start with its header", h.BackupID)
	}
	return n, nil
}

// signManifest returns the .sig object for an encoded manifest.
func signManifest(k *WriterKey, repoID string, data []byte, h *ManifestHeader) ([]byte, error) {
	n, err := headerLength(data, h)
	if err != nil {
		return nil, err
	}
	s := &Signature{
		Version:    signatureVersion,
		Algorithm:  signatureAlgorithm,
		Key:        k.Public().String(),
		Repository: repoID,
		BackupID:   h.BackupID,
		Manifest:   digestOf(data),
		Header:     digestOf(data[:n]),
	}
	s.Sig = base64.StdEncoding.EncodeToString(k.sign(s.statement()))
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// decodeSignedHeader decodes a header from the exact bytes its signature
// covers (a JSON object missing its closing brace).
func decodeSignedHeader(b []byte) (*ManifestHeader, error) {
	obj := make([]byte, 0, len(b)+1)
	obj = append(append(obj, b...), '}')
	var h ManifestHeader
	if err := json.Unmarshal(obj, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
