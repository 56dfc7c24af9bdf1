package ui

// Message types of "vtpm-backup restore --json".
const (
	TypeRestorePlan = "restore_plan"
	TypeRestoreDone = "restore_done"
)

// RestorePlanMessage is what a restore will do once every pre-flight check
// passed; with --dry-run it is the whole output. For --to-dir, Dir is set
// and the vCenter fields are empty.
type RestorePlanMessage struct {
	DryRun     bool          `json:"dry_run"`
	BackupID   string        `json:"backup_id"`
	SourceVM   string        `json:"source_vm"`
	Name       string        `json:"name,omitempty"`
	Datastore  string        `json:"datastore,omitempty"`
	HomeFolder string        `json:"home_folder,omitempty"`
	VMXPath    string        `json:"vmx_path,omitempty"`
	Folder     string        `json:"folder,omitempty"`
	Pool       string        `json:"pool,omitempty"`
	Host       string        `json:"host,omitempty"`
	Dir        string        `json:"dir,omitempty"`
	PowerOn    bool          `json:"power_on"`
	UUID       string        `json:"uuid,omitempty"`
	Files      []RestoreFile `json:"files"`
	Keys       []RestoreKey  `json:"keys"`
	TotalBytes int64         `json:"total_bytes"`
	FreeBytes  int64         `json:"free_bytes,omitempty"`
	Warnings   []string      `json:"warnings,omitempty"`
	// Unsigned is true when the backup has no signature and was accepted
	// only because --allow-unsigned was given.
	Unsigned bool `json:"unsigned,omitempty"`
}

// MessageType implements Message.
func (RestorePlanMessage) MessageType() string { return TypeRestorePlan }

// RestoreFile is one file a restore writes, under its original name.
type RestoreFile struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Target string `json:"target"`
}

// RestoreKey is a key the restored VM needs and its status on the target
// vCenter (every one is available, or the restore is refused before this).
type RestoreKey struct {
	KeyID        string   `json:"key_id"`
	ProviderID   string   `json:"provider_id"`
	ProviderType string   `json:"provider_type"`
	Use          string   `json:"use"`
	Available    bool     `json:"available"`
	Reasons      []string `json:"reasons,omitempty"`
}

// RestoreDoneMessage reports a finished restore: the new VM (its moref) or
// the local folder, and the throughput. Error is set when the VM was
// restored but did not power on.
type RestoreDoneMessage struct {
	BackupID        string  `json:"backup_id"`
	SourceVM        string  `json:"source_vm"`
	Name            string  `json:"name,omitempty"`
	MoRef           string  `json:"moref,omitempty"`
	VMXPath         string  `json:"vmx_path,omitempty"`
	Dir             string  `json:"dir,omitempty"`
	Files           int     `json:"files"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
	MBPerSecond     float64 `json:"mb_per_second"`
	PoweredOn       bool    `json:"powered_on"`
	Error           string  `json:"error,omitempty"`
	// Unsigned is true when the backup has no signature and was accepted
	// only because --allow-unsigned was given.
	Unsigned bool `json:"unsigned,omitempty"`
}

// MessageType implements Message.
func (RestoreDoneMessage) MessageType() string { return TypeRestoreDone }
