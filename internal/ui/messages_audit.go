package ui

// Message types of "list", "audit" and "keys" with --json.
const (
	TypeBackupEntry  = "backup_entry"
	TypeListSummary  = "list_summary"
	TypeAuditVM      = "audit_vm"
	TypeAuditSummary = "audit_summary"
	TypeKeyProvider  = "key_provider"
	TypeKeyStatus    = "key_status"
)

// BackupEntryMessage is one backup of "vtpm-backup list --json". Sizes are
// bytes; Time is RFC 3339 UTC.
type BackupEntryMessage struct {
	BackupID string `json:"backup_id"`
	VM       string `json:"vm"`
	Time     string `json:"time"`
	Size     int64  `json:"size"`
	// StoredSize counts every stored object the backup references,
	// including those shared with other backups.
	StoredSize   int64    `json:"stored_size"`
	VTPM         bool     `json:"vtpm"`
	Encrypted    bool     `json:"encrypted"`
	KeyProviders []string `json:"key_providers,omitempty"`
	// CBT tells whether Changed Block Tracking was on for the VM at
	// backup time; absent when the backup did not record it.
	CBT *bool `json:"cbt,omitempty"`
	// Error is set when the manifest cannot be read; the other fields
	// but backup_id, time and (when known) vm are then empty.
	Error string `json:"error,omitempty"`
	// Rejected is set when the backup failed authentication: "unsigned",
	// "forged" or "foreign" (signed by a writer key that is not trusted);
	// Error says why, and vm is only what the manifest claims. A rejected
	// backup is never restored, selected or counted.
	Rejected string `json:"rejected,omitempty"`
	// Unsigned is true for a backup without signature that was accepted
	// because --allow-unsigned was given.
	Unsigned bool `json:"unsigned,omitempty"`
}

// MessageType implements Message.
func (BackupEntryMessage) MessageType() string { return TypeBackupEntry }

// ListSummaryMessage closes "vtpm-backup list --json", also when there is
// nothing to list, so a script can tell an empty repository from a list
// that was cut short.
type ListSummaryMessage struct {
	Repository string `json:"repository"`
	// Backups is the number of backup_entry messages before this one.
	Backups int `json:"backups"`
	// VMs is the number of distinct VM names among them.
	VMs int `json:"vms"`
}

// MessageType implements Message.
func (ListSummaryMessage) MessageType() string { return TypeListSummary }

// AuditVMMessage is the verdict on one VM of "vtpm-backup audit --json".
type AuditVMMessage struct {
	VM         string `json:"vm"`
	BackupID   string `json:"backup_id,omitempty"`
	BackupTime string `json:"backup_time,omitempty"`
	// AgeSeconds is the latest backup's age; absent for a VM without
	// backup (--inventory), which has no age.
	AgeSeconds *int64 `json:"age_seconds,omitempty"`
	Size       int64  `json:"size"`
	StoredSize int64  `json:"stored_size"`
	VTPM       bool   `json:"vtpm"`
	// CBT tells whether Changed Block Tracking was on for the VM at its
	// latest backup (nightly backups then read only changes); absent
	// when unknown.
	CBT        *bool `json:"cbt,omitempty"`
	ManifestOK bool  `json:"manifest_ok"`
	// Restorable is true when the manifest passes the checks restore's
	// pre-flight makes (one .vmx, files in the home folder, the .nvram of
	// a vTPM VM, a recorded VM key); the reasons say what failed.
	Restorable  bool `json:"restorable"`
	Objects     int  `json:"objects"`
	ObjectsRead int  `json:"objects_read"`
	ObjectsBad  int  `json:"objects_bad"`
	ObjectsOK   bool `json:"objects_ok"`
	NvramOK     bool `json:"nvram_ok"`
	KeysChecked bool `json:"keys_checked"`
	KeysOK      bool `json:"keys_ok"`
	AgeOK       bool `json:"age_ok"`
	// Retention is present when the repository uses Object Lock.
	Retention *AuditRetention `json:"retention,omitempty"`
	Ready     bool            `json:"ready"`
	// Verdict is "READY" or "NOT READY", as in the table.
	Verdict  string   `json:"verdict"`
	Reasons  []string `json:"reasons,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// MessageType implements Message.
func (AuditVMMessage) MessageType() string { return TypeAuditVM }

// AuditRetention is the Object Lock state of a backup's manifest and a
// sample of its chunk objects.
type AuditRetention struct {
	Checked  int    `json:"checked"`
	Retained int    `json:"retained"`
	Until    string `json:"until,omitempty"`
}

// AuditSummaryMessage closes "vtpm-backup audit --json".
type AuditSummaryMessage struct {
	Ready         bool     `json:"ready"`
	VMs           int      `json:"vms"`
	ReadyVMs      int      `json:"ready_vms"`
	NotReadyVMs   int      `json:"not_ready_vms"`
	Problems      []string `json:"problems,omitempty"`
	VCenter       string   `json:"vcenter,omitempty"`
	Mode          string   `json:"mode"`
	Subset        float64  `json:"subset,omitempty"`
	MaxAgeSeconds int64    `json:"max_age_seconds"`
	Time          string   `json:"time"`
	MetricsFile   string   `json:"metrics_file,omitempty"`
}

// MessageType implements Message.
func (AuditSummaryMessage) MessageType() string { return TypeAuditSummary }

// KeyProviderMessage is one provider of "vtpm-backup keys providers --json".
type KeyProviderMessage struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Default bool   `json:"default"`
	// NKPBackedUp is set for Native Key Providers whose backup state the
	// vCenter reported.
	NKPBackedUp *bool    `json:"nkp_backed_up,omitempty"`
	Health      string   `json:"health,omitempty"`
	Servers     []string `json:"servers,omitempty"`
}

// MessageType implements Message.
func (KeyProviderMessage) MessageType() string { return TypeKeyProvider }

// KeyStatusMessage is one key of "vtpm-backup keys status --json".
type KeyStatusMessage struct {
	BackupID           string   `json:"backup_id"`
	VM                 string   `json:"vm"`
	VCenter            string   `json:"vcenter"`
	KeyID              string   `json:"key_id"`
	Use                string   `json:"use"`
	ProviderID         string   `json:"provider_id"`
	ProviderType       string   `json:"provider_type"`
	ProviderRegistered bool     `json:"provider_registered"`
	Available          bool     `json:"available"`
	Reasons            []string `json:"reasons,omitempty"`
	Remedy             string   `json:"remedy,omitempty"`
	// Unsigned is true when the backup has no signature and was accepted
	// only because --allow-unsigned was given.
	Unsigned bool `json:"unsigned,omitempty"`
}

// MessageType implements Message.
func (KeyStatusMessage) MessageType() string { return TypeKeyStatus }
