package s3server

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleRootFromToolsModule: the tools module's path extends ours, so a
// prefix match would take tools/ for the root and look for .bin/ there.
func TestModuleRootFromToolsModule(t *testing.T) {
	root, err := moduleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(root, toolsDir))
	got, err := moduleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != root {
		t.Errorf("moduleRoot from %s = %s, want %s", toolsDir, got, root)
	}
}

// TestToolsModulePinsVersitygw checks that the go command run where Binary
// builds resolves versitygw's main package, and that the product's own
// module does not (its go.mod lists only what the binary and tests need).
func TestToolsModulePinsVersitygw(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go toolchain: %v", err)
	}
	root, err := moduleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	list := []string{"list", "-f", "{{.Name}} {{.Module.Path}}", versitygwPkg}
	out, err := goCommand(t.Context(), goBin, root, list...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s in the tools module: %v: %s", versitygwPkg, err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "main github.com/versity/versitygw"; got != want {
		t.Errorf("go list in the tools module = %q, want %q", got, want)
	}
	inRoot := exec.CommandContext(t.Context(), goBin, list...)
	inRoot.Dir = root
	if out, err := inRoot.CombinedOutput(); err == nil {
		t.Errorf("go list %s in the product module succeeded (%s): the tool belongs in %s/go.mod", versitygwPkg, strings.TrimSpace(string(out)), toolsDir)
	}
}
