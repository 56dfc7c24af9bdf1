package demo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/demo"
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
	for _, want := range []string{"identical to the original", "refused, as it must be", "READY", "provider"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
