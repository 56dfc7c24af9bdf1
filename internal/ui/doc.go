// Package ui is how vtpm-backup talks to people and to scripts: human lines
// and tables on stdout, errors on stderr, progress bars on an interactive
// terminal, and, with --json, one JSON object per line for cron jobs and
// monitoring.
//
// Commands never write to os.Stdout directly. They get a Printer (text or
// JSON, chosen once from --json) and a Progress (mpb bars on a terminal, a
// no-op otherwise) and describe what happened; this package decides how it
// looks. Every JSON line carries a message_type and snake_case fields, and
// each message type is one Go struct in messages.go, so field names are a
// stable interface that tests pin with golden files.
//
// The package knows nothing about cobra, repositories or vSphere.
package ui
