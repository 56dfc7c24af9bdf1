package ui

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var updateJSONDoc = flag.Bool("update", false, "rewrite docs/json-messages.md from the message structs")

const jsonDocPath = "../../docs/json-messages.md"

// TestJSONDocUpToDate keeps docs/json-messages.md, the reference of every
// --json message, generated from the message structs and their comments:
// a new field or message type without documentation fails here. Run
// "go test ./internal/ui -run TestJSONDoc -update" to regenerate.
func TestJSONDocUpToDate(t *testing.T) {
	got := generateJSONDoc(t)
	if *updateJSONDoc {
		if err := os.WriteFile(jsonDocPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(jsonDocPath)
	if err != nil {
		t.Fatalf("%v: run 'go test ./internal/ui -run TestJSONDoc -update'", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the message structs: run 'go test ./internal/ui -run TestJSONDoc -update' and commit it", jsonDocPath)
	}
}

type msgType struct {
	value, constName string
}

// messageSource is what the package's source says about its messages.
type messageSource struct {
	types   []msgType                // const TypeXxx = "xxx", in file order
	structs map[string]*ast.TypeSpec // every struct type
	decls   map[string]*ast.GenDecl  // the declaration of each struct
	docs    map[string]string        // each struct's doc comment, one line
	// methodType is, for each type with a MessageType method, the name
	// of the constant it returns ("" when it returns something else).
	methodType map[string]string
}

// parseMessages reads the package's non-test source once for the JSON
// reference and for the convention checks.
func parseMessages(t *testing.T) messageSource {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	src := messageSource{structs: map[string]*ast.TypeSpec{}, decls: map[string]*ast.GenDecl{}, docs: map[string]string{},
		methodType: map[string]string{}}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				if recv, typ, ok := messageTypeMethod(fd); ok {
					src.methodType[recv] = typ
				}
				continue
			}
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch s := spec.(type) {
				case *ast.ValueSpec:
					for i, n := range s.Names {
						if gd.Tok != token.CONST || !strings.HasPrefix(n.Name, "Type") || i >= len(s.Values) {
							continue
						}
						lit, ok := s.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						src.types = append(src.types, msgType{value: v, constName: n.Name})
					}
				case *ast.TypeSpec:
					if _, ok := s.Type.(*ast.StructType); ok {
						src.structs[s.Name.Name] = s
						src.decls[s.Name.Name] = gd
						doc := s.Doc
						if doc == nil {
							doc = gd.Doc
						}
						src.docs[s.Name.Name] = strings.Join(strings.Fields(doc.Text()), " ")
					}
				}
			}
		}
	}
	return src
}

// messageTypeMethod recognises "func (XxxMessage) MessageType() string {
// return TypeXxx }" and returns the receiver's type name and the constant
// (typ is "" when the body is anything else).
func messageTypeMethod(fd *ast.FuncDecl) (recv, typ string, ok bool) {
	if fd.Name.Name != "MessageType" || fd.Recv == nil || len(fd.Recv.List) != 1 {
		return "", "", false
	}
	rt := fd.Recv.List[0].Type
	if star, isStar := rt.(*ast.StarExpr); isStar {
		rt = star.X
	}
	id, isIdent := rt.(*ast.Ident)
	if !isIdent {
		return "", "", false
	}
	if fd.Body != nil && len(fd.Body.List) == 1 {
		if ret, isRet := fd.Body.List[0].(*ast.ReturnStmt); isRet && len(ret.Results) == 1 {
			if c, isIdent := ret.Results[0].(*ast.Ident); isIdent {
				typ = c.Name
			}
		}
	}
	return id.Name, typ, true
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONMessageConventions holds the message structs to the scripting
// contract: one documented struct per message type whose MessageType
// method returns its TypeXxx constant (the printer writes message_type
// first; no struct carries it), every field with a snake_case JSON name,
// unique snake_case type values.
func TestJSONMessageConventions(t *testing.T) {
	src := parseMessages(t)
	seen := map[string]string{}
	for _, mt := range src.types {
		if !snakeCase.MatchString(mt.value) {
			t.Errorf("%s = %q: message types are snake_case", mt.constName, mt.value)
		}
		if other, dup := seen[mt.value]; dup {
			t.Errorf("%s and %s are both %q", mt.constName, other, mt.value)
		}
		seen[mt.value] = mt.constName
	}
	messages := 0
	for name, ts := range src.structs {
		if !strings.HasSuffix(name, "Message") || !ts.Name.IsExported() {
			continue
		}
		messages++
		if ts.Doc == nil && src.decls[name].Doc == nil {
			t.Errorf("%s has no doc comment", name)
		}
		want := "Type" + strings.TrimSuffix(name, "Message")
		if got, ok := src.methodType[name]; !ok || got != want {
			t.Errorf("%s: want func (%s) MessageType() string { return %s }", name, name, want)
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if len(field.Names) == 0 {
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
				if tag == "message_type" {
					t.Errorf("%s.%s: message_type is written by the printer from the MessageType method", name, n.Name)
				}
				if tag != "-" && !snakeCase.MatchString(tag) {
					t.Errorf("%s.%s: JSON name %q is not snake_case", name, n.Name, tag)
				}
			}
		}
	}
	if messages == 0 || len(src.types) == 0 {
		t.Fatalf("found %d message structs and %d message types", messages, len(src.types))
	}
}

func generateJSONDoc(t *testing.T) []byte {
	t.Helper()
	src := parseMessages(t)
	types, structs, docs := src.types, src.structs, src.docs

	var b bytes.Buffer
	b.WriteString("<!-- Generated from internal/ui by 'go test ./internal/ui -run TestJSONDoc -update'. Do not edit. -->\n")
	b.WriteString("# JSON messages (`--json`)\n\n")
	b.WriteString("With `--json`, every command writes one JSON object per line on stdout; errors go to\n")
	b.WriteString("stderr as an `error` message. Every object has a `message_type`; field names are\n")
	b.WriteString("snake_case and never renamed. Fields marked *omitempty* are left out when empty.\n\n")
	b.WriteString("| message_type | struct | what it is |\n| --- | --- | --- |\n")
	nested := map[string]bool{}
	for _, mt := range types {
		name := strings.TrimPrefix(mt.constName, "Type") + "Message"
		if structs[name] == nil {
			t.Fatalf("message type %s (%q) has no struct %s", mt.constName, mt.value, name)
		}
		fmt.Fprintf(&b, "| `%s` | [%s](#%s) | %s |\n", mt.value, name, strings.ToLower(name), firstSentence(docs[name], name))
	}
	writeStruct := func(name, msgType string) {
		ts := structs[name]
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n| field | type | notes |\n| --- | --- | --- |\n", name, docs[name])
		if msgType != "" {
			fmt.Fprintf(&b, "| `message_type` | `string` | %q |\n", msgType)
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			if fld.Tag == nil || len(fld.Names) == 0 {
				continue
			}
			tag := reflect.StructTag(strings.Trim(fld.Tag.Value, "`")).Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "-" || jname == "" {
				continue
			}
			typ := exprString(fld.Type)
			for _, id := range referencedTypes(fld.Type) {
				if structs[id] != nil && !strings.HasSuffix(id, "Message") {
					nested[id] = true
				}
			}
			note := strings.Join(strings.Fields(fld.Doc.Text()+" "+fld.Comment.Text()), " ")
			if opts != "" {
				note = strings.TrimSpace(note + " *" + strings.ReplaceAll(opts, ",", ", ") + "*")
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", jname, typ, strings.ReplaceAll(note, "|", "\\|"))
		}
	}
	for _, mt := range types {
		writeStruct(strings.TrimPrefix(mt.constName, "Type")+"Message", mt.value)
	}
	var names []string
	for n := range nested {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 0 {
		b.WriteString("\n# Nested objects\n")
		for _, n := range names {
			writeStruct(n, "")
		}
	}
	return b.Bytes()
}

// firstSentence returns the first sentence of a doc comment without the
// leading "Name is", for the index table.
func firstSentence(doc, name string) string {
	if i := strings.Index(doc, ". "); i >= 0 {
		doc = doc[:i+1]
	}
	for _, p := range []string{name + " is ", name + " "} {
		if rest, ok := strings.CutPrefix(doc, p); ok {
			return rest
		}
	}
	return doc
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.ArrayType:
		return "[]" + exprString(x.Elt)
	case *ast.MapType:
		return "map[" + exprString(x.Key) + "]" + exprString(x.Value)
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

func referencedTypes(e ast.Expr) []string {
	var out []string
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			out = append(out, id.Name)
		}
		return true
	})
	return out
}
