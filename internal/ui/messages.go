package ui

// Message types, the value of the message_type field of every JSON line.
// They are part of the scripting interface: never rename one.
const (
	TypeStatus  = "status"
	TypeError   = "error"
	TypeSummary = "summary"
	TypeVersion = "version"
	TypeInit    = "init"
)

// StatusMessage is a progress or informational line meant for logs, the JSON
// counterpart of a human status line.
type StatusMessage struct {
	// VM names the VM the step is about, when there is one: with backup
	// --parallel, steps of several VMs interleave.
	VM      string `json:"vm,omitempty"`
	Message string `json:"message"`
}

// MessageType implements Message.
func (StatusMessage) MessageType() string { return TypeStatus }

// ErrorMessage reports why a command failed. It is written to stderr as the
// last line of a failed run; Code is the process exit status.
type ErrorMessage struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
	Hint  string `json:"hint,omitempty"`
	// Reason names the cause of some refusals for scripts, a stable code:
	// key_host_not_in_cluster and key_host_without_tpm (restore: the
	// target host cannot get a Native Key Provider key).
	Reason string `json:"reason,omitempty"`
}

// MessageType implements Message.
func (ErrorMessage) MessageType() string { return TypeError }

// SummaryMessage closes a run of a command that processes several items
// (backup of many VMs, audit, prune).
type SummaryMessage struct {
	Command         string  `json:"command"`
	Succeeded       int     `json:"succeeded"`
	Failed          int     `json:"failed"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// MessageType implements Message.
func (SummaryMessage) MessageType() string { return TypeSummary }

// VersionMessage is the output of "vtpm-backup version --json".
type VersionMessage struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// MessageType implements Message.
func (VersionMessage) MessageType() string { return TypeVersion }

// InitMessage is the output of "vtpm-backup init --json": the repository
// that was created. It holds public keys only.
type InitMessage struct {
	Repository     string   `json:"repository"`
	ID             string   `json:"id"`
	Version        int      `json:"version"`
	ChunkSize      int64    `json:"chunk_size"`
	Compression    string   `json:"compression"`
	Recipients     []string `json:"recipients"`
	ObjectLockDays int      `json:"object_lock_days,omitempty"`
	// IdentityFile is the path of the identity written by
	// --generate-identity, if any. The identity itself is never printed.
	IdentityFile string `json:"identity_file,omitempty"`
	// WriterKey is the public key backups of the repository are signed
	// with (ed25519:<base64url>): restores pin it.
	WriterKey string `json:"writer_key,omitempty"`
	// WriterKeyFile is the path of the private writer key, which backup
	// hosts need (--writer-key).
	WriterKeyFile string `json:"writer_key_file,omitempty"`
}

// MessageType implements Message.
func (InitMessage) MessageType() string { return TypeInit }
