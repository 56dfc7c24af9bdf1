package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// ManifestSchemaVersion is the manifest schema this package writes and reads.
const ManifestSchemaVersion = 1

// ZeroChunk marks an all-zero chunk in a file's chunk list: nothing is
// stored for it and restore writes zeros without reading the repository.
const ZeroChunk = "0"

const manifestPrefix = "manifests/"

// File types in a manifest.
const (
	FileConfig         = "config"
	FileNvram          = "nvram"
	FileSnapshotList   = "snapshot-list"
	FileSnapshotData   = "snapshot-data" // .vmsn of the user's own snapshots
	FileDiskDescriptor = "disk-descriptor"
	FileDiskExtent     = "disk-extent"
	FileLog            = "log"
	FileOther          = "other"
)

// Errors about manifests.
var (
	// ErrManifestNotFound: no manifest with that backup ID.
	ErrManifestNotFound = errors.New("backup not found")
	// ErrCorruptManifest: a manifest cannot be parsed or is inconsistent.
	ErrCorruptManifest = errors.New("corrupt manifest")
)

// Manifest describes one backup of one VM. It is written last: a backup
// without a manifest does not exist. It holds no VM data and no secrets.
//
// The header comes first in the JSON, the bulky chunk lists last, so that
// listing a repository reads only the first kilobytes of each manifest
// (ReadManifestHeader) instead of every chunk list.
type Manifest struct {
	ManifestHeader

	Files []File `json:"files"`
	// Objects describes every stored chunk that Files reference.
	Objects map[string]StoredObject `json:"objects"`
}

// ManifestHeader is everything in a manifest but the chunk lists: what a
// catalog of many backups needs (VM, time, sizes, keys).
type ManifestHeader struct {
	SchemaVersion int       `json:"schema_version"`
	BackupID      string    `json:"backup_id"`
	ToolVersion   string    `json:"tool_version"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	ChunkSize     int64     `json:"chunk_size"`

	VCenter VCenterInfo `json:"vcenter"`
	VM      VMInfo      `json:"vm"`
	Keys    []KeyInfo   `json:"keys"`
	// Providers describes each key provider the keys above come from, as
	// the source vCenter reported it. Manifests written before it existed
	// carry only KeyInfo.ProviderType and NKPBackedUp; readers fall back
	// to those.
	Providers []ProviderInfo `json:"providers,omitempty"`
	// EncryptionConfig holds the VM's readable encryption.* extraConfig
	// entries (e.g. encryption.keySafe): locators, never key material.
	EncryptionConfig map[string]string `json:"encryption_config,omitempty"`
	// SkippedDisks are the disks the backup left out because its transport
	// cannot capture them (backup --skip-uncapturable).
	SkippedDisks []SkippedDisk `json:"skipped_disks,omitempty"`
	// NotRegistrable, when set, says why the backup can be extracted
	// (restore --to-dir) but not registered on a vCenter: each entry
	// names the disk or file and the reason (a linked clone, a disk
	// outside the home folder).
	NotRegistrable []string `json:"not_registrable,omitempty"`
	// Disks describes each virtual disk as the backup's snapshot saw it
	// (device key, UUID, capacity, CBT change ID) and how it was read:
	// what the next backup of the VM compares before it trusts Changed
	// Block Tracking. Manifests written before it existed have none.
	Disks []DiskRecord `json:"disks,omitempty"`
	// Summary repeats totals of the chunk lists, filled by WriteManifest.
	Summary Summary `json:"summary"`

	// Auth says how the manifest was authenticated when it was read.
	Auth Authenticity `json:"-"`
}

// Summary is the totals of a manifest's files and objects.
type Summary struct {
	Files int `json:"files"`
	// Size is the plaintext size of all files.
	Size int64 `json:"size"`
	// StoredSize is the size of the distinct stored objects the backup
	// references (shared with other backups or not).
	StoredSize int64 `json:"stored_size"`
	Objects    int   `json:"objects"`
}

// VCenterInfo identifies where the VM was backed up from.
type VCenterInfo struct {
	Host         string `json:"host"`
	InstanceUUID string `json:"instance_uuid"`
}

// VMInfo is the VM's identity and placement at backup time.
type VMInfo struct {
	Name            string `json:"name"`
	InventoryPath   string `json:"inventory_path"`
	InstanceUUID    string `json:"instance_uuid"`
	BIOSUUID        string `json:"bios_uuid"`
	MoRef           string `json:"moref"`
	Host            string `json:"host"`
	ResourcePool    string `json:"resource_pool"`
	Folder          string `json:"folder"`
	Datastore       string `json:"datastore"`
	HomeFolder      string `json:"home_folder"`
	Firmware        string `json:"firmware"`
	SecureBoot      bool   `json:"secure_boot"`
	HardwareVersion string `json:"hardware_version"`
	VTPM            bool   `json:"vtpm"`
	Encrypted       bool   `json:"encrypted"`
	// ChangeTracking is config.changeTrackingEnabled at backup time (CBT
	// on); nil in manifests written before it was recorded.
	ChangeTracking *bool `json:"change_tracking,omitempty"`
}

// SkippedDisk is a disk of the VM that a backup left out.
type SkippedDisk struct {
	// Label is the device label ("Hard disk 2"); File its current backing
	// file as a datastore path.
	Label string `json:"label"`
	File  string `json:"file"`
	// Reason says why this transport cannot capture it.
	Reason string `json:"reason"`
}

// How a disk's data extent was read (DiskRecord.Read).
const (
	// DiskReadFull: every byte was read.
	DiskReadFull = "full"
	// DiskReadChanged: only the areas CBT reported changed since the
	// previous backup were read; the other chunks are the previous
	// backup's.
	DiskReadChanged = "changed"
	// DiskReadAllocated: only the areas CBT reported allocated were read;
	// the others are zero chunks.
	DiskReadAllocated = "allocated"
)

// DiskRecord is one virtual disk of a backup.
type DiskRecord struct {
	// Key is the device key, Label the device label ("Hard disk 1").
	Key   int32  `json:"key"`
	Label string `json:"label,omitempty"`
	// UUID is the disk's UUID; Capacity its size in bytes.
	UUID     string `json:"uuid,omitempty"`
	Capacity int64  `json:"capacity"`
	// ChangeID is the CBT change ID of the disk in the backup's snapshot,
	// empty when change tracking was not active.
	ChangeID string `json:"change_id,omitempty"`
	// Extent is the disk's data file, "[ds] dir/name-flat.vmdk", the
	// File holding its content (empty when the disk has a chain of
	// several files, whose offsets CBT does not map).
	Extent string `json:"extent,omitempty"`
	// Read is DiskReadFull, DiskReadChanged or DiskReadAllocated.
	Read string `json:"read,omitempty"`
	// Fallback says why CBT was not used to read less, when it was not.
	Fallback string `json:"fallback,omitempty"`
	// CBTChain counts the backups in a row, this one included, that read
	// the disk in part through CBT (0 after a full read): what
	// backup --full-every weighs.
	CBTChain int `json:"cbt_chain,omitempty"`
}

// KeyInfo is one key the VM depends on.
type KeyInfo struct {
	KeyID        string `json:"key_id"`
	ProviderID   string `json:"provider_id"`
	ProviderType string `json:"provider_type"`
	// Use is "vm" for config.keyId or "disk:<file>" for a disk key.
	Use string `json:"use"`
	// NKPBackedUp tells, for a Native Key Provider, whether it had been
	// backed up (.p12 exported) at backup time; nil when unknown.
	NKPBackedUp *bool `json:"nkp_backed_up,omitempty"`
}

// ProviderInfo is one key provider a backed-up VM depends on. A restore
// compares it with the target vCenter's provider of the same ID: for a
// vSphere Native Key Provider the ID is only a name, and NKPKeyID (the
// provider's identity, KmipClusterInfo.keyId) tells a provider restored
// from its .p12 backup from a new one created under the same name.
type ProviderInfo struct {
	ID string `json:"id"`
	// Type is "native", "standard", "trust_authority" or "unknown".
	Type string `json:"type"`
	// NKPKeyID is a Native Key Provider's identity; empty when unknown
	// (vCenter before 7.0 U2) or not a native provider.
	NKPKeyID string `json:"nkp_key_id,omitempty"`
	// TPMRequired tells that a Native Key Provider serves only hosts with
	// a TPM; nil when unknown.
	TPMRequired *bool `json:"tpm_required,omitempty"`
	// BackedUp tells whether a Native Key Provider had been backed up
	// (.p12 exported) at backup time; nil when unknown.
	BackedUp *bool `json:"backed_up,omitempty"`
}

// File is one file of the VM home or of a disk chain.
type File struct {
	// Name is the file name relative to its datastore folder.
	Name string `json:"name"`
	// Datastore and Dir locate the original file (disks may live apart
	// from the home folder).
	Datastore string `json:"datastore"`
	Dir       string `json:"dir"`
	Type      string `json:"type"`
	Size      int64  `json:"size"`
	// SHA256 is the SHA-256 of the whole file. It is empty for a disk
	// extent read in part through CBT (DiskRecord.Read): only the chunks'
	// IDs, the SHA-256 of each chunk, vouch for its content then.
	SHA256 string `json:"sha256"`
	// Chunks lists chunk IDs in file order, ZeroChunk for all-zero chunks.
	Chunks []string `json:"chunks"`
}

// StoredSize sums the stored size of the distinct objects the manifest
// references.
func (m *Manifest) StoredSize() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.StoredSize
	}
	return n
}

// TotalSize sums the plaintext size of all files.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// summarize computes the Summary of the chunk lists.
func (m *Manifest) summarize() Summary {
	return Summary{Files: len(m.Files), Size: m.TotalSize(), StoredSize: m.StoredSize(), Objects: len(m.Objects)}
}

// FileByType returns the files of a type.
func (m *Manifest) FileByType(typ string) []File {
	var out []File
	for _, f := range m.Files {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

// NewBackupID returns an ID that sorts by time: UTC time to the millisecond
// and a random suffix so concurrent backups never collide.
func NewBackupID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// BackupTime parses the time out of a backup ID.
func BackupTime(id string) (time.Time, error) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return time.Time{}, fmt.Errorf("backup id %q: no time part", id)
	}
	t, err := time.Parse("20060102T150405.000Z", id[:i])
	if err != nil {
		return time.Time{}, fmt.Errorf("backup id %q: %w", id, err)
	}
	return t, nil
}

// ManifestObjectName is where a manifest is stored.
func ManifestObjectName(backupID string) string { return manifestPrefix + backupID + ".json" }

// Validate checks a manifest's internal consistency against the
// repository's chunk size: every chunk listed has a stored object, chunk
// counts match file sizes, a vTPM VM has its .nvram.
func (m *Manifest) Validate() error {
	bad := m.corrupt
	if err := m.ManifestHeader.Validate(); err != nil {
		return err
	}
	if len(m.Files) == 0 {
		return bad("no files")
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		key := f.Datastore + "\x00" + f.Dir + "\x00" + f.Name
		if f.Name == "" || strings.Contains(f.Name, "/") || seen[key] {
			return bad("file name %q empty, not a base name, or listed twice", f.Name)
		}
		seen[key] = true
		if f.Size < 0 || (len(f.SHA256) != 64 && (f.SHA256 != "" || f.Type != FileDiskExtent)) {
			return bad("file %s: size %d or sha256 %q invalid", f.Name, f.Size, f.SHA256)
		}
		want := (f.Size + m.ChunkSize - 1) / m.ChunkSize
		if int64(len(f.Chunks)) != want {
			return bad("file %s: %d chunks for %d bytes, want %d", f.Name, len(f.Chunks), f.Size, want)
		}
		for i, c := range f.Chunks {
			if c == ZeroChunk {
				continue
			}
			so, ok := m.Objects[c]
			if !ok {
				return bad("file %s: chunk %d (%s) has no stored object entry", f.Name, i, c)
			}
			size := m.ChunkSize
			if int64(i) == want-1 {
				size = f.Size - int64(i)*m.ChunkSize
			}
			if so.Size != size {
				return bad("file %s: chunk %d (%s) is %d bytes, want %d", f.Name, i, c, so.Size, size)
			}
		}
	}
	for id, so := range m.Objects {
		if _, err := ParseChunkID(id); err != nil {
			return bad("%v", err)
		}
		if so.StoredSize <= 0 || len(so.StoredSHA256) != 64 {
			return bad("object %s: stored size %d or sha256 invalid", id, so.StoredSize)
		}
	}
	if m.VM.VTPM && len(m.FileByType(FileNvram)) == 0 {
		return bad("VM %s has a vTPM but the backup holds no .nvram", m.VM.Name)
	}
	// A zero summary is a manifest written before summaries existed.
	if sum := m.summarize(); m.Summary != (Summary{}) && m.Summary != sum {
		return bad("summary %+v does not match the files and objects (%+v)", m.Summary, sum)
	}
	return nil
}

func (h *ManifestHeader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: backup %s: %s", ErrCorruptManifest, h.BackupID, fmt.Sprintf(format, args...))
}

// Validate checks what can be checked of a manifest without its chunk
// lists: schema version, backup ID, chunk size, VM name.
func (h *ManifestHeader) Validate() error {
	if h.SchemaVersion != ManifestSchemaVersion {
		return h.corrupt("schema version %d (this build reads %d)", h.SchemaVersion, ManifestSchemaVersion)
	}
	if _, err := BackupTime(h.BackupID); err != nil {
		return h.corrupt("%v", err)
	}
	if h.ChunkSize <= 0 {
		return h.corrupt("chunk size %d", h.ChunkSize)
	}
	if h.VM.Name == "" {
		return h.corrupt("no VM name")
	}
	return nil
}

// WriteManifest validates, signs and stores a manifest: the commit point of
// a backup. The signature (SignatureObjectName) is written first, so the
// manifest never exists unsigned; it needs the writer key (SetWriterKey).
func (r *Repository) WriteManifest(ctx context.Context, m *Manifest) error {
	if r.writer == nil {
		return fmt.Errorf("%w: backup %s cannot be signed: pass --writer-key FILE or set VTPM_BACKUP_WRITER_KEY", ErrNoWriterKey, m.BackupID)
	}
	if m.ChunkSize == 0 {
		m.ChunkSize = r.cfg.ChunkSize
	}
	m.SchemaVersion = ManifestSchemaVersion
	m.Summary = m.summarize()
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest %s: %w", m.BackupID, err)
	}
	sig, err := signManifest(r.writer, r.cfg.ID, data, &m.ManifestHeader)
	if err != nil {
		return fmt.Errorf("sign manifest %s: %w", m.BackupID, err)
	}
	if err := r.putRetained(ctx, SignatureObjectName(m.BackupID), sig); err != nil {
		return fmt.Errorf("write signature of backup %s: %w", m.BackupID, err)
	}
	if err := r.putRetained(ctx, ManifestObjectName(m.BackupID), data); err != nil {
		return fmt.Errorf("write manifest %s: %w", m.BackupID, err)
	}
	m.Auth = Authenticity{Signed: true, Key: r.writer.Public()}
	return nil
}

// putRetained writes a new object and puts the repository's Object Lock
// retention on it.
func (r *Repository) putRetained(ctx context.Context, name string, data []byte) error {
	if err := r.be.PutIfAbsent(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	if _, err := r.retain(ctx, name, r.lockPeriod()); err != nil {
		// Unretained, the backup would exist without the immutability the
		// repository promises: withdraw it (possible: nothing retains it
		// yet), so the failure reported is the whole truth.
		if derr := r.be.Delete(context.WithoutCancel(ctx), name); derr != nil {
			return fmt.Errorf("%w; withdrawing %s failed too, so it exists without retention: %v", err, name, derr)
		}
		return err
	}
	return nil
}

// ReadManifest reads, validates and authenticates one manifest. A manifest
// that is unsigned (unless Trust.AllowUnsigned), forged or signed by an
// untrusted key is a *RejectedError (errors.Is ErrRejected); one that does
// not even decode is ErrCorruptManifest, as before signatures existed.
func (r *Repository) ReadManifest(ctx context.Context, backupID string) (*Manifest, error) {
	if strings.ContainsAny(backupID, "/\\") || backupID == "" {
		return nil, fmt.Errorf("%w: %q is not a backup id", ErrManifestNotFound, backupID)
	}
	sigc := r.readSignatureAsync(ctx, backupID)
	data, err := storage.ReadAll(ctx, r.be, ManifestObjectName(backupID))
	sr := <-sigc
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s in %s", ErrManifestNotFound, backupID, r.be.Location())
		}
		return nil, fmt.Errorf("read manifest %s: %w", backupID, err)
	}
	if sr.err != nil && !errors.Is(sr.err, ErrRejected) {
		return nil, sr.err
	}
	m, err := decodeManifest(backupID, data)
	if err != nil {
		return nil, err
	}
	if m.Auth, err = r.authenticateManifest(backupID, data, sr); err != nil {
		return nil, claim(err, &m.ManifestHeader)
	}
	// Checked after the signature, so that a genuine manifest copied under
	// another ID is named for what it is.
	if m.BackupID != backupID {
		return nil, fmt.Errorf("%w: object %s holds backup %q", ErrCorruptManifest, ManifestObjectName(backupID), m.BackupID)
	}
	return m, nil
}

// readManifestUnverified reads and validates a manifest without
// authenticating it: for prune's mark phase, where counting a chunk as
// referenced is always the safe mistake.
func (r *Repository) readManifestUnverified(ctx context.Context, backupID string) (*Manifest, error) {
	data, err := storage.ReadAll(ctx, r.be, ManifestObjectName(backupID))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s in %s", ErrManifestNotFound, backupID, r.be.Location())
		}
		return nil, fmt.Errorf("read manifest %s: %w", backupID, err)
	}
	// Whatever ID it claims, the chunks it names are what matter here.
	return decodeManifest(backupID, data)
}

// decodeManifest decodes and validates a manifest (its backup ID is the
// caller's to check).
func decodeManifest(backupID string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: backup %s: %v (truncated or not JSON)", ErrCorruptManifest, backupID, err)
	}
	// Catalogs (list, audit, selection) read only the members before the
	// chunk lists (decodeHeaderPrefix). A header member after them would
	// make the catalog and a restore see different backups: refused, as
	// no version of vtpm-backup writes one there.
	if h, err := decodeHeaderPrefix(ManifestObjectName(backupID), data, false); err != nil || !sameHeader(h, &m.ManifestHeader) {
		return nil, fmt.Errorf("%w: backup %s: header members after the file list", ErrCorruptManifest, backupID)
	}
	if m.Summary == (Summary{}) {
		m.Summary = m.summarize() // written before summaries existed
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// sameHeader reports whether two decoded headers say the same. They are
// compared as JSON: times decoded from one text hold distinct zone
// pointers.
func sameHeader(a, b *ManifestHeader) bool {
	ja, err := json.Marshal(a)
	if err != nil {
		return false
	}
	jb, err := json.Marshal(b)
	return err == nil && bytes.Equal(ja, jb)
}

// headerReadSize is how much of a manifest ReadManifestHeader fetches first:
// the header is a few kilobytes whatever the VM's size.
const headerReadSize = 64 << 10

// ReadManifestHeader reads the header of a manifest (everything but the
// chunk lists) from the first bytes of the object, so that catalogs of
// thousands of backups stay cheap in requests, bytes and memory. The
// header is validated and authenticated (its signature covers the header's
// bytes apart, see sign.go); the chunk lists are not read (ReadManifest
// does). Errors are as for ReadManifest; a header that decodes but fails
// validation is returned with the error, so callers still learn which VM
// it names.
func (r *Repository) ReadManifestHeader(ctx context.Context, backupID string) (*ManifestHeader, error) {
	if strings.ContainsAny(backupID, "/\\") || backupID == "" {
		return nil, fmt.Errorf("%w: %q is not a backup id", ErrManifestNotFound, backupID)
	}
	name := ManifestObjectName(backupID)
	sigc := r.readSignatureAsync(ctx, backupID)
	prefix, full, err := r.readPrefix(ctx, name, headerReadSize)
	sr := <-sigc
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s in %s", ErrManifestNotFound, backupID, r.be.Location())
		}
		return nil, err
	}
	if sr.err != nil && !errors.Is(sr.err, ErrRejected) {
		return nil, sr.err
	}
	h, err := decodeHeaderPrefix(name, prefix, !full)
	if errors.Is(err, io.ErrUnexpectedEOF) { // an unusually large header
		if prefix, full, err = r.readPrefix(ctx, name, -1); err == nil {
			h, err = decodeHeaderPrefix(name, prefix, false)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return h, err
	}
	if h, err = r.authenticateHeader(ctx, backupID, h, prefix, full, sr); err != nil {
		return nil, err
	}
	if h.BackupID != backupID {
		return h, fmt.Errorf("%w: object %s holds backup %q", ErrCorruptManifest, name, h.BackupID)
	}
	return h, h.Validate()
}

// ListBackupIDs returns every backup ID in the repository, oldest first.
func (r *Repository) ListBackupIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := r.be.List(ctx, manifestPrefix, func(fi storage.ObjectInfo) error {
		base := path.Base(fi.Name)
		if strings.HasSuffix(base, ".json") {
			ids = append(ids, strings.TrimSuffix(base, ".json"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", r.be.Location(), err)
	}
	sort.Strings(ids)
	return ids, nil
}

// ManifestResult is one manifest read by ReadManifests, or why it could not be.
type ManifestResult struct {
	BackupID string
	Manifest *Manifest
	Err      error
}

// ReadManifests reads the given manifests with a few parallel requests and
// returns them in the order of ids. A manifest that cannot be read is
// reported in its result, not as a failure of the whole call, so one corrupt
// manifest does not hide the others.
func (r *Repository) ReadManifests(ctx context.Context, ids []string) []ManifestResult {
	return r.readManifests(ctx, ids, r.ReadManifest)
}

func (r *Repository) readManifests(ctx context.Context, ids []string, read func(context.Context, string) (*Manifest, error)) []ManifestResult {
	out := make([]ManifestResult, len(ids))
	parallel(len(ids), manifestReaders, func(i int) {
		m, err := read(ctx, ids[i])
		out[i] = ManifestResult{BackupID: ids[i], Manifest: m, Err: err}
	})
	return out
}

// manifestReaders bounds concurrent manifest reads: small objects, where
// latency, not bandwidth, is the cost.
const manifestReaders = 32

// parallel calls f(i) for every i in [0, n), at most limit at a time, and
// returns when all calls have.
func parallel(n, limit int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}
