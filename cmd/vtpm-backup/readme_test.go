package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/deploy"
)

// TestReadmeUsesRealFlags checks every vtpm-backup command line in the
// README's shell code blocks against the command tree: the tutorial is what
// a newcomer types first, so a renamed flag must fail here, not there.
func TestReadmeUsesRealFlags(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks strings.Builder
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
		case strings.HasPrefix(line, "```"):
			in = false
		case in:
			// Comments may mention commands; they are not run.
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			blocks.WriteString(line + "\n")
		}
	}
	invs := deploy.CommandLines("README.md", blocks.String())
	if len(invs) < 10 {
		t.Fatalf("found only %d vtpm-backup command lines in README.md's shell blocks", len(invs))
	}
	root, _ := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	for _, inv := range invs {
		if err := checkInvocation(root, inv.Args); err != nil {
			var missing missingCommandError
			if errors.As(err, &missing) {
				t.Errorf("README.md: vtpm-backup %s: no such command", strings.Join(inv.Args, " "))
				continue
			}
			t.Errorf("README.md: vtpm-backup %s: %v", strings.Join(inv.Args, " "), err)
		}
	}
}
