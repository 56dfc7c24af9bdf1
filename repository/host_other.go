//go:build !linux

package repository

import "os"

// otherHost knows only the host name and pid: without /proc it cannot
// tell a live holder from a dead one, so every lock waits for its expiry.
type otherHost struct{ self Process }

func newLocalHost() Host {
	return otherHost{self: Process{Hostname: hostname(), PID: os.Getpid()}}
}

func (h otherHost) Self() Process     { return h.self }
func (otherHost) Gone(Process) string { return "" }
