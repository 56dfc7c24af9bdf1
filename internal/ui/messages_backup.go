package ui

// Message types of "vtpm-backup backup --json".
const (
	TypeVMDone     = "vm_done"
	TypeBackupPlan = "backup_plan"
)

// VMDoneMessage reports one VM of a backup run, successful or not.
type VMDoneMessage struct {
	VM            string `json:"vm"`
	MoRef         string `json:"moref,omitempty"`
	Success       bool   `json:"success"`
	BackupID      string `json:"backup_id,omitempty"`
	Error         string `json:"error,omitempty"`
	BytesRead     int64  `json:"bytes_read"`
	BytesUploaded int64  `json:"bytes_uploaded"`
	ChunksNew     int64  `json:"chunks_new"`
	ChunksKnown   int64  `json:"chunks_known"`
	ChunksZero    int64  `json:"chunks_zero"`
	// ChunksReused are chunks taken unread from the previous backup
	// because Changed Block Tracking reported them unchanged.
	ChunksReused int64 `json:"chunks_reused"`
	// DiskBytesRead is the disk data read from the datastore (bytes_read
	// less the home files); DiskBytesSkipped the disk data not read
	// because CBT reported it unchanged or unallocated.
	DiskBytesRead    int64 `json:"disk_bytes_read"`
	DiskBytesSkipped int64 `json:"disk_bytes_skipped"`
	// Disks says how each disk was read, and why not less.
	Disks []DiskRead `json:"disks,omitempty"`
	// CBTEnabled: this run turned Changed Block Tracking on for the VM
	// (--enable-cbt); it takes effect at the backup's snapshot.
	CBTEnabled bool `json:"cbt_enabled,omitempty"`
	// CBTMissedChunks counts chunks CBT reported unchanged that had
	// changed (--verify-cbt); they were read anyway.
	CBTMissedChunks int      `json:"cbt_missed_chunks,omitempty"`
	Seconds         float64  `json:"duration_seconds"`
	Warnings        []string `json:"warnings,omitempty"`
}

// DiskRead is how a backup read one disk.
type DiskRead struct {
	Label string `json:"label"`
	Key   int32  `json:"key"`
	// Read is "full" (every byte), "changed" (only what Changed Block
	// Tracking reported changed since the previous backup) or "allocated"
	// (only what CBT reported allocated).
	Read string `json:"read"`
	// Reason says why CBT did not spare reading more (a full read's
	// fallback reason, or why the allocated areas were read instead of
	// the changes); empty when it read only the changes.
	Reason string `json:"reason,omitempty"`
	// ChangeID is the disk's CBT change ID in this backup's snapshot,
	// where the next backup's changes start; empty without CBT.
	ChangeID string `json:"change_id,omitempty"`
}

// MessageType implements Message.
func (VMDoneMessage) MessageType() string { return TypeVMDone }

// BackupPlanMessage is one VM of "backup --dry-run": what would be copied
// and which keys the VM depends on.
type BackupPlanMessage struct {
	VM         string        `json:"vm"`
	Error      string        `json:"error,omitempty"`
	Files      []PlannedFile `json:"files"`
	Keys       []PlannedKey  `json:"keys"`
	TotalBytes int64         `json:"total_bytes"`
}

// MessageType implements Message.
func (BackupPlanMessage) MessageType() string { return TypeBackupPlan }

// PlannedFile is a file a backup would copy.
type PlannedFile struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// PlannedKey is a key a VM depends on.
type PlannedKey struct {
	KeyID        string `json:"key_id"`
	ProviderID   string `json:"provider_id"`
	ProviderType string `json:"provider_type"`
	Use          string `json:"use"`
}
