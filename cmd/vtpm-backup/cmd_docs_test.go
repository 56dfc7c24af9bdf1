package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
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

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONMessageConventions reads the message structs of internal/ui: one
// documented struct per message type, message_type first, every field with
// a snake_case JSON name, and unique snake_case message type values.
func TestJSONMessageConventions(t *testing.T) {
	fset := token.NewFileSet()
	dir := filepath.Join("..", "..", "internal", "ui")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	messages, types := 0, map[string]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch s := spec.(type) {
				case *ast.ValueSpec: // const TypeXxx = "xxx"
					for i, n := range s.Names {
						if gd.Tok != token.CONST || !strings.HasPrefix(n.Name, "Type") || i >= len(s.Values) {
							continue
						}
						lit, ok := s.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						if !snakeCase.MatchString(v) {
							t.Errorf("%s = %q: message types are snake_case", n.Name, v)
						}
						if other, dup := types[v]; dup {
							t.Errorf("%s and %s are both %q", n.Name, other, v)
						}
						types[v] = n.Name
					}
				case *ast.TypeSpec:
					st, ok := s.Type.(*ast.StructType)
					if !ok || !strings.HasSuffix(s.Name.Name, "Message") || !s.Name.IsExported() {
						continue
					}
					messages++
					checkMessageStruct(t, s, gd, st)
				}
			}
		}
	}
	if messages == 0 || len(types) == 0 {
		t.Fatalf("found %d message structs and %d message types in %s", messages, len(types), dir)
	}
}

func checkMessageStruct(t *testing.T, s *ast.TypeSpec, gd *ast.GenDecl, st *ast.StructType) {
	t.Helper()
	name := s.Name.Name
	if s.Doc == nil && gd.Doc == nil {
		t.Errorf("%s has no doc comment", name)
	}
	for i, field := range st.Fields.List {
		if len(field.Names) == 0 { // embedded struct
			t.Errorf("%s embeds a type: spell out its fields", name)
			continue
		}
		tag := ""
		if field.Tag != nil {
			raw, _ := strconv.Unquote(field.Tag.Value)
			tag, _, _ = strings.Cut(reflect.StructTag(raw).Get("json"), ",")
		}
		for _, n := range field.Names {
			if !n.IsExported() {
				continue
			}
			if i == 0 && (n.Name != "MessageType" || tag != "message_type") {
				t.Errorf("%s: first field is %s %q, want MessageType `json:\"message_type\"`", name, n.Name, tag)
			}
			if tag == "-" {
				continue
			}
			if !snakeCase.MatchString(tag) {
				t.Errorf("%s.%s: JSON name %q is not snake_case", name, n.Name, tag)
			}
		}
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
