package repository_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// lockingMemory is Memory with Object Lock: it records the retention put
// on each object and counts SetRetention calls.
type lockingMemory struct {
	*storagetest.Memory
	mu    sync.Mutex
	until map[string]time.Time
	calls int
}

func (l *lockingMemory) SetRetention(ctx context.Context, name string, until time.Time) error {
	if _, err := l.Stat(ctx, name); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.until[name] = until
	return nil
}

func (l *lockingMemory) Retention(ctx context.Context, name string) (time.Time, error) {
	if _, err := l.Stat(ctx, name); err != nil {
		return time.Time{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until[name], nil
}

var _ storage.Retainer = (*lockingMemory)(nil)

// A chunk reused night after night must stay retained as long as the
// newest manifest that needs it, without a retention request per backup.
func TestReusedChunkRetentionIsExtended(t *testing.T) {
	be := &lockingMemory{Memory: storagetest.NewMemory(), until: map[string]time.Time{}}
	clk := clock.NewFake(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC))
	r := repotest.New(t, repotest.Options{Backend: be, ObjectLockDays: 10, Clock: clk})
	w := r.NewChunkWriter()
	defer w.Close()
	data := []byte("a chunk every backup reuses")
	id := repository.ChunkID(sha256.Sum256(data))
	so, err := w.Put(t.Context(), id, data)
	if err != nil {
		t.Fatal(err)
	}
	name := repository.ChunkObjectName(id)
	if want := clk.Now().Add(15 * 24 * time.Hour); !so.RetainUntil.Equal(want) || !be.until[name].Equal(want) {
		t.Fatalf("new chunk retained until %v (recorded %v), want %v", be.until[name], so.RetainUntil, want)
	}
	calls := be.calls
	for night := 1; night <= 30; night++ {
		clk.Advance(24 * time.Hour)
		so, err = r.EnsureRetained(t.Context(), id, so)
		if err != nil {
			t.Fatal(err)
		}
		// The manifest is written up to a day after the chunk check.
		if need := clk.Now().Add(11 * 24 * time.Hour); be.until[name].Before(need) {
			t.Fatalf("night %d: chunk retained until %v, but tonight's manifest is retained until %v", night, be.until[name], need)
		}
	}
	if n := be.calls - calls; n != 7 {
		t.Fatalf("%d retention requests over 30 nights, want 7 (one every 4 nights)", n)
	}
	// A short period (1 day) is not extended every night either.
	sbe := &lockingMemory{Memory: storagetest.NewMemory(), until: map[string]time.Time{}}
	sclk := clock.NewFake(time.Date(2026, 2, 1, 2, 0, 0, 0, time.UTC))
	short := repotest.New(t, repotest.Options{Backend: sbe, ObjectLockDays: 1, Clock: sclk})
	sw := short.NewChunkWriter()
	defer sw.Close()
	so, err = sw.Put(t.Context(), id, data)
	if err != nil {
		t.Fatal(err)
	}
	calls = sbe.calls
	for night := 1; night <= 30; night++ {
		sclk.Advance(24 * time.Hour)
		if so, err = short.EnsureRetained(t.Context(), id, so); err != nil {
			t.Fatal(err)
		}
		if need := sclk.Now().Add(2 * 24 * time.Hour); sbe.until[name].Before(need) {
			t.Fatalf("1-day period, night %d: retained until %v, need %v", night, sbe.until[name], need)
		}
	}
	if n := sbe.calls - calls; n != 10 {
		t.Fatalf("1-day period: %d retention requests over 30 nights, want 10 (one every 3 nights)", n)
	}

	// Without Object Lock nothing is asked of the backend.
	plain := newRepo(t, storagetest.NewMemory(), nil)
	if got, err := plain.EnsureRetained(t.Context(), id, repository.StoredObject{Size: 1}); err != nil || !got.RetainUntil.IsZero() {
		t.Fatalf("EnsureRetained without Object Lock = %+v, %v", got, err)
	}
}

// failingRetainer refuses every retention, like a bucket without Object Lock.
type failingRetainer struct{ *storagetest.Memory }

func (failingRetainer) SetRetention(context.Context, string, time.Time) error {
	return errors.New("InvalidRequest: Bucket is missing Object Lock Configuration")
}

func (failingRetainer) Retention(context.Context, string) (time.Time, error) { return time.Time{}, nil }

// A manifest that could not be retained is withdrawn: the backup fails
// whole instead of existing without the promised immutability.
func TestManifestWithdrawnWhenRetentionFails(t *testing.T) {
	be := failingRetainer{storagetest.NewMemory()}
	r := repotest.New(t, repotest.Options{Backend: be, ObjectLockDays: 1})
	m := validManifest()
	m.Objects = nil
	m.VM.VTPM = false
	m.Files = []repository.File{{Name: "vm1.vmx", Type: repository.FileConfig, SHA256: hexSum(nil)}}
	if err := r.WriteManifest(t.Context(), m); err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("WriteManifest = %v, want the retention error", err)
	}
	if ids, _ := r.ListBackupIDs(t.Context()); len(ids) != 0 {
		t.Fatalf("an unretained manifest stayed: %v", ids)
	}
}
