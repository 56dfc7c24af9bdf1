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

// Binary returns the path of a runnable versitygw binary: $VTPM_BACKUP_VERSITYGW
// if set, else <module root>/.bin/versitygw, building it there first when it
// is missing. Concurrent callers (parallel test binaries) are serialised by a
// file lock, and the build goes to a temporary name renamed into place, so
// nobody ever executes a half-written file.
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
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: no go toolchain to build %s: %w", ErrUnavailable, versitygwPkg, err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", tmp, versitygwPkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: go build %s: %w: %s", ErrUnavailable, versitygwPkg, err, strings.TrimSpace(out.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("install %s: %w", bin, err)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// moduleRoot finds the directory of our go.mod: upwards from the working
// directory (tests run in their package directory, make in the root), else
// whatever the go command says.
func moduleRoot(ctx context.Context) (string, error) {
	dir, err := os.Getwd()
	if err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			data, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.Contains(data, []byte("module github.com/vtpm-backup/vtpm-backup")) {
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
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find module root: not inside the vtpm-backup module")
	}
	return filepath.Dir(gomod), nil
}
