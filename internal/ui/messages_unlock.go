package ui

import "time"

// Message types of "vtpm-backup unlock --json".
const (
	TypeLock          = "lock"
	TypeUnlockSummary = "unlock_summary"
)

// LockMessage is one repository lock that "unlock" found: removed, or
// kept because it is alive.
type LockMessage struct {
	ID        string    `json:"id"`
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	Exclusive bool      `json:"exclusive"`
	Purpose   string    `json:"purpose,omitempty"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// Stale is true when the lock expired (its holder stopped refreshing
	// it) or its holder ran on this host and is gone.
	Stale bool `json:"stale"`
	// StaleReason says why a lock of this host is stale before its expiry
	// (its process is gone, its pid reused, the host restarted); empty
	// otherwise.
	StaleReason string `json:"stale_reason,omitempty"`
	// Removed is true when this run removed the lock.
	Removed bool `json:"removed"`
}

// MessageType implements Message.
func (LockMessage) MessageType() string { return TypeLock }

// UnlockSummaryMessage closes "vtpm-backup unlock --json", also when the
// repository has no locks.
type UnlockSummaryMessage struct {
	Repository string `json:"repository"`
	// Locks is the number of lock messages before this one.
	Locks int `json:"locks"`
	// Removed and Kept split Locks by what this run did.
	Removed int `json:"removed"`
	Kept    int `json:"kept"`
	// Hint says how to remove the live locks that were kept, if any.
	Hint string `json:"hint,omitempty"`
}

// MessageType implements Message.
func (UnlockSummaryMessage) MessageType() string { return TypeUnlockSummary }
