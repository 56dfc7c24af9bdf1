// Command s3server runs a local S3 server (versitygw) for trying
// vtpm-backup by hand: it creates a bucket, prints the shell exports that
// point vtpm-backup at it, and runs until interrupted.
//
//	eval "$(go run ./internal/s3server/cmd/s3server -bucket demo)"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "s3server:", err)
		os.Exit(1)
	}
}

func run() error {
	bucket := flag.String("bucket", "vtpm-backup", "bucket to create")
	prefix := flag.String("prefix", "repo", "object prefix inside the bucket for VTPM_BACKUP_REPO")
	lock := flag.Bool("object-lock", false, "create the bucket with S3 Object Lock enabled")
	dir := flag.String("dir", "", "data directory (default: a temporary directory removed on exit)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := s3server.Start(ctx, s3server.Options{Dir: *dir})
	if err != nil {
		return err
	}
	defer s.Stop()
	if err := s.CreateBucket(ctx, *bucket, *lock); err != nil {
		return err
	}
	for _, kv := range s.Env() {
		fmt.Printf("export %s\n", kv)
	}
	repo := "s3+http://" + s.Endpoint + "/" + *bucket
	if *prefix != "" {
		repo += "/" + *prefix
	}
	fmt.Printf("export VTPM_BACKUP_REPO=%s\n", repo)
	fmt.Fprintf(os.Stderr, "# versitygw (pid %d) serving on %s; Ctrl-C to stop\n", s.PID(), s.URL)
	<-ctx.Done()
	return nil
}
