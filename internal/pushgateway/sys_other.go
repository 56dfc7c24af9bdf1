//go:build !linux

package pushgateway

import "syscall"

// sysProcAttr: no parent-death signal outside Linux; Stop ends the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }
