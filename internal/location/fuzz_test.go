package location_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vtpm-backup/vtpm-backup/internal/location"
)

// FuzzParse: --repo and VTPM_BACKUP_REPO are parsed, or refused with
// ErrBadLocation, never a panic; a parsed location prints in a canonical form
// that parses back to itself; credentials in a URL are refused and never
// quoted in the error (it is printed, and may be logged). Seeds:
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "/srv/b", "s3://h/bkt", "s3+http://127.0.0.1:9000/bkt/p", "file:///x", "a://b"} {
		f.Add(s)
	}
	const secret = "Zq9SeCrEt"
	f.Fuzz(func(t *testing.T, s string) {
		l, err := location.Parse(s)
		if err != nil {
			if !errors.Is(err, location.ErrBadLocation) {
				t.Fatalf("error %v does not wrap ErrBadLocation", err)
			}
			if utf8.ValidString(s) && !utf8.ValidString(err.Error()) {
				t.Fatalf("error for valid UTF-8 input is not: %q", err)
			}
		} else {
			canon := l.String()
			again, err := location.Parse(canon)
			if err != nil || again != l {
				t.Fatalf("%q parsed as %+v, printed %q, parsed back as %+v, %v", s, l, canon, again, err)
			}
			if l.Kind == location.S3 && (strings.Contains(l.Endpoint, "@") || strings.ContainsAny(l.Bucket+l.Prefix, "?#@")) {
				t.Fatalf("%q: S3 location %+v carries user info or a query", s, l)
			}
		}
		for _, scheme := range []string{"s3://", "s3+http://", "file://"} {
			in := scheme + "k:" + secret + "@" + s
			if _, err := location.Parse(in); err == nil || strings.Contains(err.Error(), secret) {
				t.Fatalf("%q: credentials accepted or quoted: %v", in, err)
			}
		}
	})
}
