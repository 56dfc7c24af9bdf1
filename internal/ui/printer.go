package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Printer is where a command reports what it did. Exactly one of P and JSON
// produces output, depending on --json, so a command calls both: P for the
// human line, JSON for the message a script reads.
type Printer interface {
	// P prints a human line (a newline is added when missing) to stdout in
	// text mode; it prints nothing in JSON mode.
	P(format string, args ...any)
	// JSON writes v as one line of JSON to stdout in JSON mode; it prints
	// nothing in text mode. v is one of the message structs of this package.
	JSON(v any)
	// Error reports a failed run on stderr: "error: ..." in text mode, an
	// ErrorMessage in JSON mode. The exit code and hint come from the error
	// (see WithExitCode and Hinter).
	Error(err error)
}

// NewPrinter returns the JSON printer when jsonMode is set, else the text
// printer. Both are safe for concurrent use.
func NewPrinter(stdout, stderr io.Writer, jsonMode bool) Printer {
	if jsonMode {
		return &jsonPrinter{stdout: stdout, stderr: stderr}
	}
	return &textPrinter{stdout: stdout, stderr: stderr}
}

// Hinter is implemented by errors that know what the user should do next.
// The hint is shown below the error in text mode and in the hint field of
// the JSON error.
type Hinter interface {
	Hint() string
}

// ExitCoder is implemented by errors that carry the process exit status.
type ExitCoder interface {
	ExitCode() int
}

// WithExitCode returns err annotated with the exit status code; errors.Is
// and errors.As still see err. It returns nil for a nil err.
func WithExitCode(err error, code int) error {
	if err == nil {
		return nil
	}
	return &exitError{err: err, code: code}
}

type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// ErrorCode returns the exit status carried by err (see WithExitCode), or 1
// when it carries none.
func ErrorCode(err error) int {
	var c ExitCoder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return 1
}

// ErrorHint returns the hint carried by err, or "".
func ErrorHint(err error) string {
	var h Hinter
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

type textPrinter struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func (p *textPrinter) P(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.stdout, s)
}

func (p *textPrinter) JSON(any) {}

func (p *textPrinter) Error(err error) {
	if err == nil {
		return
	}
	s := "error: " + err.Error() + "\n"
	if h := ErrorHint(err); h != "" {
		s += "hint: " + h + "\n"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.stderr, s)
}

type jsonPrinter struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func (p *jsonPrinter) P(string, ...any) {}

func (p *jsonPrinter) JSON(v any) {
	p.encode(p.stdout, v)
}

func (p *jsonPrinter) Error(err error) {
	if err == nil {
		return
	}
	p.encode(p.stderr, ErrorMessage{
		MessageType: TypeError,
		Error:       err.Error(),
		Code:        ErrorCode(err),
		Hint:        ErrorHint(err),
	})
}

func (p *jsonPrinter) encode(w io.Writer, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unsupported type) gets here; say so
		// in a line that is still valid JSON.
		data, _ = json.Marshal(ErrorMessage{MessageType: TypeError, Error: "encode JSON output: " + err.Error(), Code: 1})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = w.Write(append(data, '\n'))
}
