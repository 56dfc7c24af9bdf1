//go:build linux

package repository

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	// 52 fields as the kernel writes them; starttime (22) is 987654.
	tail := " 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	tests := []struct {
		name  string
		line  string
		state byte
		start uint64
		err   bool
	}{
		{name: "plain", line: "1234 (vtpm-backup) S" + tail, state: 'S', start: 987654},
		{name: "name with spaces and parentheses", line: "1234 (a) b) (c) S" + tail, state: 'S', start: 987654},
		{name: "zombie", line: "1234 (x) Z" + tail, state: 'Z', start: 987654},
		{name: "no name", line: "1234 x S" + tail, err: true},
		{name: "truncated", line: "1234 (x) S 1 2 3", err: true},
		{name: "bad start", line: "1234 (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 -5 1000", err: true},
		{name: "empty", line: "", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseProcStat([]byte(tc.line))
			if (err != nil) != tc.err {
				t.Fatalf("parseProcStat err = %v, want error %v", err, tc.err)
			}
			if err == nil && (st.state != tc.state || st.startTicks != tc.start) {
				t.Fatalf("parseProcStat = %c %d, want %c %d", st.state, st.startTicks, tc.state, tc.start)
			}
		})
	}
}

// TestLinuxHostGone: against the real /proc, a holder is gone when its
// host booted since, its pid is free, its process is a zombie or its pid
// belongs to a process that started at another time; otherwise (alive, or
// cannot tell) it is not.
func TestLinuxHostGone(t *testing.T) {
	h := newLocalHost().(linuxHost)
	self := h.Self()
	if self.BootID == "" || self.StartTicks == 0 {
		t.Fatalf("no boot ID or start time read from /proc: %+v", self)
	}
	with := func(f func(*Process)) Process { p := self; f(&p); return p }

	// A child that exits at once: a zombie until it is waited for, then
	// gone with a free pid.
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, child.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatalf("wait for the child to exit (not reaped): %v", err)
	}
	dead := with(func(p *Process) { p.PID = child.Process.Pid; p.StartTicks = 1 })
	if got := h.Gone(dead); !strings.Contains(got, "has exited") {
		t.Errorf("Gone(zombie) = %q, want it exited", got)
	}
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		p    Process
		want string // substring; "" means not gone
	}{
		{"this process", self, ""},
		{"dead pid", dead, "is no longer running"},
		{"reused pid", with(func(p *Process) { p.StartTicks++ }), "now belongs to another process"},
		{"pid 0", with(func(p *Process) { p.PID = 0 }), "no process can have pid 0"},
		{"pid beyond the kernel's limit", with(func(p *Process) { p.PID = 1<<32 + self.PID }), "no process can have pid"},
		{"rebooted", with(func(p *Process) { p.BootID = "3f0e-other-boot" }), "has restarted since"},
		{"another host", with(func(p *Process) { p.Hostname += "-other"; p.PID = dead.PID }), ""},
		{"old lock without boot ID", with(func(p *Process) { p.BootID = ""; p.PID = dead.PID }), ""},
		{"old lock without start time", with(func(p *Process) { p.StartTicks = 0; p.PID = dead.PID }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := h.Gone(tc.p)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("Gone = %q, want %q", got, tc.want)
			}
		})
	}

	// A host that could not read /proc records no boot ID and judges
	// nothing: locks then expire.
	blind := linuxHost{proc: t.TempDir(), alive: processExists}
	if p := blind.identify(os.Getpid()); p.BootID != "" || p.StartTicks != 0 || p.Hostname != self.Hostname {
		t.Fatalf("identify without /proc = %+v", p)
	}
	blind.self = blind.identify(os.Getpid())
	if got := blind.Gone(dead); got != "" {
		t.Fatalf("Gone without /proc = %q, want cannot tell", got)
	}
}

// FuzzParseProcStat: any /proc/<pid>/stat content parses or is refused,
// never panics; what parses has the one-letter state that follows the last
// ')' (a command name may hold anything, parentheses included).
func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 5 100 200\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStat(data)
		if err != nil {
			return
		}
		rest := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if rest[0] != string([]byte{st.state}) {
			t.Fatalf("parseProcStat(%q): state %q, want %q", data, st.state, rest[0])
		}
	})
}
