package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

func TestUnlockCommand(t *testing.T) {
	dir := initLocalRepo(t)
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(t.Context(), be)
	if err != nil {
		t.Fatal(err)
	}
	live, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Purpose: "backup", NoRefresh: true, Hostname: "alive"})
	if err != nil {
		t.Fatal(err)
	}
	// A lock of a host that died two hours ago: expired long since.
	past, err := repository.Open(t.Context(), be, repository.WithClock(clock.NewFake(time.Now().Add(-2*time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := past.LockWithOptions(t.Context(), repository.LockOptions{Purpose: "backup", NoRefresh: true, Hostname: "dead"}); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := cli(t, "--json", "--repo", dir, "unlock")
	if code != exitOK {
		t.Fatalf("unlock: exit %d: %s", code, stderr)
	}
	msgs := ofType(jsonLines(t, stdout), "lock")
	if len(msgs) != 2 {
		t.Fatalf("lock messages: %v", msgs)
	}
	for _, m := range msgs {
		dead := m["hostname"] == "dead"
		if m["stale"] != dead || m["removed"] != dead {
			t.Errorf("lock of %v: stale %v removed %v", m["hostname"], m["stale"], m["removed"])
		}
	}
	locks, _ := repo.ListLocks(t.Context())
	if len(locks) != 1 || locks[0].ID != live.Info().ID {
		t.Fatalf("after unlock: %+v", locks)
	}

	stdout, _, code = cli(t, "--repo", dir, "unlock", "--remove-all")
	if code != exitOK || !strings.Contains(stdout, "removed shared lock") || !strings.Contains(stdout, "alive") {
		t.Fatalf("unlock --remove-all: exit %d: %s", code, stdout)
	}
	if locks, _ := repo.ListLocks(t.Context()); len(locks) != 0 {
		t.Fatalf("after --remove-all: %+v", locks)
	}
	if stdout, _, _ := cli(t, "--repo", dir, "unlock"); !strings.Contains(stdout, "no locks") {
		t.Fatalf("empty: %s", stdout)
	}
}

// With nothing to list or remove, --json still prints a closing summary:
// silence cannot be told from a command that died (issue 15 item 10).
func TestEmptyListAndUnlockJSONSummaries(t *testing.T) {
	repo := initLocalRepo(t)
	for _, tc := range []struct {
		cmd, typ string
		want     map[string]any
	}{
		{"list", "list_summary", map[string]any{"backups": float64(0), "vms": float64(0)}},
		{"unlock", "unlock_summary", map[string]any{"locks": float64(0), "removed": float64(0), "kept": float64(0)}},
	} {
		stdout, stderr, code := cli(t, "--json", "--repo", repo, tc.cmd)
		if code != exitOK {
			t.Fatalf("%s --json: exit %d: %s", tc.cmd, code, stderr)
		}
		msgs := jsonLines(t, stdout)
		if len(msgs) != 1 || msgs[0]["message_type"] != tc.typ || msgs[0]["repository"] == "" {
			t.Fatalf("%s --json on an empty repository printed %v, want one %s", tc.cmd, msgs, tc.typ)
		}
		for k, v := range tc.want {
			if msgs[0][k] != v {
				t.Errorf("%s: %s = %v, want %v", tc.typ, k, msgs[0][k], v)
			}
		}
	}
}

// Every lock refusal names the holder's host, pid and age and the command
// that lists or removes the lock (issue 15 item 8): a lock left by a backup
// killed on another host refuses prune, a prune's refuses backup, and
// unlock keeps live ones; none of them said how to get out.
func TestLockRefusalsSayHowToGetOut(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "locked-out", Seed: 21, DiskSize: 1 << 20})
	dir := initLocalRepo(t)
	repo := openLocal(t, dir)
	take := func(t *testing.T, purpose string, exclusive bool) *repository.Lock {
		t.Helper()
		l, err := repo.LockWithOptions(t.Context(), repository.LockOptions{Purpose: purpose, Exclusive: exclusive, NoRefresh: true, Hostname: "backup-host-9", PID: 4242})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	release := func(t *testing.T, l *repository.Lock) {
		t.Helper()
		if err := l.Unlock(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	holder := []string{"backup-host-9", "pid 4242", "created", "ago"}

	backupLock := take(t, "backup", false)
	_, stderr, code := cli(t, "prune", "--repo", dir, "--keep-last", "1")
	if code != exitNotReady {
		t.Fatalf("prune under a live backup lock: exit %d: %s", code, stderr)
	}
	mustMention(t, "prune", stderr, append(holder, "hint:", "vtpm-backup unlock", "--remove-all")...)

	stdout, _, code := cli(t, "--repo", dir, "unlock")
	if code != exitOK {
		t.Fatalf("unlock: exit %d", code)
	}
	mustMention(t, "unlock", stdout, append(holder, "kept", "1 live lock(s) kept", "vtpm-backup unlock --remove-all")...)
	stdout, _, _ = cli(t, "--json", "--repo", dir, "unlock")
	if sum := ofType(jsonLines(t, stdout), "unlock_summary"); len(sum) != 1 || !strings.Contains(fmt.Sprint(sum[0]["hint"]), "--remove-all") {
		t.Errorf("unlock --json summary without the hint: %v", sum)
	}
	release(t, backupLock)

	pruneLock := take(t, "prune", true)
	_, stderr, code = cli(t, append(append([]string{"--repo", dir}, vcArgs(env)...), "backup", vm.Name)...)
	if code != exitNotReady {
		t.Fatalf("backup under a live prune lock: exit %d: %s", code, stderr)
	}
	mustMention(t, "backup", stderr, append(holder, "hint:", "vtpm-backup unlock", "--remove-all")...)
	_, stderr, _ = cli(t, append(append([]string{"--json", "--repo", dir}, vcArgs(env)...), "backup", vm.Name)...)
	if errs := ofType(jsonLines(t, stderr), "error"); len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]["hint"]), "vtpm-backup unlock") {
		t.Errorf("backup --json error without the hint: %v", errs)
	}
	release(t, pruneLock)
}

func mustMention(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}
