package repository

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// The parsers of what a repository holds (manifests, their headers, the
// config, lock objects) read bytes anyone with write access to the bucket
// can plant, and the backup spec comes from the command line. Each target
// checks that no input panics, that errors are the documented sentinels,
// and what a successful parse promises its callers. Seeds: testdata/fuzz
// (real objects written by a demo run, and the regressions found); `make
// fuzz` runs every target for FUZZTIME.

// FuzzDecodeManifest: a manifest that decodes is safe to restore from (file
// names are plain base names, every listed chunk has its object entry) and
// survives a round trip; its header, read the catalog's way from the same
// bytes, agrees with it.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema_version":1,"backup_id":"20261127T010203.000Z-0a0b0c0d","chunk_size":1048576,"vm":{"name":"vm1"},` +
		`"files":[{"name":"vm1.vmx","type":"config","size":0,"sha256":"` + strings.Repeat("e", 64) + `","chunks":[]}],"objects":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeManifest("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrCorruptManifest) {
				t.Fatalf("error %v does not wrap ErrCorruptManifest", err)
			}
			checkText(t, data, err.Error())
			return
		}
		for _, file := range m.Files {
			if file.Name == "." || file.Name == ".." || path.Base(file.Name) != file.Name || strings.ContainsRune(file.Name, 0) {
				t.Fatalf("a valid manifest names file %q: a restore would write outside the VM's folder or fail", file.Name)
			}
			for _, c := range file.Chunks {
				if _, ok := m.Objects[c]; !ok && c != ZeroChunk {
					t.Fatalf("file %s lists chunk %s without its object entry", file.Name, c)
				}
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("a valid manifest does not encode: %v", err)
		}
		m2, err := decodeManifest("fuzz", again)
		if err != nil {
			t.Fatalf("a valid manifest, encoded again, is refused: %v\n%s", err, again)
		}
		if !sameHeader(&m.ManifestHeader, &m2.ManifestHeader) || !reflect.DeepEqual(m.Files, m2.Files) || !reflect.DeepEqual(m.Objects, m2.Objects) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
		h, err := decodeHeaderPrefix("fuzz", data, false)
		if err != nil || h.Validate() != nil {
			return // the catalog reports it corrupt: a refusal, not a wrong answer
		}
		want := m.ManifestHeader
		if h.Summary == (Summary{}) {
			want.Summary = Summary{} // filled in from the chunk lists the header does not read
		}
		if !sameHeader(h, &want) {
			t.Fatalf("the header read alone differs from the manifest's:\nheader   %+v\nmanifest %+v", *h, want)
		}
	})
}

// FuzzDecodeManifestHeader: the header read from any prefix of a manifest
// (ReadManifestHeader fetches the first 64 KiB) is the header read from the
// whole, or a request for more bytes; never a different header, nor
// "corrupt" for a manifest that is not.
func FuzzDecodeManifestHeader(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"backup_id":"20261127T010203.000Z-0a0b0c0d","vm":{"name":"vm1"},"files":[]}`), uint(40))
	f.Add([]byte(`{"a":123}`), uint(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		h, err := decodeHeaderPrefix("fuzz", data, false)
		if err != nil {
			if !errors.Is(err, ErrCorruptManifest) {
				t.Fatalf("error %v does not wrap ErrCorruptManifest", err)
			}
			checkText(t, data, err.Error())
			return
		}
		_ = h.Validate()
		k := int(cut % uint(len(data)+1))
		hp, err := decodeHeaderPrefix("fuzz", data[:k], true)
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
		case err != nil:
			t.Fatalf("the first %d bytes of a readable header: %v", k, err)
		case !sameHeader(hp, h):
			t.Fatalf("the first %d bytes give another header:\n%+v\n%+v", k, *hp, *h)
		}
	})
}

// FuzzOpenConfig: a config object either opens the repository or is
// refused as corrupt or unsupported; one that opens survives a round trip.
func FuzzOpenConfig(f *testing.F) {
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := openConfig(ctx, data)
		if err != nil {
			if !errors.Is(err, ErrCorruptConfig) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v wraps neither ErrCorruptConfig nor ErrUnsupportedVersion", err)
			}
			checkText(t, data, err.Error())
			return
		}
		cfg := r.Config()
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := openConfig(ctx, again)
		if err != nil {
			t.Fatalf("a config that opened, encoded again, is refused: %v\n%s", err, again)
		}
		if c2 := r2.Config(); !c2.Created.Equal(cfg.Created) || !reflect.DeepEqual(withoutTime(c2), withoutTime(cfg)) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, c2)
		}
	})
}

func withoutTime(c Config) Config { c.Created = time.Time{}; return c }

func openConfig(ctx context.Context, data []byte) (*Repository, error) {
	be := storagetest.NewMemory()
	if err := be.Put(ctx, configName, strings.NewReader(string(data)), int64(len(data))); err != nil {
		return nil, err
	}
	return Open(ctx, be)
}

// FuzzParseLock: any object in locks/ is a lock, or an unreadable one that
// blocks prune until it expires; locks describe themselves without
// panicking, whatever their times and pids, and survive a round trip.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte(`{not json`))
	f.Add([]byte(`{"hostname":"h","pid":1,"exclusive":false,"created":"2026-12-02T15:00:00Z","refreshed":"2026-12-02T15:00:00Z","expires":"2026-12-02T15:30:00Z"}`))
	written := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	host := LocalHost()
	f.Fuzz(func(t *testing.T, data []byte) {
		li := parseLock("fuzz", data, written)
		if li.ID != "fuzz" {
			t.Fatalf("ID %q", li.ID)
		}
		if li.Unreadable {
			if !li.Exclusive || !li.Expires.Equal(written.Add(DefaultLockExpiry)) {
				t.Fatalf("unreadable lock %+v: want exclusive until 30 minutes after it was written", li)
			}
		} else if li.Expires.IsZero() {
			t.Fatal("a readable lock without expiry")
		}
		li.HolderGone = host.Gone(li.Process)
		for _, now := range []time.Time{written, li.Expires, li.Created.Add(-time.Hour)} {
			if d := li.Describe(now); !strings.Contains(d, "fuzz") {
				t.Fatalf("Describe = %q, does not name the lock", d)
			}
			if li.HolderGone == "" && li.Stale(now) != !now.Before(li.Expires) {
				t.Fatalf("Stale(%v) = %v for a lock expiring %v", now, li.Stale(now), li.Expires)
			}
		}
		if li.Unreadable {
			return
		}
		again, err := json.Marshal(li)
		if err != nil {
			t.Fatalf("a lock that was read does not encode: %v", err)
		}
		l2 := parseLock("fuzz", again, written)
		if l2.Unreadable || l2.Process != li.Process || l2.Exclusive != li.Exclusive || l2.Purpose != li.Purpose ||
			!l2.Created.Equal(li.Created) || !l2.Refreshed.Equal(li.Refreshed) || !l2.Expires.Equal(li.Expires) {
			t.Fatalf("round trip changed the lock:\n%+v\n%+v", li, l2)
		}
	})
}

// FuzzParseSpec: a backup selection from the command line is a backup ID, or
// a VM with an optional time, or ErrBadSpec.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"", "vm1", "vm1@latest", "vm1@2026-05-01", "vm1@2026-05-01T02:00", "/DC0/vm/a@b@2026-05-01T02:00:00+02:00",
		"20261127T010203.000Z-0a0b0c0d", "@latest", "vm@20260501T020000Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v does not wrap ErrBadSpec", err)
			}
			checkText(t, []byte(s), err.Error())
			return
		}
		switch {
		case (sp.BackupID == "") == (sp.VM == ""):
			t.Fatalf("%q: want a backup ID or a VM: %+v", s, sp)
		case sp.BackupID != "":
			if _, err := BackupTime(sp.BackupID); err != nil || sp.BackupID != s || !sp.Before.IsZero() {
				t.Fatalf("%q: backup ID %+v: %v", s, sp, err)
			}
		case !strings.Contains(s, "@"):
			if sp.VM != s || !sp.Before.IsZero() {
				t.Fatalf("%q: %+v, want the whole input as a VM name", s, sp)
			}
		default:
			if sp.VM != s[:strings.LastIndexByte(s, '@')] {
				t.Fatalf("%q: VM %q, want everything before the last @", s, sp.VM)
			}
			if !sp.Before.IsZero() && sp.Before.Location() != time.UTC {
				t.Fatalf("%q: time %v not in UTC", s, sp.Before)
			}
		}
	})
}

// checkText: an error about valid UTF-8 input is valid UTF-8 itself (it is
// printed, and sent as JSON).
func checkText(t *testing.T, input []byte, msg string) {
	t.Helper()
	if utf8.Valid(input) && !utf8.ValidString(msg) {
		t.Fatalf("error for valid UTF-8 input is not valid UTF-8: %q", msg)
	}
}
