//go:build linux

package repository

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// linuxHost reads who a process is from /proc: the kernel's boot ID and the
// process start time, which together with the pid name one process of one
// boot, even in a container whose every run is pid 1.
type linuxHost struct {
	self Process
	// proc is the procfs mount ("/proc"); tests point it elsewhere.
	proc string
	// alive reports whether a process with pid exists (kill(pid, 0)).
	alive func(pid int) bool
}

func newLocalHost() Host {
	h := linuxHost{proc: "/proc", alive: processExists}
	h.self = h.identify(os.Getpid())
	return h
}

// identify returns pid's identity on this host. What cannot be read (no
// /proc in a minimal container) stays empty, and locks then expire instead.
func (h linuxHost) identify(pid int) Process {
	p := Process{Hostname: hostname(), PID: pid}
	boot, err := os.ReadFile(h.proc + "/sys/kernel/random/boot_id")
	if err != nil {
		return p
	}
	st, err := h.stat(pid)
	if err != nil {
		return p
	}
	p.BootID = strings.TrimSpace(string(boot))
	p.StartTicks = st.startTicks
	return p
}

func (h linuxHost) Self() Process { return h.self }

func (h linuxHost) Gone(p Process) string {
	if p.Hostname != h.self.Hostname || p.BootID == "" || p.StartTicks == 0 || h.self.BootID == "" {
		return ""
	}
	if p.BootID != h.self.BootID {
		return fmt.Sprintf("its host %s has restarted since (boot ID %s, now %s)", p.Hostname, p.BootID, h.self.BootID)
	}
	if p.PID <= 0 || p.PID > maxPID {
		return fmt.Sprintf("no process can have pid %d", p.PID)
	}
	if !h.alive(p.PID) {
		return fmt.Sprintf("process %d is no longer running on %s", p.PID, p.Hostname)
	}
	st, err := h.stat(p.PID)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("process %d is no longer running on %s", p.PID, p.Hostname)
	case err != nil:
		// Alive but unreadable (procfs mounted with hidepid, another
		// user's process): cannot tell, so it must expire.
		return ""
	case st.state == 'Z' || st.state == 'X':
		return fmt.Sprintf("process %d on %s has exited", p.PID, p.Hostname)
	case st.startTicks != p.StartTicks:
		return fmt.Sprintf("pid %d on %s now belongs to another process (started at tick %d, the lock's holder at tick %d)",
			p.PID, p.Hostname, st.startTicks, p.StartTicks)
	}
	return ""
}

// maxPID is Linux's PID_MAX_LIMIT: no pid is larger. Checked before
// kill(2), which would take a larger value modulo 2^32 and ask about another
// process.
const maxPID = 1 << 22

// processExists reports whether pid names a process, including one of
// another user (EPERM) that /proc may hide.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// procStat is what locks need from /proc/<pid>/stat.
type procStat struct {
	state      byte
	startTicks uint64
}

func (h linuxHost) stat(pid int) (procStat, error) {
	data, err := os.ReadFile(h.proc + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

// parseProcStat reads the state (field 3) and start time (field 22) of a
// /proc/<pid>/stat line. Field 2, the command name in parentheses, may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseProcStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc stat %q: no command name", abbreviate(string(data)))
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc stat %q: too few fields", abbreviate(string(data)))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc stat: start time %q: %w", fields[19], err)
	}
	return procStat{state: fields[0][0], startTicks: start}, nil
}
