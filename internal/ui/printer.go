package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Message is one line of --json output: one of the XxxMessage structs of
// this package. MessageType names it; the printer writes it as the first
// field, message_type, so no message sets it by hand.
type Message interface {
	MessageType() string
}

// Printer is where a command reports what it did, and the only way it
// writes to stdout. Exactly one of the human output (P, Table) and JSON
// produces output, depending on --json, so a command calls both: P or
// Table for people, JSON for the message a script reads.
type Printer interface {
	// P prints a human line (a newline is added when missing) to stdout in
	// text mode; it prints nothing in JSON mode.
	P(format string, args ...any)
	// Table starts a table for people with the given column headers; its
	// Flush writes it to stdout in text mode and nothing in JSON mode.
	Table(headers ...string) *Table
	// JSON writes m as one line of JSON to stdout in JSON mode, with
	// message_type first; it prints nothing in text mode.
	JSON(m Message)
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

// Reasoner is implemented by refusals that name their cause for scripts:
// a stable snake_case code, in the reason field of the JSON error.
type Reasoner interface {
	Reason() string
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

// ErrorReason returns the reason carried by err (see Reasoner), or "".
func ErrorReason(err error) string {
	var r Reasoner
	if errors.As(err, &r) {
		return r.Reason()
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

func (p *textPrinter) Table(headers ...string) *Table {
	return NewTable(lockedWriter{mu: &p.mu, w: p.stdout}, headers...)
}

func (p *textPrinter) JSON(Message) {}

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

func (p *jsonPrinter) Table(headers ...string) *Table {
	return NewTable(io.Discard, headers...)
}

func (p *jsonPrinter) JSON(m Message) {
	p.encode(p.stdout, m)
}

func (p *jsonPrinter) Error(err error) {
	if err == nil {
		return
	}
	p.encode(p.stderr, ErrorMessage{
		Error:  err.Error(),
		Code:   ErrorCode(err),
		Hint:   ErrorHint(err),
		Reason: ErrorReason(err),
	})
}

func (p *jsonPrinter) encode(w io.Writer, m Message) {
	data, err := encodeMessage(m)
	if err != nil {
		// Only a programming error (an unsupported type) gets here; say so
		// in a line that is still valid JSON.
		data, _ = encodeMessage(ErrorMessage{Error: "encode JSON output: " + err.Error(), Code: 1})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = w.Write(append(data, '\n'))
}

// encodeMessage marshals m as a JSON object whose first field is
// message_type, then m's own fields in declaration order.
func encodeMessage(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("message %T is not a JSON object", m)
	}
	typ, err := json.Marshal(m.MessageType())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(`{"message_type":,`)+len(typ)+len(body))
	out = append(out, `{"message_type":`...)
	out = append(out, typ...)
	if len(body) > 2 { // not {}
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// lockedWriter serialises a table's output with the printer's other lines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
