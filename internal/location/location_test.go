package location_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/location"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		in     string
		want   location.Location
		string string
	}{
		{"/srv/backup", location.Location{Kind: location.Local, Path: "/srv/backup"}, "/srv/backup"},
		{"/srv/backup/", location.Location{Kind: location.Local, Path: "/srv/backup"}, "/srv/backup"},
		{"repo", location.Location{Kind: location.Local, Path: "repo"}, "repo"},
		{"./a/../repo", location.Location{Kind: location.Local, Path: "repo"}, "repo"},
		{"backups:2026", location.Location{Kind: location.Local, Path: "backups:2026"}, "backups:2026"},
		{"file:///srv/backup", location.Location{Kind: location.Local, Path: "/srv/backup"}, "/srv/backup"},
		{"file://localhost/srv/b", location.Location{Kind: location.Local, Path: "/srv/b"}, "/srv/b"},
		{"s3://s3.eu-central-1.amazonaws.com/my-bucket",
			location.Location{Kind: location.S3, Endpoint: "s3.eu-central-1.amazonaws.com", Bucket: "my-bucket"},
			"s3://s3.eu-central-1.amazonaws.com/my-bucket"},
		{"s3://minio.lab:9000/vtpm/site-a/prod/",
			location.Location{Kind: location.S3, Endpoint: "minio.lab:9000", Bucket: "vtpm", Prefix: "site-a/prod"},
			"s3://minio.lab:9000/vtpm/site-a/prod"},
		{"S3://MinIO.lab/vtpm/",
			location.Location{Kind: location.S3, Endpoint: "minio.lab", Bucket: "vtpm"},
			"s3://minio.lab/vtpm"},
		{"s3+http://127.0.0.1:7070/bucket/repo",
			location.Location{Kind: location.S3, Endpoint: "127.0.0.1:7070", Bucket: "bucket", Prefix: "repo", PlainHTTP: true},
			"s3+http://127.0.0.1:7070/bucket/repo"},
		{"s3+http://[::1]:7070/bucket",
			location.Location{Kind: location.S3, Endpoint: "[::1]:7070", Bucket: "bucket", PlainHTTP: true},
			"s3+http://[::1]:7070/bucket"},
	}
	for _, tc := range tests {
		got, err := location.Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.string {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got.String(), tc.string)
		}
		// The canonical form parses to the same location.
		if again, err := location.Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"repo\x00", "control character"},
		// Found by FuzzParse: " /" was a folder " " that printed as a
		// location Parse refuses.
		{" /", "white space"},
		{" /srv/backups", "white space"},
		{"/srv/backups ", "white space"},
		{"\u00a0/srv/backups", "white space"},
		{"0 /", "white space"},
		{"file:///srv/backups /", "white space"},
		{"s3://host", "no bucket"},
		{"s3://host/", "no bucket"},
		{"s3:///bucket", "no host"},
		{"s3:bucket/prefix", "s3://host"},
		{"s3://host:0/bucket", "bad port"},
		{"s3://host:99999/bucket", "bad port"},
		{"s3://host:/bucket", "bad port"},
		{"s3://host/Bad_Bucket", "bucket name"},
		{"s3://host/ab", "bucket name"},
		{"s3://host/bucket//x", "prefix"},
		{"s3://host/bucket/a/../b", "prefix"},
		{"s3://host/bucket?versionId=1", "query"},
		{"s3://host/bucket#frag", "query"},
		{"s3://host/bucket?", "query"},
		{"https://host/bucket", "s3://host/bucket"},
		{"http://host/bucket", "s3+http://"},
		{"s3+https://host/bucket", "s3://"},
		{"gs://bucket/x", "unknown scheme"},
		{"ftp://host/x", "unknown scheme"},
		{"file://server/share", "file:///path"},
		{"file:relative", "absolute path"},
		{"s3://AKIAEXAMPLE:s3cr3t@host/bucket", "credentials in the URL"},
		{"s3+http://user@host:7070/bucket", "credentials in the URL"},
	}
	for _, tc := range tests {
		_, err := location.Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tc.in)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, location.ErrBadLocation) {
			t.Errorf("Parse(%q) = %v, want ErrBadLocation", tc.in, err)
		}
		if !strings.Contains(msg, tc.reason) {
			t.Errorf("Parse(%q) = %q, want it to say %q", tc.in, msg, tc.reason)
		}
		if !strings.Contains(msg, "s3+http://host[:port]/bucket") || strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q) = %q, want one line listing the accepted forms", tc.in, msg)
		}
		for _, secret := range []string{"s3cr3t", "AKIAEXAMPLE", "user@"} {
			if strings.Contains(msg, secret) {
				t.Errorf("Parse(%q) error reveals %q: %s", tc.in, secret, msg)
			}
		}
	}
}

func TestOpenLocal(t *testing.T) {
	dir := t.TempDir() + "/repo"
	loc, err := location.Parse("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := location.Open(t.Context(), loc, location.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Location() != dir {
		t.Errorf("Location() = %q, want %q", b.Location(), dir)
	}
}

func TestOpenS3(t *testing.T) {
	s := s3server.StartT(t)
	if err := s.CreateBucket(t.Context(), "vtpm", false); err != nil {
		t.Fatal(err)
	}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_SESSION_TOKEN", "")
	loc, err := location.Parse("s3+http://" + s.Endpoint + "/vtpm/site-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := location.Open(t.Context(), loc, location.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Location() != loc.String() {
		t.Errorf("Location() = %q, want %q", b.Location(), loc.String())
	}
	missing, err := location.Parse("s3+http://" + s.Endpoint + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := location.Open(t.Context(), missing, location.S3Options{}); !errors.Is(err, s3.ErrBucketNotFound) {
		t.Errorf("Open(missing bucket) = %v, want ErrBucketNotFound", err)
	}
}
