// Package clock is the one place that reads the wall clock for code whose
// correctness depends on time (lock expiry and refresh, prune's grace
// period), so tests can drive time explicitly instead of sleeping (kopia
// bans time.Now outside its internal/clock for the same reason).
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and waits for it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Real returns the system clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a Clock that only moves when told to (Advance, Set). Tests use
// BlockUntil to wait, without sleeping, until the code under test is
// waiting on the clock. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	// changed is closed and replaced whenever a waiter is added, so
	// BlockUntil can wait for it.
	changed chan struct{}
}

type waiter struct {
	deadline time.Time
	ch       chan time.Time
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, changed: make(chan struct{})}
}

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After implements Clock. A non-positive d fires at once.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{deadline: f.now.Add(d), ch: ch})
	close(f.changed)
	f.changed = make(chan struct{})
	return ch
}

// Advance moves the clock forward by d and fires every waiter whose
// deadline has come.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.set(f.now.Add(d))
	f.mu.Unlock()
}

// Set moves the clock to t (forward or backward) and fires every waiter
// whose deadline has come.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.set(t)
	f.mu.Unlock()
}

func (f *Fake) set(t time.Time) {
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.deadline.After(t) {
			w.ch <- t // buffered, never blocks
			continue
		}
		kept = append(kept, w)
	}
	f.waiters = kept
}

// Waiters returns how many After channels have not fired yet.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil waits until at least n After channels are pending (someone is
// waiting on the clock), or ctx is done.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		if len(f.waiters) >= n {
			f.mu.Unlock()
			return nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
