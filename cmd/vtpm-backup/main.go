// Command vtpm-backup backs up and restores VMware vSphere VMs that have a
// virtual TPM into compressed, age-encrypted, deduplicated repositories on S3
// or a local directory.
//
// This package holds the command line only: one file per command with its
// flags and output, calling the packages that do the work.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: commands stop, clean up (remove
	// their snapshot, release locks) and exit. stop() then restores the
	// default action, so a second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit status.
// The error of a failed command is printed here, once, on stderr (as JSON
// with --json).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, g := newRootCommand(stdout, stderr)
	root.SetArgs(moveFlagsBehindCommand(root, args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	err = withHint(err)
	code := exitCode(err)
	if ctx.Err() != nil {
		// A signal stopped the command: say so with 128+SIGINT, as shells
		// and restic do, so a wrapper can tell an interrupted run from a
		// failed one.
		err = fmt.Errorf("interrupted: %w", err)
		code = exitInterrupted
	}
	ui.NewPrinter(stdout, stderr, g.JSON).Error(ui.WithExitCode(err, code))
	return code
}
