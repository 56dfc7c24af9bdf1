package restore_test

import (
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// TestRoundTripS3 is the round trip against a real S3 server (versitygw on
// 127.0.0.1): back up, lose the VM, restore, compare.
func TestRoundTripS3(t *testing.T) {
	srv := s3server.StartT(t)
	ctx := t.Context()
	if err := srv.CreateBucket(ctx, "vtpm", false); err != nil {
		t.Fatal(err)
	}
	be, err := s3.New(ctx, s3.Config{
		Endpoint: srv.Endpoint, Bucket: "vtpm", Prefix: "site-a", Region: srv.Region, PlainHTTP: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	f := newFixtureOn(t, "s3-vtpm", storagetest.NewFaulty(be))
	if err := f.env.DeleteVM(ctx, f.vm); err != nil {
		t.Fatal(err)
	}
	m, err := repository.Select(ctx, f.repo, "s3-vtpm")
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	res, err := f.restoreTo(t, ctx, f.env, restore.Options{})
	if err != nil {
		t.Fatalf("restore from S3: %v", err)
	}
	f.checkRestoredVM(t, f.env, res, f.vm.Name)
}
