package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
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
