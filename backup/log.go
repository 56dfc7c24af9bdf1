package backup

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// logEvents logs a backup at info level for whoever reads a failed cron
// run: each step of each VM (the Status steps: sweeping snapshots, copying
// each file, the snapshot, the manifest) with its duration once the next
// step begins or the VM is done, and each VM's result. It passes every
// event on to next.
type logEvents struct {
	next Events
	log  *slog.Logger
	clk  clock.Clock

	mu  sync.Mutex
	cur map[string]step // the running step of each VM
}

// step is a Status step that has begun.
type step struct {
	name  string
	start time.Time
}

func newLogEvents(next Events, log *slog.Logger, clk clock.Clock) *logEvents {
	return &logEvents{next: next, log: log, clk: clk, cur: map[string]step{}}
}

func (e *logEvents) VMStarted(vm string, total int64) { e.next.VMStarted(vm, total) }

func (e *logEvents) Progress(vm string, n int64) { e.next.Progress(vm, n) }

func (e *logEvents) Status(vm, name string) {
	now := e.clk.Now()
	e.mu.Lock()
	prev, ok := e.cur[vm]
	e.cur[vm] = step{name: name, start: now}
	e.mu.Unlock()
	if ok {
		e.logStep(vm, prev, now, nil)
	}
	e.next.Status(vm, name)
}

func (e *logEvents) VMDone(r *Result) {
	now := e.clk.Now()
	e.mu.Lock()
	prev, ok := e.cur[r.VM]
	delete(e.cur, r.VM)
	e.mu.Unlock()
	if ok {
		e.logStep(r.VM, prev, now, r.Err)
	}
	attrs := []slog.Attr{slog.String("vm", r.VM), slog.String("moref", r.MoRef), slog.Duration("duration", r.Finished.Sub(r.Started))}
	switch {
	case r.Err != nil:
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "VM backup failed", append(attrs, slog.String("error", r.Err.Error()))...)
	case r.BackupID == "":
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "VM planned (dry run)", append(attrs, slog.Int("files", len(r.Files)))...)
	default:
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "VM backed up", append(attrs,
			slog.String("backup_id", r.BackupID), slog.Int64("bytes_read", r.BytesRead), slog.Int64("bytes_uploaded", r.BytesUploaded),
			slog.Int64("chunks_new", r.ChunksNew), slog.Int64("chunks_known", r.ChunksKnown))...)
	}
	e.next.VMDone(r)
}

// logStep logs a finished step; err is the VM's error when the step was
// its last.
func (e *logEvents) logStep(vm string, s step, end time.Time, err error) {
	attrs := []slog.Attr{slog.String("vm", vm), slog.String("step", s.name), slog.Duration("duration", end.Sub(s.start))}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.log.LogAttrs(context.Background(), slog.LevelInfo, "backup step", attrs...)
}
