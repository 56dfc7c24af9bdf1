package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// visibleCommands returns every command of the tree users see (not hidden,
// not cobra's help), root first.
func visibleCommands(t *testing.T) []*cobra.Command {
	t.Helper()
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		out = append(out, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// commandArgs is the command line that reaches c ("init", "keys status").
func commandArgs(c *cobra.Command) []string {
	return strings.Fields(strings.TrimPrefix(c.CommandPath(), "vtpm-backup"))
}

// TestHelpConventions: every command, including the ones added later, has
// examples and an EXIT STATUS section, and its --help renders both.
func TestHelpConventions(t *testing.T) {
	for _, c := range visibleCommands(t) {
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" {
				t.Error("no Short description")
			}
			if strings.TrimSpace(c.Example) == "" {
				t.Error("no Example: add examples to the command's help")
			}
			if c.Runnable() && !strings.Contains(c.Long, "EXIT STATUS") {
				t.Error("Long help has no EXIT STATUS section")
			}
			stdout, stderr, code := cli(t, append(commandArgs(c), "--help")...)
			if code != exitOK || stderr != "" {
				t.Fatalf("--help: exit status %d, stderr %q", code, stderr)
			}
			for _, want := range []string{"Usage:", "Examples:"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("--help lacks %q", want)
				}
			}
			if c.Runnable() && !strings.Contains(stdout, "EXIT STATUS") {
				t.Error("--help lacks EXIT STATUS")
			}
		})
	}
}

// TestJSONErrorsEveryCommand: with --json, a usage error of any command is
// one JSON error line on stderr and nothing on stdout.
func TestJSONErrorsEveryCommand(t *testing.T) {
	for _, c := range visibleCommands(t) {
		t.Run(c.CommandPath(), func(t *testing.T) {
			stdout, stderr, code := cli(t, append(append([]string{"--json"}, commandArgs(c)...), "--no-such-flag")...)
			if code != exitUsage || stdout != "" {
				t.Errorf("exit status %d, stdout %q; want %d and nothing", code, stdout, exitUsage)
			}
			var msg struct {
				MessageType string `json:"message_type"`
				Error       string `json:"error"`
				Code        int    `json:"code"`
			}
			if err := json.Unmarshal([]byte(stderr), &msg); err != nil || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("stderr %q is not one JSON line: %v", stderr, err)
			}
			if msg.MessageType != "error" || msg.Code != exitUsage || !strings.Contains(msg.Error, "no-such-flag") {
				t.Errorf("got %+v, want an error message naming the flag with code 2", msg)
			}
		})
	}
}

// TestGenDocs generates the reference into temporary directories: one
// markdown page and one man page per visible command, no generation date.
func TestGenDocs(t *testing.T) {
	md, man := t.TempDir(), t.TempDir()
	stale := filepath.Join(md, "vtpm-backup_removed.md")
	if err := os.WriteFile(stale, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	if _, stderr, code := cli(t, "gen-docs", "--markdown-dir", md, "--man-dir", man); code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale page %s not removed: %v", stale, err)
	}
	for _, c := range visibleCommands(t) {
		base := strings.ReplaceAll(c.CommandPath(), " ", "_")
		for _, p := range []string{
			filepath.Join(md, base+".md"),
			filepath.Join(man, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"),
		} {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", c.CommandPath(), err)
				continue
			}
			if strings.Contains(string(data), "Auto generated") {
				t.Errorf("%s carries a generation date", p)
			}
			if c.Example != "" && !strings.Contains(string(data), "vtpm-backup") {
				t.Errorf("%s lacks the examples", p)
			}
		}
	}
	if pages, _ := filepath.Glob(filepath.Join(md, "*gen-docs*")); len(pages) > 0 {
		t.Errorf("hidden command documented: %v", pages)
	}
}

// TestDocsUpToDate: docs/cli is what "make docs" writes from the help
// of today's commands, so a changed flag or help text without regenerated
// docs fails here. (Man pages carry a date and are left to make docs.)
func TestDocsUpToDate(t *testing.T) {
	const committed = "../../docs/cli"
	md := t.TempDir()
	if _, stderr, code := cli(t, "gen-docs", "--markdown-dir", md, "--man-dir", ""); code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	got, _ := filepath.Glob(filepath.Join(md, "*.md"))
	want, _ := filepath.Glob(filepath.Join(committed, "*.md"))
	if len(got) != len(want) {
		t.Errorf("gen-docs writes %d pages, %s holds %d: run 'make docs' and commit the result", len(got), committed, len(want))
	}
	for _, p := range got {
		fresh, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		old, err := os.ReadFile(filepath.Join(committed, filepath.Base(p)))
		if err != nil || !bytes.Equal(fresh, old) {
			t.Errorf("%s/%s is out of date with the commands' help: run 'make docs' and commit the result", committed, filepath.Base(p))
		}
	}
}
