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
