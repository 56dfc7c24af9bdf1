package ui

// Message types of "vtpm-backup backup --json".
const (
	TypeVMDone     = "vm_done"
	TypeBackupPlan = "backup_plan"
)

// VMDoneMessage reports one VM of a backup run, successful or not.
type VMDoneMessage struct {
	VM            string   `json:"vm"`
	MoRef         string   `json:"moref,omitempty"`
	Success       bool     `json:"success"`
	BackupID      string   `json:"backup_id,omitempty"`
	Error         string   `json:"error,omitempty"`
	BytesRead     int64    `json:"bytes_read"`
	BytesUploaded int64    `json:"bytes_uploaded"`
	ChunksNew     int64    `json:"chunks_new"`
	ChunksKnown   int64    `json:"chunks_known"`
	ChunksZero    int64    `json:"chunks_zero"`
	Seconds       float64  `json:"duration_seconds"`
	Warnings      []string `json:"warnings,omitempty"`
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
