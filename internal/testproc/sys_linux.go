//go:build linux

package testproc

import "syscall"

// sysProcAttr kills the server when the test binary's thread that started
// it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
