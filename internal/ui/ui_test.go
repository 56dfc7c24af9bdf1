package ui

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vbauerster/mpb/v8"
)

// golden compares got with testdata/NAME; UPDATE_GOLDEN=1 rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with UPDATE_GOLDEN=1 to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

type hintErr struct{ msg, hint string }

func (e hintErr) Error() string { return e.msg }
func (e hintErr) Hint() string  { return e.hint }

// script drives a printer through one of each kind of output.
func script(p Printer) {
	p.P("created repository %s at %s", "1f2e3d", "/srv/repo")
	p.P("line with its own newline\n")
	p.JSON(StatusMessage{Message: "hello"})
	p.JSON(InitMessage{
		Repository: "/srv/repo", ID: "1f2e3d", Version: 1,
		ChunkSize: 4 << 20, Compression: "zstd", Recipients: []string{"age1xyz"},
	})
	p.JSON(VersionMessage{Version: "v0.1.0", Commit: "abc", GoVersion: "go1.26.0", OS: "linux", Arch: "amd64"})
	p.JSON(SummaryMessage{Command: "backup", Succeeded: 3, Failed: 1, DurationSeconds: 12.5})
	p.Error(WithExitCode(fmt.Errorf("init /srv/repo: %w", hintErr{"repository already initialized", "pass another --repo"}), 2))
	p.Error(errors.New("plain failure"))
	p.Error(nil)
}

func TestPrinterGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		json bool
	}{
		{"text", false},
		{"json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			script(NewPrinter(&stdout, &stderr, tc.json))
			golden(t, tc.name+".stdout", stdout.String())
			golden(t, tc.name+".stderr", stderr.String())
		})
	}
}

func TestErrorCodeAndHint(t *testing.T) {
	base := hintErr{"boom", "do this"}
	for _, tc := range []struct {
		name     string
		err      error
		code     int
		hint     string
		isTarget bool
	}{
		{"plain", errors.New("x"), 1, "", false},
		{"coded", WithExitCode(errors.New("x"), 3), 3, "", false},
		{"wrapped coded hint", fmt.Errorf("ctx: %w", WithExitCode(base, 2)), 2, "do this", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.code {
				t.Errorf("ErrorCode = %d, want %d", got, tc.code)
			}
			if got := ErrorHint(tc.err); got != tc.hint {
				t.Errorf("ErrorHint = %q, want %q", got, tc.hint)
			}
			if got := errors.Is(tc.err, base); got != tc.isTarget {
				t.Errorf("errors.Is(base) = %v, want %v", got, tc.isTarget)
			}
		})
	}
	if WithExitCode(nil, 2) != nil {
		t.Error("WithExitCode(nil) != nil")
	}
}

// TestTableGolden prints the same table through NewTable and through the
// printers: the text printer writes it to stdout, the JSON printer
// nowhere.
func TestTableGolden(t *testing.T) {
	fill := func(tb *Table) {
		t.Helper()
		tb.Row("web-01", "20260101T000000Z-ab12", 1234)
		tb.Row("db\twith tab", "x", "multi\nline")
		if err := tb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	fill(NewTable(&buf, "vm", "backup id", "size"))
	golden(t, "table.txt", buf.String())

	for _, jsonMode := range []bool{false, true} {
		var stdout, stderr bytes.Buffer
		fill(NewPrinter(&stdout, &stderr, jsonMode).Table("vm", "backup id", "size"))
		want := buf.String()
		if jsonMode {
			want = ""
		}
		if stdout.String() != want || stderr.Len() != 0 {
			t.Errorf("json=%v: printer table wrote stdout %q, stderr %q; want stdout %q", jsonMode, stdout.String(), stderr.String(), want)
		}
	}
}

// TestEncodeMessage: message_type comes first, also for a message without
// fields of its own, and only JSON objects are messages.
func TestEncodeMessage(t *testing.T) {
	for _, tc := range []struct {
		m       Message
		want    string
		wantErr bool
	}{
		{StatusMessage{Message: "x"}, `{"message_type":"status","message":"x"}`, false},
		{emptyMessage{}, `{"message_type":"empty"}`, false},
		{&StatusMessage{}, `{"message_type":"status","message":""}`, false},
		{notAnObject("x"), "", true},
	} {
		got, err := encodeMessage(tc.m)
		if (err != nil) != tc.wantErr || string(got) != tc.want {
			t.Errorf("encodeMessage(%#v) = %s, %v; want %s, error %v", tc.m, got, err, tc.want, tc.wantErr)
		}
	}
	var stdout, stderr bytes.Buffer
	NewPrinter(&stdout, &stderr, true).JSON(notAnObject("x"))
	if want := `{"message_type":"error","error":"encode JSON output: message ui.notAnObject is not a JSON object","code":1}` + "\n"; stdout.String() != want {
		t.Errorf("printer wrote %q for a bad message, want %q", stdout.String(), want)
	}
}

type emptyMessage struct{}

func (emptyMessage) MessageType() string { return "empty" }

type notAnObject string

func (notAnObject) MessageType() string { return "bad" }

func TestParseLogLevel(t *testing.T) {
	for _, s := range []string{"debug", "INFO", "warn", "error", ""} {
		if _, err := ParseLogLevel(s); err != nil {
			t.Errorf("ParseLogLevel(%q): %v", s, err)
		}
	}
	_, err := ParseLogLevel("verbose")
	if err == nil || !strings.Contains(err.Error(), "debug, info, warn, error") {
		t.Errorf("ParseLogLevel(verbose) = %v, want an error listing the levels", err)
	}
}

func TestLoggerJSON(t *testing.T) {
	var buf bytes.Buffer
	lvl, _ := ParseLogLevel("warn")
	l := NewLogger(&buf, lvl, true)
	l.Info("hidden")
	l.Warn("shown", "vm", "web-01")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) || !strings.Contains(out, `"vm":"web-01"`) {
		t.Errorf("unexpected log output %q", out)
	}
}

func TestNewProgressNotTerminal(t *testing.T) {
	var buf bytes.Buffer
	for _, enabled := range []bool{true, false} {
		p := NewProgress(&buf, enabled)
		if _, ok := p.(noProgress); !ok {
			t.Errorf("NewProgress(buffer, %v) = %T, want the no-op", enabled, p)
		}
		b := p.NewBar("disk", 10)
		b.Add(5)
		b.SetTotal(20)
		b.Done(nil)
		p.Wait()
	}
	if buf.Len() != 0 {
		t.Errorf("no-op progress wrote %q", buf.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is reported as a terminal")
	}
}

// TestBarsFakeTerminal draws real mpb bars into a buffer posing as a
// terminal and checks the final frame: names, byte counters and the
// completed/aborted marks. Rates and ETAs depend on the clock and are not
// compared.
func TestBarsFakeTerminal(t *testing.T) {
	var buf bytes.Buffer
	refresh := make(chan any)
	p := newBars(&buf, mpb.ForceTTY(), mpb.WithManualRefresh(refresh), mpb.WithWidth(120))
	ok := p.NewBar("web-01.nvram", 2048)
	bad := p.NewBar("web-01-flat.vmdk", 4<<20)
	ok.Add(1024)
	ok.Add(1024)
	ok.Done(nil)
	ok.Done(errors.New("ignored: already done"))
	bad.Add(1 << 20)
	bad.SetTotal(8 << 20)
	bad.Done(errors.New("connection reset"))
	p.Wait()
	out := buf.String()
	for _, want := range []string{"web-01.nvram", "2.0 KiB / 2.0 KiB", "done", "web-01-flat.vmdk", "1.0 MiB / 8.0 MiB", "failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q:\n%s", want, out)
		}
	}
	// The aborted bar ends in "failed" as a word of its own, not glued to
	// the ETA ("0sfailed", issue 15 item 9).
	if glued := regexp.MustCompile(`\S+failed`).FindString(out); glued != "" {
		t.Errorf("aborted bar shows %q:\n%s", glued, out)
	}
}
