//go:build linux

package main

import (
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// pruneKills is the prune kill loop's size: make test runs the short one;
// issue 13 asks for at least 20 before a release (make killtest).
var pruneKills = flag.Int("prune-kills", 3, "SIGKILLs of a running prune in TestPruneKillLoop")

// TestPruneKillLoop SIGKILLs `vtpm-backup prune` at random points while it
// removes old backups and their chunks (no grace period, so every
// unreferenced chunk goes). Before every prune a new backup adds new chunks
// and makes older ones unreferenced. After each kill every backup still
// listed must be whole, audit --read-data must pass, and the next prune
// must run at once (the dead run's lock is stale) and succeed.
// It runs on a local and on an S3 repository.
func TestPruneKillLoop(t *testing.T) {
	seed := killSeed(t)
	for i, kind := range []string{"local", "s3"} {
		t.Run(kind, func(t *testing.T) {
			pruneKillLoop(t, newKillLoop(t, kind, rand.New(rand.NewPCG(seed, 11+uint64(i)))))
		})
	}
}

func pruneKillLoop(t *testing.T, k *killLoop) {
	prune := []string{"--json", "--no-progress", "--repo", k.repo, "prune", "--keep-last", "2", "--grace", "0"}
	audit := append(append([]string{"--repo", k.repo}, vcArgs(k.env)...), "audit", "--read-data", "--identity", k.identity)

	k.change(t, 0)
	if _, stderr, code := cli(t, k.backupArgs()...); code != exitOK {
		t.Fatalf("backup: %s", stderr)
	}
	full := timeRun(t, "prune", prune...)

	killed, early, late := 0, 0, 0
	for round := 1; killed < *pruneKills; round++ {
		if round > 10**pruneKills {
			t.Fatalf("only %d of %d prunes were still going when killed", killed, round)
		}
		// Two backups: the prune then has one to remove, with the
		// chunks only it used.
		for range 2 {
			k.change(t, round)
			if _, stderr, code := cli(t, k.backupArgs()...); code != exitOK {
				t.Fatalf("round %d: backup: %s", round, stderr)
			}
		}
		before := repoFiles(t, k.repo)
		// Start-up (the process, opening the repository, listing it)
		// takes most of a prune this small: the kill points fall in the
		// later part, where it deletes.
		delay := full/2 + time.Duration(k.rng.Int64N(int64(full)*7/10))
		wasKilled := killRun(t, round, "prune", &full, delay, prune...)
		atKill := repoFiles(t, k.repo)
		if wasKilled {
			killed++
		}
		if stdout, stderr, code := cli(t, audit...); code != exitOK {
			t.Fatalf("round %d: audit --read-data after a prune killed %v in: exit %d\n%s\n%s", round, delay, code, stdout, stderr)
		}
		if stdout, stderr, code := cli(t, prune...); code != exitOK {
			t.Fatalf("round %d: the prune after a kill %v in: exit %d\n%s\n%s", round, delay, code, stdout, stderr)
		}
		if wasKilled {
			switch after := repoFiles(t, k.repo); atKill {
			case before:
				early++
			case after:
				late++
			}
		}
	}
	t.Logf("%d prunes killed: %d before deleting anything, %d between the first and the last deletion, %d after the last",
		killed, early, killed-early-late, late)
	k.check(t, 0)
}

// repoFiles counts the manifests and chunks of the repository, to tell
// where in its work a prune was killed.
func repoFiles(t *testing.T, repo string) [2]int {
	t.Helper()
	be, err := (&repoFlags{URL: repo}).openBackend(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var n [2]int
	for i, prefix := range []string{"manifests/", "data/"} {
		err := be.List(t.Context(), prefix, func(oi storage.ObjectInfo) error {
			if i == 1 || strings.HasSuffix(oi.Name, ".json") {
				n[i]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}
