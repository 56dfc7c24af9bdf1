package storage

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// WithLogging returns be with every call logged at debug level on log:
// the operation, the object name or prefix, sizes, the duration and the
// error, for reading what a failed run did. Object names and sizes are all
// it logs: never data, credentials or request signatures. The optional
// interfaces of be (Retainer, Cleaner) are kept. A log that does not show
// debug records gets be back unwrapped.
func WithLogging(be Backend, log *slog.Logger) Backend {
	if log == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		return be
	}
	l := &logged{be: be, log: log.With("backend", be.Location()), clk: clock.Real()}
	_, retains := be.(Retainer)
	_, cleans := be.(Cleaner)
	switch {
	case retains && cleans:
		return &struct {
			*logged
			loggedRetainer
			loggedCleaner
		}{l, loggedRetainer{l}, loggedCleaner{l}}
	case retains:
		return &struct {
			*logged
			loggedRetainer
		}{l, loggedRetainer{l}}
	case cleans:
		return &struct {
			*logged
			loggedCleaner
		}{l, loggedCleaner{l}}
	}
	return l
}

type logged struct {
	be  Backend
	log *slog.Logger
	clk clock.Clock
}

// done logs one finished call.
func (l *logged) done(ctx context.Context, op, name string, start time.Time, err error, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("op", op), slog.String("object", name), slog.Duration("duration", l.clk.Now().Sub(start))}, attrs...)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.log.LogAttrs(ctx, slog.LevelDebug, "storage call", attrs...)
}

func (l *logged) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	start := l.clk.Now()
	err := l.be.Put(ctx, name, r, size)
	l.done(ctx, "put", name, start, err, slog.Int64("size", size))
	return err
}

func (l *logged) PutIfAbsent(ctx context.Context, name string, r io.Reader, size int64) error {
	start := l.clk.Now()
	err := l.be.PutIfAbsent(ctx, name, r, size)
	l.done(ctx, "put-if-absent", name, start, err, slog.Int64("size", size))
	return err
}

// Get logs when the object is closed, with the bytes read, so one line
// covers the whole transfer; a Get that fails is logged at once.
func (l *logged) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	start := l.clk.Now()
	rc, err := l.be.Get(ctx, name, offset, length)
	if err != nil {
		l.done(ctx, "get", name, start, err, slog.Int64("offset", offset), slog.Int64("length", length))
		return nil, err
	}
	return &loggedReader{ReadCloser: rc, l: l, ctx: ctx, name: name, start: start, offset: offset, length: length}, nil
}

func (l *logged) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	start := l.clk.Now()
	fi, err := l.be.Stat(ctx, name)
	l.done(ctx, "stat", name, start, err, slog.Int64("size", fi.Size))
	return fi, err
}

func (l *logged) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := l.clk.Now()
	n := 0
	err := l.be.List(ctx, prefix, func(fi ObjectInfo) error {
		n++
		return fn(fi)
	})
	l.done(ctx, "list", prefix, start, err, slog.Int("objects", n))
	return err
}

func (l *logged) Delete(ctx context.Context, name string) error {
	start := l.clk.Now()
	err := l.be.Delete(ctx, name)
	l.done(ctx, "delete", name, start, err)
	return err
}

func (l *logged) Location() string { return l.be.Location() }

func (l *logged) Close() error { return l.be.Close() }

// loggedReader logs a Get when it is closed.
type loggedReader struct {
	io.ReadCloser
	l              *logged
	ctx            context.Context
	name           string
	start          time.Time
	offset, length int64
	n              int64
	err            error
}

func (r *loggedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *loggedReader) Close() error {
	err := r.ReadCloser.Close()
	r.l.done(r.ctx, "get", r.name, r.start, r.err, slog.Int64("offset", r.offset), slog.Int64("length", r.length), slog.Int64("bytes", r.n))
	return err
}

type loggedRetainer struct{ l *logged }

func (r loggedRetainer) SetRetention(ctx context.Context, name string, until time.Time) error {
	start := r.l.clk.Now()
	err := r.l.be.(Retainer).SetRetention(ctx, name, until)
	r.l.done(ctx, "set-retention", name, start, err, slog.Time("until", until))
	return err
}

func (r loggedRetainer) Retention(ctx context.Context, name string) (time.Time, error) {
	start := r.l.clk.Now()
	until, err := r.l.be.(Retainer).Retention(ctx, name)
	r.l.done(ctx, "retention", name, start, err, slog.Time("until", until))
	return until, err
}

type loggedCleaner struct{ l *logged }

func (c loggedCleaner) CleanStale(ctx context.Context, olderThan time.Time) (int, error) {
	start := c.l.clk.Now()
	n, err := c.l.be.(Cleaner).CleanStale(ctx, olderThan)
	c.l.done(ctx, "clean-stale", "", start, err, slog.Time("older_than", olderThan), slog.Int("removed", n))
	return n, err
}
