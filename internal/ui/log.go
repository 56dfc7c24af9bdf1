package ui

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogLevels lists the values accepted by --log-level, for help texts.
const LogLevels = "debug, info, warn, error"

// ParseLogLevel turns a --log-level value into a slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q: use one of %s", s, LogLevels)
}

// NewLogger returns a logger writing to w (stderr) at the given level: JSON
// lines in JSON mode, logfmt-like text otherwise.
func NewLogger(w io.Writer, level slog.Level, jsonMode bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if jsonMode {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
