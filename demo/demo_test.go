package demo_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/demo"
)

type recorder struct{ lines []string }

func (r *recorder) Step(n int, title, why string) {
	r.lines = append(r.lines, fmt.Sprintf("step %d: %s", n, title))
}

func (r *recorder) Detail(format string, args ...any) {
	r.lines = append(r.lines, "  "+fmt.Sprintf(format, args...))
}

func TestDemo(t *testing.T) {
	var r recorder
	if err := demo.Run(t.Context(), demo.Options{Dir: t.TempDir(), DiskSize: 16 << 20}, &r); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, strings.Join(r.lines, "\n"))
	}
	out := strings.Join(r.lines, "\n")
	for _, want := range []string{"identical to the original", "refused, as it must be", "READY", "provider", "writer key", "REJECTED as unsigned"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// With Keep the demo hands over a running simulator: Ready gets what a
// user exports to explore it, and the demo ends only when ctx does.
func TestDemoKeep(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var env map[string]string
	// A --dir that does not exist yet, as in the help's own example
	// (issue 15 item 5: it failed with "identity file ...: no such file").
	dir := filepath.Join(t.TempDir(), "vtpm-demo", "fresh")
	err := demo.Run(ctx, demo.Options{Dir: dir, DiskSize: 8 << 20, Keep: true, Ready: func(e map[string]string) {
		env = e
		cancel() // the user's Ctrl-C
	}}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil {
		t.Errorf("demo folder %s was not created: %v", dir, err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("demo folder %s has mode %v, want 0700 (it holds the identity)", dir, fi.Mode().Perm())
	}
	for _, k := range []string{"GOVC_URL", "GOVC_USERNAME", "GOVC_PASSWORD", "GOVC_INSECURE", "VTPM_BACKUP_REPO", "VTPM_BACKUP_IDENTITY"} {
		if env[k] == "" {
			t.Errorf("Ready lacks %s: %v", k, env)
		}
	}
}
