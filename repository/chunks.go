package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// ChunkID is the SHA-256 of a chunk's plaintext.
type ChunkID [sha256.Size]byte

// String returns the lowercase hex form used in object names and manifests.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// ParseChunkID parses the hex form.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("chunk id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunk id %q: %w", s, err)
	}
	return id, nil
}

// ChunkObjectName is where a chunk is stored: data/<first 2 hex>/<id>. The
// fan-out keeps local directories small and spreads S3 key prefixes.
func ChunkObjectName(id ChunkID) string {
	s := id.String()
	return "data/" + s[:2] + "/" + s
}

// StoredObject describes one stored chunk object, as recorded in manifests:
// enough to detect storage corruption without decrypting.
type StoredObject struct {
	// Size is the plaintext length.
	Size int64 `json:"size"`
	// StoredSize is the length of the stored (compressed, encrypted) object.
	StoredSize int64 `json:"stored_size"`
	// StoredSHA256 is the SHA-256 of the stored object, hex.
	StoredSHA256 string `json:"stored_sha256"`
	// RetainUntil is the S3 Object Lock retention this repository last
	// put on the object (repositories created with --object-lock-days);
	// zero otherwise. Backups that reuse the chunk extend it when it would
	// lapse before their own manifest's retention (see EnsureRetained).
	RetainUntil time.Time `json:"retain_until,omitzero"`
}

// Errors about chunk contents.
var (
	// ErrObjectCorrupt: the stored object differs from what the manifest recorded.
	ErrObjectCorrupt = errors.New("stored object corrupt")
	// ErrChunkCorrupt: the decrypted plaintext does not hash to the chunk ID.
	ErrChunkCorrupt = errors.New("chunk content does not match its id")
)

// IsZero reports whether b is all zero bytes. Zero chunks are never stored:
// thin and freshly-allocated disks are mostly zeros.
func IsZero(b []byte) bool {
	// Compare word-sized slices against a zero block: several GB/s.
	var zero [4096]byte
	for len(b) >= len(zero) {
		if !bytes.Equal(b[:len(zero)], zero[:]) {
			return false
		}
		b = b[len(zero):]
	}
	return bytes.Equal(b, zero[:len(b)])
}

// maxStoredSize bounds how large a stored chunk object may be: a chunk's
// plaintext plus zstd's worst case, age's per-64KiB tags and its header (a
// stanza per recipient; post-quantum ones take a few KiB). Readers refuse
// anything larger as corrupt, and writers refuse to produce it.
func (r *Repository) maxStoredSize() int64 {
	cs := r.cfg.ChunkSize
	return cs + cs/64 + 64<<10 + 8<<10*int64(len(r.cfg.Recipients))
}

// MaxStoredSize is the largest stored object a chunk may become (see
// maxStoredSize): what a chunk writer's buffers hold, for memory budgets.
func (r *Repository) MaxStoredSize() int64 { return r.maxStoredSize() }

// ChunkWriter encodes and uploads chunks. Each worker owns one: it reuses
// a zstd encoder and its buffers, so steady-state writing allocates no
// chunk-sized buffers. Not safe for concurrent use.
type ChunkWriter struct {
	r    *Repository
	enc  *zstd.Encoder
	zbuf []byte
	out  bytes.Buffer
}

// NewChunkWriter returns a writer for one worker.
func (r *Repository) NewChunkWriter() *ChunkWriter {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder with static options: %v", err)) // cannot happen: options are constants
	}
	// Sized once for the largest chunk, like the reader's buffers.
	max := int(r.maxStoredSize())
	w := &ChunkWriter{r: r, enc: enc, zbuf: make([]byte, 0, max)}
	w.out.Grow(max)
	return w
}

// Close releases the encoder.
func (w *ChunkWriter) Close() { w.enc.Close() }

// Encode returns the stored form of plaintext: age(zstd(plaintext)). The
// returned slice is valid until the next call.
func (w *ChunkWriter) Encode(plaintext []byte) ([]byte, error) {
	w.zbuf = w.enc.EncodeAll(plaintext, w.zbuf[:0])
	w.out.Reset()
	aw, err := age.Encrypt(&w.out, w.r.recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypt chunk: %w", err)
	}
	if _, err := aw.Write(w.zbuf); err != nil {
		return nil, fmt.Errorf("encrypt chunk: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encrypt chunk: %w", err)
	}
	if n := int64(w.out.Len()); n > w.r.maxStoredSize() {
		// Stored, it would be refused by every reader as corrupt.
		return nil, fmt.Errorf("encrypt chunk: the stored form is %d bytes, more than readers accept (%d): the repository has too many recipients for its chunk size", n, w.r.maxStoredSize())
	}
	return w.out.Bytes(), nil
}

// Put stores plaintext under id (its SHA-256, computed by the caller, who
// needs it first to skip known chunks) and returns the stored object's
// description. When another writer stored the same chunk first, the existing
// object is kept and described instead: objects are written once.
func (w *ChunkWriter) Put(ctx context.Context, id ChunkID, plaintext []byte) (StoredObject, error) {
	stored, err := w.Encode(plaintext)
	if err != nil {
		return StoredObject{}, fmt.Errorf("chunk %s: %w", id, err)
	}
	name := ChunkObjectName(id)
	err = w.r.be.PutIfAbsent(ctx, name, bytes.NewReader(stored), int64(len(stored)))
	if errors.Is(err, storage.ErrExists) {
		so, err := w.r.describeStored(ctx, name, int64(len(plaintext)))
		if err != nil {
			return StoredObject{}, fmt.Errorf("chunk %s already stored: %w", id, err)
		}
		// Its retention is unknown here: renew it for this backup.
		if so.RetainUntil, err = w.r.retain(ctx, name, w.r.chunkRetention()); err != nil {
			return StoredObject{}, err
		}
		return so, nil
	}
	if err != nil {
		return StoredObject{}, fmt.Errorf("upload chunk %s: %w", id, err)
	}
	sum := sha256.Sum256(stored)
	so := StoredObject{Size: int64(len(plaintext)), StoredSize: int64(len(stored)), StoredSHA256: hex.EncodeToString(sum[:])}
	if so.RetainUntil, err = w.r.retain(ctx, name, w.r.chunkRetention()); err != nil {
		return StoredObject{}, err
	}
	return so, nil
}

// retentionMargin covers the time between a chunk's check and the write of
// the manifest that needs it (hours for a large disk): the manifest is
// retained from its own write time.
const retentionMargin = 24 * time.Hour

// EnsureRetained makes sure a chunk a new backup reuses stays retained at
// least as long as that backup's manifest: Object Lock on the manifest is
// worthless if the chunks it needs can be deleted earlier. It extends the
// retention (with slack, see chunkRetention) only when so.RetainUntil says
// it would lapse first, and returns the updated description. Repositories
// without Object Lock return so unchanged.
func (r *Repository) EnsureRetained(ctx context.Context, id ChunkID, so StoredObject) (StoredObject, error) {
	if r.cfg.ObjectLockDays <= 0 || so.RetainUntil.After(r.clk.Now().Add(r.lockPeriod()+retentionMargin)) {
		return so, nil
	}
	until, err := r.retain(ctx, ChunkObjectName(id), r.chunkRetention())
	if err != nil {
		return so, err
	}
	so.RetainUntil = until
	return so, nil
}

// describeStored hashes an existing object, for chunks another backup
// stored first (another VM cloned from the same template, say).
func (r *Repository) describeStored(ctx context.Context, name string, plainSize int64) (StoredObject, error) {
	rc, err := r.be.Get(ctx, name, 0, -1)
	if err != nil {
		return StoredObject{}, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return StoredObject{}, fmt.Errorf("read %s: %w", name, err)
	}
	return StoredObject{Size: plainSize, StoredSize: n, StoredSHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (r *Repository) lockPeriod() time.Duration {
	return time.Duration(r.cfg.ObjectLockDays) * 24 * time.Hour
}

// chunkRetention is how long a chunk is retained when written or extended:
// the Object Lock period plus slack, so that a chunk reused every night is
// extended once every few nights instead of with every backup. The slack
// is half the period, and at least four retentionMargins (EnsureRetained
// requires one to be left), so short periods are not extended nightly.
func (r *Repository) chunkRetention() time.Duration {
	p := r.lockPeriod()
	return max(p+p/2, p+4*retentionMargin)
}

// retain puts an Object Lock retention of d on an object and returns its
// end; the zero time when the repository does not use Object Lock.
func (r *Repository) retain(ctx context.Context, name string, d time.Duration) (time.Time, error) {
	if r.cfg.ObjectLockDays <= 0 {
		return time.Time{}, nil
	}
	ret, ok := r.be.(storage.Retainer)
	if !ok {
		return time.Time{}, fmt.Errorf("retain %s: repository requires Object Lock but %s cannot retain objects", name, r.be.Location())
	}
	until := r.clk.Now().Add(d).UTC().Truncate(time.Second)
	if err := ret.SetRetention(ctx, name, until); err != nil {
		return time.Time{}, fmt.Errorf("retain %s: %w", name, err)
	}
	return until, nil
}

// ChunkReader downloads, verifies and decodes chunks. Each worker owns one;
// it reuses a zstd decoder and buffers. Not safe for concurrent use.
type ChunkReader struct {
	r      *Repository
	dec    *zstd.Decoder
	stored bytes.Buffer
	zbuf   bytes.Buffer
}

// NewChunkReader returns a reader for one worker. Reading needs identities
// (SetIdentities) unless only VerifyStored is used.
func (r *Repository) NewChunkReader() *ChunkReader {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(r.cfg.ChunkSize)+1))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder with static options: %v", err)) // cannot happen: options are constants
	}
	cr := &ChunkReader{r: r, dec: dec}
	// Sized once for the largest object, so bytes.Buffer's doubling never
	// leaves two chunk-sized buffers per reader (ReadFrom wants MinRead
	// spare bytes at the end).
	cr.stored.Grow(int(r.maxStoredSize()) + 1 + bytes.MinRead)
	cr.zbuf.Grow(int(r.maxStoredSize()) + bytes.MinRead)
	return cr
}

// Close releases the decoder.
func (cr *ChunkReader) Close() { cr.dec.Close() }

// fetch downloads the stored object into cr.stored and checks it against
// so when given.
func (cr *ChunkReader) fetch(ctx context.Context, id ChunkID, so *StoredObject) error {
	name := ChunkObjectName(id)
	rc, err := cr.r.be.Get(ctx, name, 0, -1)
	if err != nil {
		return fmt.Errorf("chunk %s: %w", id, err)
	}
	defer rc.Close()
	cr.stored.Reset()
	limit := cr.r.maxStoredSize()
	n, err := cr.stored.ReadFrom(io.LimitReader(rc, limit+1))
	if err != nil {
		return fmt.Errorf("chunk %s: read: %w", id, err)
	}
	if n > limit {
		return fmt.Errorf("%w: chunk %s: object %s larger than any chunk can be", ErrObjectCorrupt, id, name)
	}
	if so != nil {
		if n != so.StoredSize {
			return fmt.Errorf("%w: chunk %s: object %s is %d bytes, manifest recorded %d", ErrObjectCorrupt, id, name, n, so.StoredSize)
		}
		sum := sha256.Sum256(cr.stored.Bytes())
		if hex.EncodeToString(sum[:]) != so.StoredSHA256 {
			return fmt.Errorf("%w: chunk %s: object %s SHA-256 differs from the manifest", ErrObjectCorrupt, id, name)
		}
	}
	return nil
}

// VerifyStored checks a stored object's size and SHA-256 against the
// manifest without decrypting it: audits need no private key.
func (cr *ChunkReader) VerifyStored(ctx context.Context, id ChunkID, so StoredObject) error {
	return cr.fetch(ctx, id, &so)
}

// Read returns the verified plaintext of chunk id, appended to dst[:0]. so,
// when not nil, is checked against the stored object first, so corruption
// is reported as storage corruption rather than a decryption failure.
func (cr *ChunkReader) Read(ctx context.Context, id ChunkID, so *StoredObject, dst []byte) ([]byte, error) {
	if len(cr.r.identities) == 0 {
		return nil, fmt.Errorf("%w: reading chunks needs the repository's private key: pass --identity FILE", ErrNoIdentity)
	}
	if err := cr.fetch(ctx, id, so); err != nil {
		return nil, err
	}
	ar, err := age.Decrypt(bytes.NewReader(cr.stored.Bytes()), cr.r.identities...)
	if err != nil {
		if isNoMatch(err) {
			return nil, fmt.Errorf("%w: chunk %s: the identity file holds none of the keys this repository encrypts to", ErrWrongIdentity, id)
		}
		return nil, fmt.Errorf("%w: chunk %s: decrypt: %v", ErrChunkCorrupt, id, err)
	}
	cr.zbuf.Reset()
	if _, err := cr.zbuf.ReadFrom(ar); err != nil {
		return nil, fmt.Errorf("%w: chunk %s: decrypt: %v", ErrChunkCorrupt, id, err)
	}
	plain, err := cr.dec.DecodeAll(cr.zbuf.Bytes(), dst[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %s: decompress: %v", ErrChunkCorrupt, id, err)
	}
	if sha256.Sum256(plain) != id {
		return nil, fmt.Errorf("%w: chunk %s", ErrChunkCorrupt, id)
	}
	return plain, nil
}
