package s3server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvBinary names the environment variable that points at a prebuilt
// versitygw binary, for machines that build it once (CI caches) or cannot
// build it at all.
const EnvBinary = "VTPM_BACKUP_VERSITYGW"

// ErrUnavailable means the versitygw binary could not be found or built,
// typically because the go toolchain is missing. Outside CI, tests skip on it;
// in CI it is a failure.
var ErrUnavailable = errors.New("versitygw binary unavailable")

const versitygwPkg = "github.com/versity/versitygw/cmd/versitygw"

// toolsDir is the module, below the repository root, that pins the
// development tools (versitygw, golangci-lint) so that the product's go.mod
// lists only what the binary and its tests import.
const toolsDir = "tools"

// Binary returns the path of a runnable versitygw binary: $VTPM_BACKUP_VERSITYGW
// if set, else <module root>/.bin/versitygw, building it there first from the
// tools module when it is missing. Concurrent callers (parallel test binaries)
// are serialised by a file lock, and the build goes to a temporary name renamed
// into place, so nobody ever executes a half-written file.
func Binary(ctx context.Context) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %w", ErrUnavailable, EnvBinary, p, err)
		}
		return p, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	binDir := filepath.Join(root, ".bin")
	bin := filepath.Join(binDir, "versitygw")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", binDir, err)
	}
	unlock, err := lockFile(filepath.Join(binDir, ".versitygw.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	if err := build(ctx, root, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// build compiles versitygw from the tools module into a temporary name and
// renames it to bin.
func build(ctx context.Context, root, bin string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("%w: no go toolchain to build %s: %w", ErrUnavailable, versitygwPkg, err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	defer os.Remove(tmp)
	cmd := goCommand(ctx, goBin, root, "build", "-o", tmp, versitygwPkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: go build %s: %w: %s", ErrUnavailable, versitygwPkg, err, strings.TrimSpace(out.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("install %s: %w", bin, err)
	}
	return nil
}

// goCommand runs the go command inside the tools module of the repository at
// root, where versitygw's version is pinned (the product's go.mod does not
// list it).
func goCommand(ctx context.Context, goBin, root string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = filepath.Join(root, toolsDir)
	return cmd
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// modulePath is our module; the tools module's path extends it, so the
// module line is compared whole.
const modulePath = "github.com/vtpm-backup/vtpm-backup"

// moduleRoot finds the directory of our go.mod: upwards from the working
// directory (tests run in their package directory, make in the root), else
// whatever the go command says.
func moduleRoot(ctx context.Context) (string, error) {
	dir, err := os.Getwd()
	if err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			if isModuleRoot(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull || !isModuleRoot(filepath.Dir(gomod)) {
		return "", errors.New("find module root: not inside the vtpm-backup module")
	}
	return filepath.Dir(gomod), nil
}

// isModuleRoot reports whether dir holds the go.mod of our module (not of
// the tools module inside it).
func isModuleRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == modulePath
		}
	}
	return false
}
