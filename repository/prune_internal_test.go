package repository

import (
	"testing"
	"time"
)

// Defaults applied twice (by a caller and again inside) must not change
// the options' meaning: a negative Grace (none) once became 0 and then the
// default hour.
func TestPruneDefaultsIdempotent(t *testing.T) {
	for _, grace := range []time.Duration{-1, 0, time.Minute} {
		once := PruneOptions{Grace: grace}
		once.defaults()
		twice := once
		twice.defaults()
		if once.grace() != twice.grace() || once.Workers != twice.Workers || once.Location != twice.Location {
			t.Errorf("Grace %v: defaults once %+v, twice %+v", grace, once, twice)
		}
	}
	off := PruneOptions{Grace: -1}
	off.defaults()
	off.defaults()
	if off.grace() != 0 {
		t.Fatalf("Grace -1 defaulted twice gives a grace of %v, want none", off.grace())
	}
}
