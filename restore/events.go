package restore

// Events receives progress from a restore, so the command can draw a
// progress bar or print JSON without this package knowing how. Progress is
// called from one goroutine at a time.
type Events interface {
	// Status: a step begins (for logs and --json).
	Status(step string)
	// Progress: n more bytes were written to the target.
	Progress(n int64)
}

// NopEvents ignores everything.
type NopEvents struct{}

// Status implements Events.
func (NopEvents) Status(string) {}

// Progress implements Events.
func (NopEvents) Progress(int64) {}
