// Package ui is how vtpm-backup talks to people and to scripts: human lines
// and tables on stdout, errors on stderr, progress bars on an interactive
// terminal, and, with --json, one JSON object per line for cron jobs and
// monitoring.
//
// Commands never write to os.Stdout directly. They get a Printer (text or
// JSON, chosen once from --json) and a Progress (mpb bars on a terminal, a
// no-op otherwise) and describe what happened: P and Table for people, JSON
// for scripts; the printer of the other mode drops what is not for it.
// Every JSON line carries a message_type and snake_case fields. Each
// message type is one Go struct in the messages*.go files whose
// MessageType method names it, and the printer writes message_type first
// from that method, so field names are a stable interface that tests pin
// with golden files and docs/json-messages.md documents. Commands build
// the messages from their domain results in one place
// (cmd/vtpm-backup/messages.go).
//
// The package knows nothing about cobra, repositories or vSphere.
package ui
