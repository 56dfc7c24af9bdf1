//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// openPTY returns a pseudo-terminal pair: what the command writes to the
// slave, a terminal would show; the test reads it from the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	// A terminal window has a size; a fresh pty says 0x0.
	ws := struct{ rows, cols, x, y uint16 }{rows: 40, cols: 120}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, s.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		t.Fatalf("set pty size: %v", e)
	}
	return m, s
}

// TestBackupProgressOnTerminal runs a backup with stderr on a real
// pseudo-terminal: a progress bar is drawn there (VM name, byte counters,
// "done"), and none when stderr is not a terminal or --no-progress is given.
func TestBackupProgressOnTerminal(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "tty-vm", Seed: 7, DiskSize: 16 << 20})
	repoDir := initLocalRepo(t)
	args := append(append([]string{"--repo", repoDir}, vcArgs(env)...), "backup", vm.Name)

	tests := []struct {
		name     string
		tty      bool
		extra    []string
		wantBars bool
	}{
		{"terminal", true, nil, true},
		{"terminal with --no-progress", true, []string{"--no-progress"}, false},
		{"pipe", false, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				stderr io.Writer
				screen bytes.Buffer
				wg     sync.WaitGroup
				master *os.File
				slave  *os.File
				plain  bytes.Buffer
			)
			if tc.tty {
				master, slave = openPTY(t)
				wg.Add(1)
				go func() { // drain, or the command blocks on a full terminal
					defer wg.Done()
					_, _ = io.Copy(&screen, master)
				}()
				stderr = slave
			} else {
				stderr = &plain
			}
			var stdout bytes.Buffer
			code := run(t.Context(), append(append([]string{}, tc.extra...), args...), &stdout, stderr)
			if tc.tty {
				slave.Close()
				wg.Wait() // the master read ends with EIO once the slave is closed
				master.Close()
			}
			if code != exitOK {
				t.Fatalf("backup: exit %d\n%s%s", code, screen.String(), plain.String())
			}
			out := screen.String() + plain.String()
			hasBar := strings.Contains(out, "tty-vm") && strings.Contains(out, "MiB") && strings.Contains(out, "done")
			if hasBar != tc.wantBars {
				t.Fatalf("progress bar drawn = %v, want %v; stderr:\n%q", hasBar, tc.wantBars, out)
			}
			if !strings.Contains(stdout.String(), "tty-vm") {
				t.Fatalf("summary table missing on stdout: %q", stdout.String())
			}
		})
	}
}
