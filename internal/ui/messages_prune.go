package ui

import "time"

// Message types of "vtpm-backup prune --json".
const (
	TypePrunePlan = "prune_plan"
	TypePruneDone = "prune_done"
)

// PrunePlanMessage is the "prune_plan" line: the policy's verdict on every
// backup, printed before anything is deleted.
type PrunePlanMessage struct {
	DryRun  bool             `json:"dry_run"`
	Policy  string           `json:"policy"`
	Keep    int              `json:"keep"`
	Remove  int              `json:"remove"`
	Backups []PrunePlanEntry `json:"backups"`
}

// MessageType implements Message.
func (PrunePlanMessage) MessageType() string { return TypePrunePlan }

// PrunePlanEntry is one backup in a prune plan.
type PrunePlanEntry struct {
	BackupID string    `json:"backup_id"`
	VM       string    `json:"vm"`
	VMKey    string    `json:"vm_key"`
	Time     time.Time `json:"time"`
	Action   string    `json:"action"` // "keep" or "remove"
	Reasons  []string  `json:"reasons,omitempty"`
	// Unsigned is true for a backup without signature, counted only
	// because --allow-unsigned was given.
	Unsigned bool `json:"unsigned,omitempty"`
}

// PruneDoneMessage is the "prune_done" line: what prune deleted (or with
// --dry-run would delete) and what it skipped.
type PruneDoneMessage struct {
	DryRun            bool             `json:"dry_run"`
	Kept              int              `json:"kept"`
	Removed           int              `json:"removed"`
	ManifestsDeleted  int              `json:"manifests_deleted"`
	RetainedManifests []RetainedObject `json:"retained_manifests,omitempty"`
	ChunksTotal       int              `json:"chunks_total"`
	ChunksReferenced  int              `json:"chunks_referenced"`
	ChunksDeleted     int              `json:"chunks_deleted"`
	ChunksYoung       int              `json:"chunks_young"`
	ChunksRetained    int              `json:"chunks_retained"`
	ChunksMissing     int              `json:"chunks_missing"`
	BytesFreed        int64            `json:"bytes_freed"`
	BytesRetained     int64            `json:"bytes_retained"`
	RetainedUntil     *time.Time       `json:"retained_until,omitempty"`
	Cutoff            time.Time        `json:"cutoff"`
	// DebrisRemoved counts leftovers of interrupted writes (temporary
	// files, incomplete multipart uploads) that were removed.
	DebrisRemoved     int      `json:"debris_removed,omitempty"`
	StaleLocksRemoved []string `json:"stale_locks_removed,omitempty"`
	Warnings          []string `json:"warnings,omitempty"`
	DurationSeconds   float64  `json:"duration_seconds"`
}

// MessageType implements Message.
func (PruneDoneMessage) MessageType() string { return TypePruneDone }

// RetainedObject is an object prune skipped because S3 Object Lock still
// retains it.
type RetainedObject struct {
	Name string `json:"name"`
	// Until is the end of the retention; zero when the storage did not say.
	Until time.Time `json:"until,omitzero"`
}
