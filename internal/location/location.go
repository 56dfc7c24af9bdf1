package location

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// ErrBadLocation marks a malformed repository location; the CLI maps it to
// exit status 2 (usage error).
var ErrBadLocation = errors.New("bad repository location")

// Forms lists the accepted location forms, for help texts and errors.
const Forms = "/path, relative/path, file:///path, s3://host[:port]/bucket[/prefix] (HTTPS) or s3+http://host[:port]/bucket[/prefix] (plain HTTP)"

// Kind is the type of storage a Location names.
type Kind int

// Kinds of location.
const (
	// Local is a directory on a local or mounted filesystem.
	Local Kind = iota + 1
	// S3 is a bucket (and prefix) on an S3-compatible service.
	S3
)

// Location is a parsed repository location.
type Location struct {
	Kind Kind
	// Path is the cleaned directory of a Local location.
	Path string
	// Endpoint is host[:port] of an S3 location.
	Endpoint string
	// Bucket and Prefix (no leading or trailing slash, "" for the bucket
	// root) of an S3 location.
	Bucket string
	Prefix string
	// PlainHTTP is set for s3+http:// locations.
	PlainHTTP bool
}

// String returns the canonical form of the location. A Location never
// holds credentials (Parse refuses them), so this is safe to print.
func (l Location) String() string {
	switch l.Kind {
	case Local:
		return l.Path
	case S3:
		scheme := "s3"
		if l.PlainHTTP {
			scheme = "s3+http"
		}
		s := scheme + "://" + l.Endpoint + "/" + l.Bucket
		if l.Prefix != "" {
			s += "/" + l.Prefix
		}
		return s
	}
	return "<no location>"
}

var (
	// schemeRE matches a URL scheme at the start of the input.
	schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)
	// bucketRE is S3's bucket naming rule (lowercase, 3-63 characters).
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// urlSchemes are schemes that make the input a URL. Anything else before a
// colon is part of a local path ("backups:2026" is a directory name).
var urlSchemes = map[string]bool{"file": true, "s3": true, "s3+http": true, "s3+https": true, "http": true, "https": true}

// Parse parses a repository location. Errors wrap ErrBadLocation, name the
// input (with any credentials redacted) and list the accepted forms.
func Parse(s string) (Location, error) {
	bad := func(reason string) (Location, error) {
		return Location{}, fmt.Errorf("%w %q: %s; accepted forms: %s", ErrBadLocation, redact(s), reason, Forms)
	}
	if strings.TrimSpace(s) == "" {
		return bad("empty")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return bad("contains a control character")
	}
	// " /srv/backups" would be a folder " " in the current directory: a
	// quoting slip, not a place anyone means.
	if strings.TrimSpace(s) != s {
		return bad("leading or trailing white space (a quoting mistake?)")
	}
	m := schemeRE.FindStringSubmatch(s)
	if m == nil || !urlSchemes[strings.ToLower(m[1])] {
		if strings.Contains(s, "://") {
			return bad("unknown scheme")
		}
		return localPath(s, bad)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("not a valid URL")
	}
	if u.User != nil {
		return bad("credentials in the URL are refused (they would show in logs and process listings); " +
			"use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return bad("query strings and fragments are not supported")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("file URLs name a local path: file:///path")
		}
		if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return bad("file URLs need an absolute path: file:///path")
		}
		return localPath(u.Path, bad)
	case "s3", "s3+http":
	case "http", "https", "s3+https":
		return bad("use s3://host/bucket for S3 over HTTPS or s3+http://host:port/bucket for plain HTTP")
	}
	if u.Opaque != "" || !strings.HasPrefix(s[len(u.Scheme):], "://") {
		return bad("S3 locations start with s3://host or s3+http://host")
	}
	if u.Hostname() == "" {
		return bad("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("bad port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("bad port")
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	prefix = strings.TrimSuffix(prefix, "/")
	switch {
	case bucket == "":
		return bad("no bucket")
	case !bucketRE.MatchString(bucket) || strings.Contains(bucket, ".."):
		return bad(fmt.Sprintf("bucket name %q is not valid (3-63 lowercase letters, digits, dots and hyphens)", bucket))
	}
	if prefix != "" {
		if err := storage.ValidateName(prefix); err != nil {
			return bad(fmt.Sprintf("prefix %q has an empty, \".\" or \"..\" element or a control character", prefix))
		}
	}
	return Location{
		Kind:      S3,
		Endpoint:  strings.ToLower(u.Host),
		Bucket:    bucket,
		Prefix:    prefix,
		PlainHTTP: u.Scheme == "s3+http",
	}, nil
}

// localPath is the Local location of path p, cleaned. A path that ends in
// white space once cleaned ("backups /" is the folder "backups ") is
// refused like one that starts or ends with it: a quoting slip.
func localPath(p string, bad func(string) (Location, error)) (Location, error) {
	p = filepath.Clean(p)
	if strings.TrimSpace(p) != p {
		return bad("a folder name ends in white space (a quoting mistake?)")
	}
	return Location{Kind: Local, Path: p}, nil
}

// redact hides user information and query strings of URL-like input, where
// secrets would be, so error messages can quote the rest.
func redact(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q] + "?REDACTED"
	}
	// Up to the last "@" anywhere, not only in the authority: a secret
	// containing "/" would otherwise end the authority early and show.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = "REDACTED@" + rest[at+1:]
	}
	return s[:i+3] + rest
}

// S3Options are the S3 settings that do not belong in the location.
type S3Options struct {
	// Insecure accepts any TLS certificate (lab endpoints). Prefer CAFile.
	Insecure bool
	// CAFile is a PEM file of extra CAs to trust.
	CAFile string
	// Region to sign for; empty: AWS_REGION, else asked from the bucket.
	Region string
}

// Open returns the backend for loc: a local directory (created when
// missing) or an S3 bucket, checked for existence and access (see s3.New
// for its errors). ctx bounds only the opening.
func Open(ctx context.Context, loc Location, opts S3Options) (storage.Backend, error) {
	switch loc.Kind {
	case Local:
		return local.New(loc.Path)
	case S3:
		return s3.New(ctx, s3.Config{
			Endpoint:           loc.Endpoint,
			Bucket:             loc.Bucket,
			Prefix:             loc.Prefix,
			Region:             opts.Region,
			PlainHTTP:          loc.PlainHTTP,
			InsecureSkipVerify: opts.Insecure,
			CAFile:             opts.CAFile,
		})
	}
	return nil, fmt.Errorf("%w: empty location", ErrBadLocation)
}
