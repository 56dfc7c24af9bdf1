package main

import (
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
)

// TestInitS3 runs init against a real S3 server (versitygw on 127.0.0.1)
// with credentials from the AWS environment, as a user would.
func TestInitS3(t *testing.T) {
	srv := s3server.StartT(t)
	for _, b := range []struct {
		name string
		lock bool
	}{{"vtpm", false}, {"locked", true}} {
		if err := srv.CreateBucket(t.Context(), b.name, b.lock); err != nil {
			t.Fatal(err)
		}
	}
	setCreds := func(t *testing.T, secret string) {
		t.Helper()
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		t.Setenv("AWS_REGION", srv.Region)
	}
	base := "s3+http://" + srv.Endpoint

	t.Run("init", func(t *testing.T) {
		setCreds(t, srv.SecretKey)
		repo := base + "/vtpm/site-a"
		stdout, stderr, code := cli(t, "init", "--repo", repo, "--recipient", newRecipient(t), "--chunk-size", "1MiB")
		if code != exitOK {
			t.Fatalf("exit status %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "created repository") || !strings.Contains(stdout, "vtpm") {
			t.Errorf("stdout %q", stdout)
		}
		c, err := srv.Client()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StatObject(t.Context(), "vtpm", "site-a/config", minio.StatObjectOptions{}); err != nil {
			t.Errorf("no config object in the bucket: %v", err)
		}

		_, stderr, code = cli(t, "init", "--repo", repo, "--recipient", newRecipient(t))
		if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "already") {
			t.Errorf("second init: exit status %d, stderr %q; want 2 and one line", code, stderr)
		}
	})

	// s3:// is HTTPS; against a plain-HTTP endpoint the error says which
	// URL to use instead (issue 15 item 9).
	t.Run("https URL on a plain-HTTP endpoint", func(t *testing.T) {
		setCreds(t, srv.SecretKey)
		_, stderr, code := cli(t, "init", "--repo", "s3://"+srv.Endpoint+"/vtpm/plain", "--recipient", newRecipient(t))
		if code == exitOK || !strings.Contains(stderr, "use s3+http://"+srv.Endpoint+"/vtpm/") {
			t.Errorf("exit status %d, stderr %q; want a hint at s3+http://", code, stderr)
		}
	})

	t.Run("object lock", func(t *testing.T) {
		setCreds(t, srv.SecretKey)
		_, stderr, code := cli(t, "--json", "init", "--repo", base+"/locked/repo", "--recipient", newRecipient(t), "--object-lock-days", "1")
		if code != exitOK {
			t.Fatalf("exit status %d: %s", code, stderr)
		}
	})

	for _, tc := range []struct {
		name, repo, secret string
		want               []string
	}{
		{"missing bucket", base + "/nosuchbucket/repo", srv.SecretKey, []string{"nosuchbucket", "does not exist"}},
		{"wrong credentials", base + "/vtpm/other", "wrong-secret", []string{"access denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setCreds(t, tc.secret)
			stdout, stderr, code := cli(t, "init", "--repo", tc.repo, "--recipient", newRecipient(t))
			t.Logf("exit status %d, stderr: %s", code, stderr)
			if code != exitFailed && code != exitUsage {
				t.Errorf("exit status %d, want 1 or 2", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(stderr), w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "wrong-secret") || strings.Contains(stderr, srv.SecretKey) {
				t.Error("the secret key appears in the error")
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}
