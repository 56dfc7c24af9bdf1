//go:build !linux

package testproc

import "syscall"

// sysProcAttr: no parent-death signal outside Linux; Kill ends the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }
