package repository

import (
	"os"
	"sync"
)

// Process identifies the holder of a lock well enough for a later process on
// the same host to tell whether it still runs. A pid alone cannot: after a
// reboot, or in a restarted container where every run is pid 1, the same pid
// names another process. The boot ID and the process start time can.
type Process struct {
	// Hostname is the holder's host name (os.Hostname).
	Hostname string `json:"hostname"`
	// BootID changes at every boot of the host's kernel
	// (/proc/sys/kernel/random/boot_id on Linux); empty where unknown.
	BootID string `json:"boot_id,omitempty"`
	// PID is the holder's process ID.
	PID int `json:"pid"`
	// StartTicks is when the process started, in clock ticks since boot
	// (/proc/<pid>/stat field 22 on Linux); 0 where unknown. With BootID
	// it tells the holder from a later process that got the same pid.
	StartTicks uint64 `json:"process_start_ticks,omitempty"`
}

// Host is what locks need to know about the machine they run on: who the
// calling process is, and whether the holder of a lock written on this
// machine is still running. LocalHost is the real one; WithHost replaces it
// in tests.
type Host interface {
	// Self identifies the calling process. Hostname and PID are always
	// set; BootID and StartTicks where the platform tells them.
	Self() Process
	// Gone says why p, the holder of a lock, is known to have stopped: it
	// ran on this host, and the host has booted since, or no process has
	// its pid any more, or the process with its pid started at another
	// time. It returns "" when p may still run or this host cannot tell:
	// p ran on another host, the lock predates boot IDs and start times,
	// or the platform offers neither. Such locks expire instead.
	Gone(p Process) string
}

// LocalHost returns the Host of this process: on Linux it reads /proc, on
// other systems it knows only the host name and pid, so locks there always
// wait for their expiry.
func LocalHost() Host { return localHost() }

var localHost = sync.OnceValue(newLocalHost)

// hostname is os.Hostname with a fallback, so a lock always names a host.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

// WithHost makes the repository identify lock holders through h instead of
// LocalHost, so tests can play another host, a reboot or a reused pid.
func WithHost(h Host) Option {
	return func(r *Repository) {
		if h != nil {
			r.host = h
		}
	}
}

// Host returns how the repository identifies lock holders (LocalHost unless
// WithHost), for others that record a process and later ask if it is gone.
func (r *Repository) Host() Host { return r.host }
