package clock_test

import (
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

func TestFake(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f := clock.NewFake(start)
	if !f.Now().Equal(start) {
		t.Fatalf("Now = %v", f.Now())
	}
	a := f.After(time.Minute)
	b := f.After(time.Hour)
	if f.Waiters() != 2 {
		t.Fatalf("Waiters = %d", f.Waiters())
	}
	select {
	case <-a:
		t.Fatal("fired before its time")
	default:
	}
	f.Advance(time.Minute)
	if got := <-a; !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("a fired with %v", got)
	}
	select {
	case <-b:
		t.Fatal("b fired early")
	default:
	}
	f.Set(start.Add(2 * time.Hour))
	<-b
	if f.Waiters() != 0 {
		t.Fatalf("Waiters = %d after firing all", f.Waiters())
	}
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) must fire at once")
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := clock.NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	go func() {
		<-f.After(time.Second)
		close(done)
	}()
	if err := f.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Second)
	<-done
}

func TestReal(t *testing.T) {
	c := clock.Real()
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Real().Now() off by %v", d)
	}
	<-c.After(0)
}
